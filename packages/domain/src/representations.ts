import { type EndpointHeaderColumns, maskHeaders } from './endpoint-headers';
import { formatMoney } from './money';
import { PARTNER_EVENT_TYPES, type PartnerEventType, partnerSettingsOf } from './partner-postbacks';
import { sentOrderId } from './postback-formats';
import type { CommissionStatus, ConversionStatus } from './status';

// The JSON shapes shared by the admin API and by event payloads: snake_case, money as strings.
type DecimalLike = { toString(): string };

/**
 * A conversion: the one shape the domain plans with, the hot path's statements read (their
 * column aliases are these names) and Prisma's rows satisfy (money as Decimal). conversionJson
 * is its one way out, to the API and to events.
 */
export interface ConversionRow {
  id: string;
  advertiserId: number;
  offerId: number;
  affiliateId: number;
  clickId: string;
  orderId: string;
  event: string;
  status: ConversionStatus;
  holdReason: string | null;
  amount: DecimalLike;
  currency: string;
  payout: DecimalLike;
  payoutCurrency: string;
  /** What the network earns (the offer's revenue rule); null when the offer had none. */
  revenue?: DecimalLike | null;
  revenueCurrency?: string | null;
  /** Its click's sub IDs (null: none, or its click row never arrived). */
  sub1?: string | null;
  sub2?: string | null;
  sub3?: string | null;
  sub4?: string | null;
  sub5?: string | null;
  clickedAt: Date;
  createdAt: Date;
  updatedAt: Date;
  /** The rules of its fraud flags, oldest first. */
  fraudFlags: string[];
}

export function conversionJson(row: ConversionRow) {
  return {
    id: row.id,
    advertiser_id: row.advertiserId,
    offer_id: row.offerId,
    affiliate_id: row.affiliateId,
    click_id: row.clickId,
    // null: deduplicated by its click (the advertiser's format has dedupe "click_id" and sent no order).
    order_id: sentOrderId(row.orderId),
    event: row.event,
    status: row.status,
    hold_reason: row.holdReason,
    amount: formatMoney(row.amount),
    currency: row.currency,
    payout: formatMoney(row.payout),
    payout_currency: row.payoutCurrency,
    revenue: row.revenue == null ? null : formatMoney(row.revenue),
    revenue_currency: row.revenueCurrency ?? null,
    sub1: row.sub1 ?? null,
    sub2: row.sub2 ?? null,
    sub3: row.sub3 ?? null,
    sub4: row.sub4 ?? null,
    sub5: row.sub5 ?? null,
    fraud_flags: row.fraudFlags,
    clicked_at: row.clickedAt.toISOString(),
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

export interface CommissionRow {
  id: string;
  conversionId: string;
  affiliateId: number;
  amount: DecimalLike;
  currency: string;
  status: CommissionStatus;
  createdAt: Date;
}

export function commissionJson(row: CommissionRow) {
  return {
    id: row.id,
    conversion_id: row.conversionId,
    affiliate_id: row.affiliateId,
    amount: formatMoney(row.amount),
    currency: row.currency,
    status: row.status,
    created_at: row.createdAt.toISOString(),
  };
}

export interface FraudFlagRow {
  id: string;
  postbackId: string;
  conversionId: string | null;
  rule: string;
  details: unknown;
  createdAt: Date;
}

export function fraudFlagJson(row: FraudFlagRow) {
  return {
    id: row.id,
    rule: row.rule,
    postback_id: row.postbackId,
    conversion_id: row.conversionId,
    details: row.details,
    created_at: row.createdAt.toISOString(),
  };
}

export interface EndpointRow extends EndpointHeaderColumns {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  rateLimitPerSecond: number | null;
  enabled: boolean;
  disabledReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export function endpointJson(row: EndpointRow) {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    event_types: row.eventTypes,
    // Never the values: they are receivers' credentials.
    headers: maskHeaders(row),
    rate_limit_per_second: row.rateLimitPerSecond,
    enabled: row.enabled,
    disabled_reason: row.disabledReason,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

/** A partner postback's row (a webhook_endpoints row of kind partner_postback): `url` is the masked URL. */
export interface PartnerPostbackRow {
  id: string;
  affiliateId: number;
  offerId: number | null;
  url: string;
  method: string;
  preset: string | null;
  eventTypes: string[];
  description: string | null;
  rateLimitPerSecond: number | null;
  enabled: boolean;
  disabledReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * A partner postback as every read shows it: its URL masked (query values that are not macros,
 * maskPartnerUrl), never the sealed one; its creation answer shows the URL once, whole.
 */
export function partnerPostbackJson(row: PartnerPostbackRow) {
  return {
    id: row.id,
    affiliate_id: row.affiliateId,
    offer_id: row.offerId,
    url: row.url,
    ...partnerSettingsOf(row),
    event_types: row.eventTypes.filter((t): t is PartnerEventType => (PARTNER_EVENT_TYPES as readonly string[]).includes(t)),
    description: row.description,
    rate_limit_per_second: row.rateLimitPerSecond,
    enabled: row.enabled,
    disabled_reason: row.disabledReason,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}
