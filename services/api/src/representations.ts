import {
  CONVERSION_STATUSES,
  DEDUPE_MODES,
  DEFAULT_PARTNER_EVENT_TYPES,
  EntityStatus,
  EVENT_CATALOG,
  EVENT_TYPES,
  ID_PREFIX,
  type EventType,
  MONEY_PATTERN,
  ORDER_ID_MAX,
  PARTNER_EVENT_TYPES,
  PARTNER_MACROS,
  PARTNER_METHODS,
  PARTNER_PRESET_NAMES,
  PERCENT_PATTERN,
  POSTBACK_FIELDS,
  PRESET_NAMES,
  SUB_NAMES,
  type SubName,
  SUBSCRIBABLE_EVENT_TYPES,
  commissionJson,
  conversionJson,
  destinationTemplateProblem,
  endpointJson,
  formatDecimal,
  formatMoney,
  fraudFlagJson,
  isCurrency,
  partnerPostbackJson,
  partnerUrlProblem,
  postbackFormatProblems,
  readPostbackFormat,
} from '@trackway/domain';
import { INT_ID_MAX, dateTimeInput, intIdQuery, intIdSchema, text, urlText } from '@trackway/http';
import { payoutJson } from '@trackway/ledger';
import { isAddressOrCidr } from '@trackway/runtime';
import { RESERVED_HEADERS } from '@trackway/webhooks';
import { z } from 'zod';
import type { ApiDeps } from './deps';
import { listQuery } from './pagination';

/*
 * Every JSON shape of the admin API, and of the events its webhooks carry: the zod schemas that
 * parse requests, the schemas of the answers with the functions that shape them (typed by their
 * schema, so an answer cannot drift from its documentation), and the event payloads. The OpenAPI
 * document (openapi.ts) is generated from these; nothing in it is written by hand.
 *
 * Schemas with an `id` become components of the document. Request schemas keep the exact
 * messages clients have always been given.
 */

type Out<S extends z.ZodType> = z.output<S>;

// ——— Shared pieces ———

const timestamp = z.iso.datetime().meta({ description: 'ISO 8601, UTC, millisecond precision.', example: '2026-11-27T10:14:52.318Z' });
const moneyOut = z
  .string()
  .regex(MONEY_PATTERN)
  .meta({ description: 'A decimal amount as a string (at most 14 digits before the point and 4 after).', example: '49.90' });
const currencyOut = z
  .string()
  .regex(/^[A-Z]{3}$/)
  .meta({ description: 'ISO 4217 currency code.', example: 'USD' });
const prefixed = (kind: keyof typeof ID_PREFIX, example: string) =>
  z
    .string()
    .regex(new RegExp(`^${ID_PREFIX[kind]}_[0-9A-Z]{26}$`))
    .meta({ example });
const intId = z.number().int().min(1).max(INT_ID_MAX);
/** Postgres `integer` counts: what an answer's count can hold. */
const count = z.number().int().min(0).max(INT_ID_MAX);
const entityStatus = z.enum(EntityStatus);

export const ids = {
  conversion: prefixed('conversion', 'cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC'),
  commission: prefixed('commission', 'com_01JD8Z6Q5XG1S7C2W9E4K8M3PA'),
  fraudFlag: prefixed('fraudFlag', 'ff_01JD8Z6Q5Y0N4B6D1H8T2R5V7X'),
  postback: prefixed('postback', 'pb_01JD8Z6Q4Z2K9M1P5S3W7Y0B2D'),
  event: prefixed('event', 'evt_01JD8Z6Q62B4D6F8H0K2M4P6R8'),
  endpoint: prefixed('endpoint', 'ep_01JD8Z6Q61A2C4E6G8J0L2N4Q6'),
  partnerPostback: prefixed('partnerPostback', 'pp_01JD8Z6Q64E6G8J0L2N4Q6S8U0'),
  /** What deliveries go to: a webhook endpoint (ep_…) or a partner postback (pp_…). */
  deliveryTarget: z
    .string()
    .regex(new RegExp(`^(${ID_PREFIX.endpoint}|${ID_PREFIX.partnerPostback})_[0-9A-Z]{26}$`))
    .meta({ description: "A webhook endpoint's id (ep_…) or a partner postback's (pp_…).", example: 'ep_01JD8Z6Q61A2C4E6G8J0L2N4Q6' }),
  delivery: prefixed('delivery', 'dlv_01JD8Z6Q63C5E7G9J1L3N5Q7S9'),
  payout: prefixed('payout', 'po_01JD8Z6Q60F3H5J7L9N1Q3S5U7'),
};

/** A page of a list: newest first; `next_cursor` is null on the last page. */
export const pageOf = <S extends z.ZodType>(item: S, id: string) =>
  z
    .strictObject({ data: z.array(item), next_cursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next page; null on the last.' }) })
    .meta({ id });

// ——— The error envelope (packages/http errors.ts writes it) ———

export const ErrorEnvelope = z
  .strictObject({
    error: z.strictObject({
      code: z.string().meta({
        description: 'Stable, machine-readable: invalid_request, unauthorized, not_found, conflict, rate_limited, unavailable…',
        example: 'invalid_request',
      }),
      message: z.string().meta({ example: 'The request has invalid fields.' }),
      fields: z
        .record(z.string(), z.string())
        .optional()
        .meta({
          description: 'For invalid_request: each field (dotted path, or `_` for the whole body) with the reason it was refused.',
          example: { name: 'is required' },
        }),
      request_id: z.string().optional().meta({
        description: "The request's id, also its X-Request-Id header: quote it when reporting a problem (the api's answers always carry it).",
        example: '0f9c5b1e-3c2a-4d47-9a41-6c2b8d1e7f30',
      }),
    }),
  })
  .meta({ id: 'Error', description: 'Every 4xx and 5xx answer.' });

// ——— Advertisers and affiliates (named entities) ———

const entityFields = {
  id: intId,
  name: z.string(),
  status: entityStatus,
  created_at: timestamp,
  updated_at: timestamp,
};
export type EntityRow = { id: number; name: string; status: EntityStatus; createdAt: Date; updatedAt: Date };

export const Affiliate = z.strictObject(entityFields).meta({ id: 'Affiliate' });
export function entityJson(a: EntityRow): Out<typeof Affiliate> {
  return {
    id: a.id,
    name: a.name,
    status: a.status,
    created_at: a.createdAt.toISOString(),
    updated_at: a.updatedAt.toISOString(),
  };
}

const entityName = text({ trim: true, min: 1, max: 200 });
export const EntityCreate = z.strictObject({ name: entityName });
export const EntityUpdate = z.strictObject({ name: entityName.optional(), status: entityStatus.optional() });
export const EntityList = listQuery({ status: entityStatus.optional() });
export const AffiliateCreate = EntityCreate.meta({ id: 'AffiliateCreate' });
export const AffiliateUpdate = EntityUpdate.meta({ id: 'AffiliateUpdate' });

/**
 * The advertiser's postback dialect (docs/postbacks.md, "Postback formats"): a preset, and what overrides
 * it. Names are checked for clashes too (postbackFormatProblems): one name read for two fields
 * is refused.
 */
const postbackFormatFields = {
  preset: z.enum(PRESET_NAMES).meta({ description: "The tracker whose documented postback parameters are read; trackway: Trackway's names and aliases." }),
  params: z
    .partialRecord(z.enum(POSTBACK_FIELDS), z.array(z.string()).min(1, 'lists at least one name').max(20, 'at most 20 names'))
    .optional()
    .meta({
      description: "Per field, the parameter names read for it instead of the preset's (Trackway's own name is read too).",
      example: { amount: ['rev'] },
    }),
  status_values: z
    .record(z.string().trim().min(1).max(64), z.enum(CONVERSION_STATUSES))
    .refine((values) => Object.keys(values).length <= 50, 'at most 50 values')
    .optional()
    .meta({ description: "Status values (any case) over the preset's and the shared vocabulary.", example: { '1': 'approved', '2': 'pending' } }),
  decimal_comma: z.boolean().optional().meta({ description: 'Read 12,34 as 12.34.' }),
  dedupe: z.enum(DEDUPE_MODES).optional().meta({ description: 'click_id: a postback without order_id is one conversion per (advertiser, click, event).' }),
};
const PostbackFormatInput = z
  .strictObject(postbackFormatFields)
  .superRefine((format, ctx) => {
    for (const [path, message] of Object.entries(postbackFormatProblems(format))) ctx.addIssue({ code: 'custom', path: path.split('.').slice(1), message });
  })
  .meta({ id: 'PostbackFormatInput' });
const PostbackFormatSetting = z.strictObject(postbackFormatFields).meta({ id: 'PostbackFormat' });

// An advertiser's settings beyond name and status: every answer shows them, PATCH takes them.
// A new setting is one line in each of advertiserSettings, Advertiser and advertiserJson.
const advertiserSettings = {
  postback_format: PostbackFormatInput.optional(),
  require_signed_postbacks: z.boolean().optional(),
  allowed_ips: z.array(z.string().refine(isAddressOrCidr, 'must be an IP address or a CIDR such as 203.0.113.0/24')).max(100, 'at most 100 entries').optional(),
  postback_rate_limit_per_second: z.number().int().min(0).max(1_000_000).nullable().optional(),
};
// Answers show what inputs take: the same bounds.
const postbackRateLimit = advertiserSettings.postback_rate_limit_per_second.unwrap();
export const AdvertiserCreate = EntityCreate.extend({ postback_format: advertiserSettings.postback_format }).meta({ id: 'AdvertiserCreate' });
export const AdvertiserUpdate = EntityUpdate.extend(advertiserSettings).meta({ id: 'AdvertiserUpdate' });
export type AdvertiserSettingsInput = z.infer<z.ZodObject<typeof advertiserSettings>>;

export const Advertiser = z
  .strictObject({
    ...entityFields,
    require_signed_postbacks: z.boolean(),
    signing_secret_set: z.boolean(),
    previous_signing_secret_expires_at: timestamp
      .nullable()
      .meta({ description: 'Until then the previous signing secret still verifies; null when none does.' }),
    allowed_ips: z.array(z.string()).meta({ description: 'Addresses and CIDRs postbacks may come from; empty: any.' }),
    postback_rate_limit_per_second: postbackRateLimit.meta({ description: 'null: the deployment-wide POSTBACK_RATE_LIMIT; 0: no limit.' }),
    postback_format: PostbackFormatSetting.meta({ description: 'As set; {"preset": "trackway"} when never set.' }),
  })
  .meta({ id: 'Advertiser' });
const postbackKey = {
  postback_key: z.string().meta({ description: 'Shown in this answer only; Trackway stores its hash.', example: 'pk_3xJ9yq0Z7C2hV5mN8pR1tW4bK6dF0gHs' }),
};
export const AdvertiserWithKey = Advertiser.extend(postbackKey).meta({ id: 'AdvertiserWithKey' });
export const SigningSecretRotated = z
  .strictObject({ signing_secret: z.string().meta({ description: 'Shown in this answer only.' }), previous_signing_secret_expires_at: timestamp.nullable() })
  .meta({ id: 'SigningSecretRotated' });

interface AdvertiserRow extends EntityRow {
  requireSignedPostbacks: boolean;
  allowedIps: string[] | null;
  postbackRateLimitPerSecond: number | null;
  signingSecretSealed: string | null;
  previousSigningSecretExpiresAt: Date | null;
  postbackFormat: unknown;
}

/** The front-door settings every advertiser answer shows (never the secret itself). */
export function advertiserJson(row: AdvertiserRow): Out<typeof Advertiser> {
  return {
    ...entityJson(row),
    require_signed_postbacks: row.requireSignedPostbacks,
    signing_secret_set: row.signingSecretSealed !== null,
    previous_signing_secret_expires_at:
      row.previousSigningSecretExpiresAt && row.previousSigningSecretExpiresAt > new Date() ? row.previousSigningSecretExpiresAt.toISOString() : null,
    allowed_ips: row.allowedIps ?? [],
    postback_rate_limit_per_second: row.postbackRateLimitPerSecond,
    // What ingest reads its postbacks with: a stored format this version cannot read is read as Trackway's.
    postback_format: readPostbackFormat(row.postbackFormat).format ?? { preset: 'trackway' },
  };
}

// ——— Offers ———

const money = z.string().regex(MONEY_PATTERN, 'must be a decimal string such as "5.00"');
/**
 * A currency in any case, as postbacks take it ("usd" is USD), for offers and payouts alike. Only
 * ASCII letters: "uſd" upper-cases to "USD" too, and is refused rather than read as USD.
 */
const currency = z
  .string()
  .regex(/^[A-Za-z]{3}$/, 'must be three ASCII letters, an ISO 4217 code such as USD')
  .transform((code) => code.toUpperCase())
  .refine(isCurrency, 'must be an ISO 4217 code such as USD')
  .meta({ description: 'ISO 4217 currency code, in any case (usd is USD).', example: 'USD' });
const destinationUrl = urlText({ max: 2048 })
  .superRefine((value, ctx) => {
    const problem = destinationTemplateProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .meta({
    description: 'Where /click redirects; {click_id}, {offer_id}, {affiliate_id} and {sub1}…{sub5} are replaced.',
    example: 'https://shop.example/landing?clickid={click_id}',
  });
const payoutInput = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('fixed'), amount: money }),
    z.strictObject({
      type: z.literal('percent'),
      percent: z
        .string()
        .regex(PERCENT_PATTERN, 'must be a decimal string such as "10"')
        .refine((p) => Number(p) <= 100, 'must be at most 100'),
    }),
  ],
  { error: 'must be {"type": "fixed", "amount"} or {"type": "percent", "percent"}' },
);
const offerSettings = {
  name: entityName,
  destination_url: destinationUrl,
  currency,
  payout: payoutInput,
  // What the advertiser pays the network, priced as payout is (a fixed amount in the offer's
  // currency, a percent of the sale); null: not recorded (and cleared by PATCH).
  revenue: payoutInput.nullable().meta({
    description: 'What the advertiser pays the network per conversion, priced like payout; null: not recorded.',
    example: { type: 'fixed', amount: '8.00' },
  }),
  share_amount_with_partners: z.boolean().meta({ description: "Whether partner postbacks may carry the sale's amount ({amount})." }),
  attribution_window_days: z.number().int().min(1).max(365),
  min_ctit_seconds: z.number().int().min(0).max(86_400),
  amount_cap: money.nullable(),
};
export const OfferCreate = z
  .strictObject({
    advertiser_id: intIdSchema,
    ...offerSettings,
    attribution_window_days: offerSettings.attribution_window_days.optional(),
    min_ctit_seconds: offerSettings.min_ctit_seconds.optional(),
    amount_cap: offerSettings.amount_cap.optional(),
    revenue: offerSettings.revenue.optional(),
    share_amount_with_partners: offerSettings.share_amount_with_partners.optional(),
  })
  .meta({ id: 'OfferCreate' });
export const OfferUpdate = z
  .strictObject({ ...offerSettings, status: entityStatus })
  .partial()
  .meta({ id: 'OfferUpdate' });
export const OfferList = listQuery({ advertiser_id: intIdQuery.optional(), status: entityStatus.optional() });

const priceOut = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('fixed'), amount: moneyOut }),
  z.strictObject({ type: z.literal('percent'), percent: z.string().regex(PERCENT_PATTERN) }),
]);
export const Offer = z
  .strictObject({
    id: intId,
    advertiser_id: intId,
    name: z.string(),
    destination_url: z.string(),
    currency: currencyOut,
    payout: priceOut,
    revenue: priceOut.nullable().meta({
      description: 'What the advertiser pays the network per conversion (conversions record it as revenue); null: not recorded.',
      example: { type: 'percent', percent: '12.5' },
    }),
    share_amount_with_partners: z.boolean().meta({ description: "Whether partner postbacks may carry the sale's amount ({amount})." }),
    attribution_window_days: offerSettings.attribution_window_days,
    min_ctit_seconds: offerSettings.min_ctit_seconds,
    amount_cap: moneyOut.nullable(),
    status: entityStatus,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Offer' });

type OfferRow = Awaited<ReturnType<ApiDeps['prisma']['offer']['findUniqueOrThrow']>>;
type Decimal = OfferRow['payoutAmount'];
/** A payout or revenue rule's columns as the API writes it. */
const priceJson = (type: 'fixed' | 'percent', amount: Decimal, percent: Decimal): Out<typeof priceOut> =>
  type === 'fixed' ? { type: 'fixed', amount: formatMoney(amount!) } : { type: 'percent', percent: formatDecimal(percent!) };
export function offerJson(o: OfferRow): Out<typeof Offer> {
  return {
    id: o.id,
    advertiser_id: o.advertiserId,
    name: o.name,
    destination_url: o.destinationUrl,
    currency: o.currency,
    payout: priceJson(o.payoutType, o.payoutAmount, o.payoutPercent),
    revenue: o.revenueType === null ? null : priceJson(o.revenueType, o.revenueAmount, o.revenuePercent),
    share_amount_with_partners: o.shareAmountWithPartners,
    attribution_window_days: o.attributionWindowDays,
    min_ctit_seconds: o.minCtitSeconds,
    amount_cap: o.amountCap === null ? null : formatMoney(o.amountCap),
    status: o.status,
    created_at: o.createdAt.toISOString(),
    updated_at: o.updatedAt.toISOString(),
  };
}

// ——— Conversions, commissions, fraud flags (shaped in @trackway/domain, for events too) ———

/** The click's sub IDs, carried onto its conversion (sub1: usually the affiliate's own click id). */
const subFields = Object.fromEntries(
  SUB_NAMES.map((name) => [
    name,
    z
      .string()
      .nullable()
      .meta({
        description: `The click's ${name}; null when it had none (or its click row never arrived).`,
        example: name === 'sub1' ? 'aff-click-8f3a2c' : null,
      }),
  ]),
) as Record<SubName, z.ZodNullable<z.ZodString>>;
const subFilters = Object.fromEntries(
  SUB_NAMES.map((name) => [
    name,
    text({ min: 1, max: 255 })
      .optional()
      .meta({ description: `Only conversions whose ${name} is exactly this.` }),
  ]),
) as Record<SubName, z.ZodOptional<ReturnType<typeof text>>>;

export const Conversion = z
  .strictObject({
    id: ids.conversion,
    advertiser_id: intId,
    offer_id: intId,
    affiliate_id: intId,
    click_id: z.string(),
    order_id: z.string().nullable().meta({
      description: 'The advertiser\'s order reference; null for a conversion deduplicated by its click (postback_format dedupe "click_id", no order sent).',
    }),
    event: z.string().meta({ example: 'conversion' }),
    status: z.enum(CONVERSION_STATUSES),
    hold_reason: z
      .string()
      .nullable()
      .meta({ description: 'Why a rule held the conversion pending for review, if one did: ctit_too_short, affiliate_inactive or offer_inactive.' }),
    amount: moneyOut,
    currency: currencyOut,
    payout: moneyOut,
    payout_currency: currencyOut,
    revenue: moneyOut.nullable().meta({
      description:
        "What the network earns: the offer's revenue rule, priced like payout (in revenue_currency, the currency the payout rule uses); null when the offer records none.",
      example: '8.00',
    }),
    revenue_currency: currencyOut.nullable(),
    ...subFields,
    fraud_flags: z.array(z.string()).meta({ description: 'The rules that flagged it, oldest first.' }),
    clicked_at: timestamp,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Conversion' });
export const ConversionList = listQuery({
  order_id: text({ max: ORDER_ID_MAX }).optional(),
  advertiser_id: intIdQuery.optional(),
  affiliate_id: intIdQuery.optional(),
  offer_id: intIdQuery.optional(),
  status: z.enum(CONVERSION_STATUSES).optional(),
  ...subFilters,
  created_from: dateTimeInput
    .optional()
    .meta({ description: 'Only conversions created at or after this time (ISO 8601 with a time zone).', example: '2026-12-01T00:00:00Z' }),
  created_to: dateTimeInput
    .optional()
    .meta({ description: 'Only conversions created before this time (exclusive; after created_from).', example: '2026-12-02T00:00:00Z' }),
}).superRefine((query, ctx) => {
  if (query.created_from && query.created_to && query.created_from >= query.created_to)
    ctx.addIssue({ code: 'custom', path: ['created_to'], message: 'must be after created_from' });
});
export const ConversionReview = z.strictObject({ status: z.enum(['approved', 'rejected']) }).meta({ id: 'ConversionReview' });

/** conversionJson (domain), checked against its schema. */

const Commission = z
  .strictObject({
    id: ids.commission,
    conversion_id: ids.conversion,
    affiliate_id: intId,
    amount: moneyOut,
    currency: currencyOut,
    status: z.enum(['pending', 'approved', 'voided']),
    created_at: timestamp,
  })
  .meta({ id: 'Commission' });

const FraudFlag = z
  .strictObject({
    id: ids.fraudFlag,
    rule: z
      .string()
      .meta({ description: 'unknown_click, click_expired, inactive_affiliate, inactive_offer, ctit_too_short or amount_over_cap.', example: 'ctit_too_short' }),
    postback_id: ids.postback,
    conversion_id: ids.conversion.nullable(),
    details: z.unknown().meta({ description: 'The rule\'s figures, e.g. {"ctit_seconds": 3, "min_ctit_seconds": 10}.' }),
    created_at: timestamp,
  })
  .meta({ id: 'FraudFlag' });

// ——— Postbacks (outcomes) ———

export const Postback = z
  .strictObject({
    id: ids.postback,
    status: z.enum(['queued', 'accepted', 'duplicate', 'rejected']),
    reason: z.string().nullable().meta({
      description:
        'Why it was rejected (unknown_click, click_expired, invalid_transition, amount_locked, currency_mismatch), or why it is still queued (retrying, processing_failed).',
    }),
    conversion_id: ids.conversion.nullable(),
    advertiser_id: intId,
    params: z.record(z.string(), z.unknown()).optional().meta({ description: 'The fields Trackway read from it; absent while queued.' }),
    ignored_params: z
      .record(z.string(), z.unknown())
      .meta({ description: 'The parameters it carried that Trackway does not read, as sent.', example: { sum: '30.00', et: 'lead' } }),
    received_at: timestamp,
    processed_at: timestamp.nullable(),
  })
  .meta({ id: 'Postback' });

type PostbackRow = NonNullable<Awaited<ReturnType<ApiDeps['prisma']['postback']['findUnique']>>>;
export function postbackJson(row: PostbackRow): Out<typeof Postback> {
  return {
    id: row.id,
    status: row.status,
    reason: row.reason,
    conversion_id: row.conversionId,
    advertiser_id: row.advertiserId,
    params: row.params as Record<string, unknown>,
    ignored_params: (row.ignoredParams as Record<string, unknown> | null) ?? {},
    received_at: row.receivedAt.toISOString(),
    processed_at: row.processedAt.toISOString(),
  };
}

/** A postback whose job is still in Redis: no outcome yet. */
export function queuedPostbackJson(
  id: string,
  postback: { advertiserId: number; receivedAt: string; ignoredParams?: Record<string, unknown> },
  reason: 'processing_failed' | 'retrying' | null,
): Out<typeof Postback> {
  return {
    id,
    status: 'queued',
    reason,
    conversion_id: null,
    advertiser_id: postback.advertiserId,
    ignored_params: postback.ignoredParams ?? {},
    received_at: postback.receivedAt,
    processed_at: null,
  };
}

// ——— Webhook endpoints and deliveries ———

const eventTypes = z
  .array(z.string())
  .min(1, 'subscribe to at least one event type, or ["*"]')
  .max(50)
  .superRefine((types, ctx) => {
    const unknown = types.filter((t) => t !== '*' && !(SUBSCRIBABLE_EVENT_TYPES as string[]).includes(t));
    if (unknown.length > 0) ctx.addIssue({ code: 'custom', message: `unknown event types: ${unknown.join(', ')} (see GET /v1/event-types)` });
  })
  .transform((types) => (types.includes('*') ? ['*'] : [...new Set(types)]))
  .meta({ description: `Event types to receive, or ["*"] for all: ${SUBSCRIBABLE_EVENT_TYPES.join(', ')}.`, example: ['conversion.approved'] });
const customHeaders = z
  .record(
    z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, 'is not a header name'),
    z
      .string()
      .max(1024)
      .regex(/^[\x20-\x7e\t]*$/, 'must be printable ASCII on one line'),
  )
  .refine((h) => Object.keys(h).length <= 20, 'at most 20 headers')
  .refine((h) => Object.keys(h).every((name) => !RESERVED_HEADERS.has(name.toLowerCase())), 'may not set content-type, user-agent or the webhook-* headers')
  .meta({ description: 'Sent with every delivery (at most 20; not content-type, user-agent or webhook-*). Stored encrypted; answers show only the names.' });
const endpointFields = {
  url: urlText({ max: 2048 }).meta({ description: 'https (http only where WEBHOOK_ALLOW_HTTP); no credentials; not a private address.' }),
  event_types: eventTypes,
  description: text({ max: 500 }).nullable().optional(),
  headers: customHeaders.optional(),
  rate_limit_per_second: z.number().int().min(1).max(10_000).nullable().optional(),
};
export const EndpointCreate = z.strictObject(endpointFields).meta({ id: 'WebhookEndpointCreate' });
export const EndpointUpdate = z.strictObject(endpointFields).partial().meta({ id: 'WebhookEndpointUpdate' });
export const EndpointList = listQuery({ enabled: z.enum(['true', 'false']).optional() });
export const EndpointDeliveriesList = listQuery({ status: z.enum(['pending', 'succeeded', 'failed']).optional() });
export const EndpointRecover = z
  .strictObject({ since: dateTimeInput.meta({ description: 'ISO 8601 with a time zone.', example: '2026-12-01T09:30:00Z' }) })
  .meta({ id: 'WebhookEndpointRecover' });

export const WebhookEndpoint = z
  .strictObject({
    id: ids.endpoint,
    url: z.string(),
    description: z.string().nullable(),
    event_types: z.array(z.string()),
    headers: z.record(z.string(), z.string()).meta({ description: 'Custom header names; every value is shown masked.' }),
    rate_limit_per_second: endpointFields.rate_limit_per_second.unwrap(),
    enabled: z.boolean(),
    disabled_reason: z.string().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'WebhookEndpoint' });
const signingSecret = z
  .string()
  .meta({ description: 'Standard Webhooks signing secret, shown in this answer and on rotation only.', example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' });
export const WebhookEndpointWithSecret = WebhookEndpoint.extend({ secret: signingSecret }).meta({ id: 'WebhookEndpointWithSecret' });
export const EndpointSecretRotated = z
  .strictObject({ id: ids.endpoint, secret: signingSecret, previous_secret_expires_at: timestamp })
  .meta({ id: 'WebhookEndpointSecretRotated' });
export const EndpointTestSent = z.strictObject({ event_id: ids.event, delivery_id: ids.delivery }).meta({ id: 'WebhookTestSent' });
/** At most this many failed deliveries are re-sent per recover call. */
export const RECOVER_MAX = 10_000;
export const EndpointRecovered = z
  .strictObject({ recovered: count.max(RECOVER_MAX), has_more: z.boolean().meta({ description: 'More than 10,000 failed deliveries matched: call again.' }) })
  .meta({ id: 'WebhookEndpointRecovered' });

/** endpointJson (domain), checked against its schema. */

// ——— Partner postbacks (webhook_endpoints rows of kind partner_postback) ———

/** What Postgres holds of a partner URL once sealed (url_sealed is varchar(8192)). */
const PARTNER_URL_BYTES = 6000;
const macroList = PARTNER_MACROS.map((m) => `{${m}}`).join(', ');
const partnerUrl = urlText({ max: 2048 })
  .refine((value) => Buffer.byteLength(value, 'utf8') <= PARTNER_URL_BYTES, `must be at most ${PARTNER_URL_BYTES} bytes in UTF-8`)
  .superRefine((value, ctx) => {
    const problem = partnerUrlProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .meta({
    description: `The partner's postback URL: https (http only where WEBHOOK_ALLOW_HTTP), no credentials, not a private address. Without a preset a template whose macros are filled in (percent-encoded): ${macroList} ({amount} only where the offer has share_amount_with_partners). With a preset, the base URL its query is appended to. Stored sealed; answers after this one show its query values that are not macros masked.`,
    example: 'https://tracker.example/postback?cid={sub1}&payout={payout}&status={status}&token=s3cr3t',
  });
const partnerEventTypes = z
  .array(z.enum(PARTNER_EVENT_TYPES))
  .min(1, 'subscribe to at least one event type')
  .max(20)
  .transform((types) => [...new Set(types)])
  .meta({
    description: `The conversion events sent to the partner (default ${JSON.stringify(DEFAULT_PARTNER_EVENT_TYPES)}).`,
    example: ['conversion.approved'],
  });
const partnerFields = {
  url: partnerUrl,
  offer_id: intIdSchema.nullable().meta({
    description: "Only this offer's conversions (replacing the affiliate's global postbacks for its event types); null: every offer of the affiliate.",
  }),
  event_types: partnerEventTypes,
  method: z.enum(PARTNER_METHODS).meta({ description: 'GET (the default), or POST with the query form-encoded as the body.' }),
  preset: z.enum(PARTNER_PRESET_NAMES).nullable().meta({
    description: "The partner's tracker: its query (click id from {sub1}, payout, status words) is appended to url. null: url is the whole template.",
  }),
  description: text({ max: 500 }).nullable(),
  rate_limit_per_second: z.number().int().min(1).max(10_000).nullable(),
};
export const PartnerPostbackCreate = z
  .strictObject({
    affiliate_id: intIdSchema.meta({ description: 'The affiliate whose conversions are reported.' }),
    url: partnerFields.url,
    offer_id: partnerFields.offer_id.optional(),
    event_types: partnerFields.event_types.optional(),
    method: partnerFields.method.optional(),
    preset: partnerFields.preset.optional(),
    description: partnerFields.description.optional(),
    rate_limit_per_second: partnerFields.rate_limit_per_second.optional(),
  })
  .meta({
    id: 'PartnerPostbackCreate',
    example: { affiliate_id: 7, url: 'https://tracker.example/postback?cid={sub1}&payout={payout}&token=s3cr3t', event_types: ['conversion.approved'] },
  });
export const PartnerPostbackUpdate = z
  .strictObject(partnerFields)
  .partial()
  .meta({ id: 'PartnerPostbackUpdate', example: { offer_id: null, method: 'POST' } });
export const PartnerPostbackList = listQuery({
  affiliate_id: intIdQuery.optional(),
  offer_id: intIdQuery.optional(),
  enabled: z.enum(['true', 'false']).optional(),
});

const partnerPostbackFields = {
  id: ids.partnerPostback,
  affiliate_id: intId,
  offer_id: intId.nullable().meta({ description: 'null: every offer of the affiliate.' }),
  url: z.string().meta({
    description: 'Its query values that are not macros shown masked (***).',
    example: 'https://tracker.example/postback?cid={sub1}&payout={payout}&token=***',
  }),
  method: z.enum(PARTNER_METHODS),
  preset: z.enum(PARTNER_PRESET_NAMES).nullable(),
  event_types: z.array(z.enum(PARTNER_EVENT_TYPES)),
  description: z.string().nullable(),
  rate_limit_per_second: partnerFields.rate_limit_per_second,
  enabled: z.boolean(),
  disabled_reason: z.string().nullable(),
  created_at: timestamp,
  updated_at: timestamp,
};
const partnerPostbackExample = {
  id: 'pp_01JD8Z6Q64E6G8J0L2N4Q6S8U0',
  affiliate_id: 7,
  offer_id: null,
  url: 'https://tracker.example/postback?cid={sub1}&payout={payout}&token=***',
  method: 'GET',
  preset: null,
  event_types: ['conversion.approved'],
  description: null,
  rate_limit_per_second: null,
  enabled: true,
  disabled_reason: null,
  created_at: '2026-12-01T09:00:00.000Z',
  updated_at: '2026-12-01T09:00:00.000Z',
};
export const PartnerPostback = z
  .strictObject(partnerPostbackFields)
  .meta({ id: 'PartnerPostback', description: "An affiliate's tracker, told of its conversions.", example: partnerPostbackExample });
export const PartnerPostbackCreated = z
  .strictObject({
    ...partnerPostbackFields,
    url: z.string().meta({
      description: 'Whole, in this answer only: every later answer shows its query values that are not macros masked.',
      example: 'https://tracker.example/postback?cid={sub1}&payout={payout}&token=s3cr3t',
    }),
  })
  .meta({
    id: 'PartnerPostbackCreated',
    example: { ...partnerPostbackExample, url: 'https://tracker.example/postback?cid={sub1}&payout={payout}&token=s3cr3t' },
  });
export const PartnerPostbackPage = pageOf(PartnerPostback, 'PartnerPostbackPage');

export const Delivery = z
  .strictObject({
    id: ids.delivery,
    event_id: ids.event,
    endpoint_id: ids.deliveryTarget,
    event_type: z.enum(EVENT_TYPES),
    status: z.enum(['pending', 'succeeded', 'failed']),
    attempt_count: count,
    next_attempt_at: timestamp.nullable(),
    missing_macros: z.array(z.string()).meta({
      description: `A partner postback's macros that had no value for this event, each sent as an empty string (${PARTNER_MACROS.map((m) => `{${m}}`).join(', ')}); empty for a webhook.`,
      example: ['sub2'],
    }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Delivery' });
const DeliveryAttempt = z
  .strictObject({
    number: count.min(1),
    at: timestamp,
    duration_ms: count,
    status_code: z
      .number()
      .int()
      .min(100)
      .max(999)
      .nullable()
      .meta({ description: "The receiver's HTTP status (three digits); null when there was no answer." }),
    error: z.string().nullable().meta({ description: 'When there was no HTTP answer: timeout, dns, refused, reset, tls, ssrf_blocked, network.' }),
    response_body: z.string().nullable(),
  })
  .meta({ id: 'DeliveryAttempt' });
export const DeliveryPage = pageOf(Delivery, 'DeliveryPage');
export const DeliveryWithAttempts = Delivery.extend({ attempts: z.array(DeliveryAttempt) }).meta({ id: 'DeliveryWithAttempts' });
export const DeliveryRetried = z.strictObject({ id: ids.delivery, status: z.literal('pending') }).meta({ id: 'DeliveryRetried' });

type DeliveryRow = {
  id: string;
  eventId: string;
  endpointId: string;
  eventType: string;
  status: 'pending' | 'succeeded' | 'failed';
  attemptCount: number;
  nextAttemptAt: Date | null;
  missingMacros: string[];
  createdAt: Date;
  updatedAt: Date;
};
export function deliveryJson(d: DeliveryRow): Out<typeof Delivery> {
  return {
    id: d.id,
    event_id: d.eventId,
    endpoint_id: d.endpointId,
    event_type: d.eventType as EventType,
    status: d.status,
    attempt_count: d.attemptCount,
    next_attempt_at: d.nextAttemptAt?.toISOString() ?? null,
    missing_macros: d.missingMacros,
    created_at: d.createdAt.toISOString(),
    updated_at: d.updatedAt.toISOString(),
  };
}

type AttemptRow = { number: number; at: Date; durationMs: number; statusCode: number | null; error: string | null; responseBody: string | null };
export function deliveryWithAttemptsJson(d: DeliveryRow & { attempts: AttemptRow[] }): Out<typeof DeliveryWithAttempts> {
  return {
    ...deliveryJson(d),
    attempts: d.attempts.map((a) => ({
      number: a.number,
      at: a.at.toISOString(),
      duration_ms: a.durationMs,
      status_code: a.statusCode,
      error: a.error,
      response_body: a.responseBody,
    })),
  };
}

// ——— Payouts (shaped in @trackway/ledger, for payout.sent too) ———

export const PayoutCreate = z
  .strictObject({
    affiliate_id: intIdSchema,
    currency,
    allow_inactive: z.boolean().optional().meta({ description: 'Pay an affiliate whose status is inactive (otherwise 409 affiliate_inactive).' }),
  })
  .meta({ id: 'PayoutCreate' });
export const PayoutMarkSent = z
  .strictObject({ reference: text({ trim: true, min: 1, max: 255 }).meta({ example: 'WIRE-2026-11-27-001' }) })
  .meta({ id: 'PayoutMarkSent' });
export const PayoutList = listQuery({ affiliate_id: intIdQuery.optional(), status: z.enum(['pending', 'sent']).optional() });

const payoutFields = {
  id: ids.payout,
  affiliate_id: intId,
  currency: currencyOut,
  amount: moneyOut,
  status: z.enum(['pending', 'sent']),
  reference: z.string().nullable(),
  sent_at: timestamp.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
};
export const Payout = z.strictObject(payoutFields).meta({ id: 'Payout', description: 'A payout as lists show it.' });
export const PayoutWithCommissions = z.strictObject({ ...payoutFields, commission_ids: z.array(ids.commission) }).meta({ id: 'PayoutWithCommissions' });
export const PayoutCreated = PayoutWithCommissions.extend({
  has_more: z.boolean().meta({
    description: 'The payout is full (PAYOUT_AMOUNT_MAX), or was marked sent before it was complete: ask again for the next one.',
  }),
}).meta({ id: 'PayoutCreated' });

type PayoutRow = Parameters<typeof payoutJson>[0];
/** payoutJson (ledger), checked against its schemas. */
export const payoutWithCommissionsResponse = (row: PayoutRow, commissionIds: string[]): Out<typeof PayoutWithCommissions> => {
  const json = payoutJson(row, commissionIds);
  return { ...json, commission_ids: commissionIds };
};

// ——— Events: the webhooks' payloads ———

const previousStatus = z.enum(CONVERSION_STATUSES).nullable().meta({ description: 'null when the conversion was created in this status.' });
/** Each event type's `data`, keyed by type: exhaustive over EVENT_TYPES. */
const EVENT_DATA = {
  'conversion.created': z.strictObject({ conversion: Conversion }),
  'conversion.approved': z.strictObject({ conversion: Conversion, previous_status: previousStatus }),
  'conversion.rejected': z.strictObject({ conversion: Conversion, previous_status: previousStatus }),
  'conversion.updated': z.strictObject({
    conversion: Conversion,
    previous_amount: moneyOut.meta({ description: 'The amount before this change.' }),
    previous_payout: moneyOut.meta({ description: 'The payout before this change.' }),
    previous_revenue: moneyOut.nullable().meta({ description: 'The revenue before this change; null when the offer records none.' }),
  }),
  'commission.created': z.strictObject({ commission: Commission }),
  'commission.updated': z.strictObject({ commission: Commission, previous_amount: moneyOut.meta({ description: 'The amount before this change.' }) }),
  'fraud.flagged': z.strictObject({ fraud_flag: FraudFlag }),
  'payout.sent': z.strictObject({ payout: PayoutWithCommissions }),
  'endpoint.disabled': z.strictObject({
    endpoint: z.union([WebhookEndpoint, PartnerPostback]).meta({ description: 'The webhook endpoint or partner postback, as GET shows it.' }),
  }),
  'webhook.test': z.strictObject({
    endpoint_id: ids.deliveryTarget,
    message: z.string(),
    conversion: Conversion.optional().meta({
      description: "To a partner postback only: a sample conversion (the partner's affiliate and offer) its macros are filled from.",
    }),
  }),
} satisfies Record<EventType, z.ZodType>;

const eventComponentId = (type: EventType) =>
  `${type
    .split('.')
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('')}Event`;

/** The body of every webhook: Standard Webhooks' envelope around the event's data. */
export const eventEnvelope = <T extends EventType>(type: T) =>
  z
    .strictObject({
      id: ids.event.meta({ description: 'Also the webhook-id header: the same across retries and replays, so receivers deduplicate on it.' }),
      type: z.literal(type),
      timestamp,
      data: EVENT_DATA[type],
    })
    .meta({ id: eventComponentId(type) });

// The shapers that build events outside this service (conversionJson, commissionJson,
// fraudFlagJson in domain, endpointJson, payoutJson in ledger) must produce these schemas' types:
// a compile error otherwise. The tests validate real emitted events against the document too.
const produces = <S extends z.ZodType>(_schema: S, _shaper: (...args: never[]) => z.output<S>) => undefined;
produces(Conversion, conversionJson);
produces(Commission, commissionJson);
produces(FraudFlag, fraudFlagJson);
produces(WebhookEndpoint, endpointJson);
produces(PartnerPostback, partnerPostbackJson);
produces(Payout, payoutJson);

/** GET /v1/event-types: the catalog, with an example of each type's data. */
export const eventTypesJson = (): Out<typeof EventTypeList> => ({
  data: (Object.entries(EVENT_CATALOG) as [EventType, (typeof EVENT_CATALOG)[EventType]][]).map(([type, { description, example }]) => ({
    type,
    description,
    example,
  })),
});

export const EventTypeList = z
  .strictObject({
    data: z.array(
      z.strictObject({
        type: z.enum(EVENT_TYPES),
        description: z.string(),
        example: z.record(z.string(), z.unknown()).meta({ description: "An example of the event's `data` (see the webhooks of this document)." }),
      }),
    ),
  })
  .meta({ id: 'EventTypeList' });
