import {
  DEFAULT_PARTNER_EVENT_TYPES,
  EVENT_CATALOG,
  type PartnerPresetName,
  maskPartnerUrl,
  newId,
  partnerEventTypesProblem,
  partnerPostbackJson,
  partnerRequest,
  partnerSettingsOf,
} from '@trackway/domain';
import { type FieldErrors, badRequest, notFound } from '@trackway/http';
import { deleteEndpoint } from '@trackway/ledger';
import type { ApiDeps } from '../deps';
import { listPage } from '../pagination';
import { prefixedIdPath } from '../path-params';
import {
  DeliveryPage,
  EndpointDeliveriesList,
  EndpointRecover,
  EndpointRecovered,
  EndpointTestSent,
  PartnerPostback,
  PartnerPostbackCreate,
  PartnerPostbackCreated,
  PartnerPostbackList,
  PartnerPostbackPage,
  PartnerPostbackUpdate,
  RECOVER_MAX,
} from '../representations';
import { ERRORS, resource, route } from '../route';
import { checkEndpointUrl, deliveriesPage, recoverFailed, sendTestEvent } from './webhook-endpoints';

/*
 * Partner postbacks: an affiliate's own tracker told of its conversions (docs/partners.md). Each
 * is a webhook_endpoints row of kind partner_postback, so deliveries, attempts, replay, recover,
 * the breaker and rate limits are the webhook engine's; its `url` column holds the URL masked
 * (for display) and `url_sealed` the URL itself, sealed like endpoint header values.
 */

const id = prefixedIdPath('partnerPostback', 'Partner postback');
/** What the url column (varchar(2048)) holds: the masked URL. */
const URL_MAX = 2048;

type Row = Awaited<ReturnType<ApiDeps['prisma']['webhookEndpoint']['findUniqueOrThrow']>>;

/** A row as a partner postback, or null when it is not one (a webhook endpoint's row). */
function asPartner(row: Row | null) {
  if (row?.kind !== 'partner_postback' || row.affiliateId === null || row.urlSealed === null) return null;
  return { ...row, affiliateId: row.affiliateId, urlSealed: row.urlSealed };
}

async function load(deps: ApiDeps, postbackId: string) {
  const postback = asPartner(await deps.prisma.webhookEndpoint.findUnique({ where: { id: postbackId } }));
  if (!postback) throw notFound('Partner postback');
  return postback;
}

/** Tells caching processes (the delivery worker), and answers the postback as its update returned it. */
async function changed(deps: ApiDeps, row: Row) {
  await deps.invalidate('endpoint', row.id);
  return partnerPostbackJson(asPartner(row)!);
}

/**
 * The url and url_sealed columns of a URL the body schema took (partnerUrlProblem: http(s), known
 * macros, none in the host), or a 400: the same scheme and address checks as webhook endpoints.
 */
function urlColumns(deps: ApiDeps, url: string) {
  checkEndpointUrl(deps, url);
  const masked = maskPartnerUrl(url);
  if (masked.length > URL_MAX) throw badRequest({ url: `must be at most ${URL_MAX} characters once its query values are masked (***)` });
  return { url: masked, urlSealed: deps.box.seal(url) };
}

/** A 400 naming each reference that names nothing: the affiliate, the offer (null: every offer). */
async function checkReferences(deps: ApiDeps, refs: { affiliate_id?: number; offer_id?: number | null }) {
  const fields: FieldErrors = {};
  if (refs.affiliate_id !== undefined && !(await deps.prisma.affiliate.findUnique({ where: { id: refs.affiliate_id }, select: { id: true } })))
    fields.affiliate_id = 'no affiliate has this id';
  if (refs.offer_id != null && !(await deps.prisma.offer.findUnique({ where: { id: refs.offer_id }, select: { id: true } })))
    fields.offer_id = 'no offer has this id';
  if (Object.keys(fields).length > 0) throw badRequest(fields);
}

/** A 400 when the preset cannot tell its tracker of these event types (partnerEventTypesProblem). */
function checkEventTypes(preset: PartnerPresetName | null, eventTypes: readonly string[]) {
  const problem = partnerEventTypesProblem(preset, eventTypes);
  if (problem) throw badRequest({ event_types: problem });
}

async function setEnabled(deps: ApiDeps, postbackId: string, enabled: boolean) {
  const { id: found } = await load(deps, postbackId);
  const data = enabled ? { enabled: true, disabledReason: null, failingSince: null } : { enabled: false, disabledReason: 'Disabled by an administrator.' };
  return changed(deps, await deps.prisma.webhookEndpoint.update({ where: { id: found }, data }));
}

const TEST_MESSAGE = 'This is a test partner postback from Trackway, with sample values.';

export default resource(
  {
    tag: 'Partner postbacks',
    base: '/v1/partner-postbacks',
    description:
      "An affiliate's own tracker, called when its conversions are recorded: a GET (or form POST) to its URL with macros filled in, or in its tracker's dialect (a preset). Delivered, logged, retried and replayed like webhooks.",
  },
  [
    route({
      method: 'post',
      path: '/v1/partner-postbacks',
      summary: 'Create a partner postback',
      description:
        "Without offer_id it applies to every offer of the affiliate; with one, to that offer only, replacing the affiliate's global postbacks for the event types it subscribes to. The answer shows the URL whole this once; it is stored sealed, and every later answer shows its query values that are not macros masked.",
      body: PartnerPostbackCreate,
      answer: { status: 201, description: 'The new partner postback, its URL whole.', schema: PartnerPostbackCreated },
      errors: {
        400: `${ERRORS[400]} A url with an unknown macro, a macro in its host, a masked value (***), or an address that may not be called; affiliate_id or offer_id naming nothing; a preset without a status parameter (voluum, everflow) with event types other than conversion.approved.`,
      },
      handler: async ({ body, deps }) => {
        const columns = urlColumns(deps, body.url);
        await checkReferences(deps, body);
        checkEventTypes(body.preset ?? null, body.event_types ?? DEFAULT_PARTNER_EVENT_TYPES);
        const row = await deps.prisma.webhookEndpoint.create({
          data: {
            id: newId('partnerPostback'),
            kind: 'partner_postback',
            ...columns,
            secretSealed: null,
            affiliateId: body.affiliate_id,
            offerId: body.offer_id ?? null,
            eventTypes: body.event_types ?? [...DEFAULT_PARTNER_EVENT_TYPES],
            method: body.method ?? 'GET',
            preset: body.preset ?? null,
            description: body.description ?? null,
            rateLimitPerSecond: body.rate_limit_per_second ?? null,
          },
        });
        return { ...(await changed(deps, row)), url: body.url };
      },
    }),
    route({
      method: 'get',
      path: '/v1/partner-postbacks',
      summary: 'List partner postbacks',
      description: 'Newest first; filter by affiliate, offer and enabled.',
      query: PartnerPostbackList,
      answer: { status: 200, description: 'A page, newest first.', schema: PartnerPostbackPage },
      handler: async ({ query, deps }) => {
        const enabled = query.enabled === undefined ? undefined : query.enabled === 'true';
        return listPage(
          query,
          'string',
          ({ id, ...keyset }) =>
            deps.prisma.webhookEndpoint.findMany({
              where: { kind: 'partner_postback', affiliateId: query.affiliate_id, offerId: query.offer_id, enabled, id },
              ...keyset,
            }),
          (row: Row) => partnerPostbackJson(asPartner(row)!),
        );
      },
    }),
    route({
      method: 'get',
      path: '/v1/partner-postbacks/{id}',
      summary: 'Get a partner postback',
      description: 'Its URL shown masked: query values that are not macros as ***.',
      params: id,
      answer: { status: 200, description: 'The partner postback.', schema: PartnerPostback },
      handler: async ({ params, deps }) => partnerPostbackJson(await load(deps, params.id)),
    }),
    route({
      method: 'patch',
      path: '/v1/partner-postbacks/{id}',
      summary: 'Update a partner postback',
      description:
        'Only the fields given change; offer_id null makes it global for the affiliate, preset null removes the preset. A new url is checked, sealed and masked as at creation.',
      params: id,
      body: PartnerPostbackUpdate,
      answer: { status: 200, description: 'The partner postback, updated.', schema: PartnerPostback },
      errors: {
        400: `${ERRORS[400]} A url with an unknown macro, a macro in its host, a masked value (***), or an address that may not be called; offer_id naming nothing; a preset without a status parameter with event types other than conversion.approved.`,
      },
      handler: async ({ params, body, deps }) => {
        const current = await load(deps, params.id);
        const found = current.id;
        const columns = body.url === undefined ? {} : urlColumns(deps, body.url);
        await checkReferences(deps, { offer_id: body.offer_id });
        checkEventTypes(body.preset === undefined ? partnerSettingsOf(current).preset : body.preset, body.event_types ?? current.eventTypes);
        const updated = await deps.prisma.webhookEndpoint.update({
          where: { id: found },
          data: {
            ...columns,
            offerId: body.offer_id,
            eventTypes: body.event_types,
            method: body.method,
            preset: body.preset,
            description: body.description,
            rateLimitPerSecond: body.rate_limit_per_second,
          },
        });
        return changed(deps, updated);
      },
    }),
    route({
      method: 'delete',
      path: '/v1/partner-postbacks/{id}',
      summary: 'Delete a partner postback',
      description: 'Its deliveries and their log go with it.',
      params: id,
      answer: { status: 204, description: 'Deleted.' },
      handler: async ({ params, deps }) => {
        const { id: found } = await load(deps, params.id);
        await deleteEndpoint(deps.prisma, found);
        await deps.invalidate('endpoint', found);
      },
    }),
    route({
      method: 'post',
      path: '/v1/partner-postbacks/{id}/enable',
      summary: 'Enable a partner postback',
      description: 'Postbacks are sent again (a disabled one gets none); its failing clock starts afresh.',
      params: id,
      answer: { status: 200, description: 'The partner postback.', schema: PartnerPostback },
      handler: ({ params, deps }) => setEnabled(deps, params.id, true),
    }),
    route({
      method: 'post',
      path: '/v1/partner-postbacks/{id}/disable',
      summary: 'Disable a partner postback',
      description: 'No more postbacks to it until it is enabled again.',
      params: id,
      answer: { status: 200, description: 'The partner postback.', schema: PartnerPostback },
      handler: ({ params, deps }) => setEnabled(deps, params.id, false),
    }),
    route({
      method: 'post',
      path: '/v1/partner-postbacks/{id}/test',
      summary: 'Send a test partner postback',
      description:
        'A webhook.test event for this partner postback only, carrying a sample approved conversion of its affiliate (and its offer) that the macros are filled from: written with its delivery in one transaction, then sent like every other postback. The delivery lists the macros the sample leaves empty.',
      params: id,
      answer: { status: 202, description: 'The event and its delivery are queued.', schema: EndpointTestSent },
      errors: { 409: 'endpoint_disabled.' },
      handler: async ({ params, deps }) => {
        const postback = await load(deps, params.id);
        const sample = EVENT_CATALOG['conversion.approved'].example.conversion as Record<string, unknown>;
        const conversion = { ...sample, affiliate_id: postback.affiliateId, offer_id: postback.offerId ?? sample.offer_id };
        const offer = await deps.prisma.offer.findUnique({ where: { id: Number(conversion.offer_id) }, select: { shareAmountWithPartners: true } });
        const request = partnerRequest(
          { url: deps.box.open(postback.urlSealed), ...partnerSettingsOf(postback) },
          { type: 'webhook.test', timestamp: new Date().toISOString(), data: { conversion } },
          { shareAmount: offer?.shareAmountWithPartners === true },
        );
        return sendTestEvent(deps, postback, { endpoint_id: postback.id, message: TEST_MESSAGE, conversion }, request?.missing ?? []);
      },
    }),
    route({
      method: 'get',
      path: '/v1/partner-postbacks/{id}/deliveries',
      summary: "List a partner postback's deliveries",
      description: 'The delivery log, newest first; filter by status. Each delivery lists the macros that had no value (missing_macros).',
      params: id,
      query: EndpointDeliveriesList,
      answer: { status: 200, description: 'A page, newest first.', schema: DeliveryPage },
      handler: async ({ params, query, deps }) => deliveriesPage(deps, (await load(deps, params.id)).id, query),
    }),
    route({
      method: 'post',
      path: '/v1/partner-postbacks/{id}/recover',
      summary: 'Re-send failed partner postbacks since a time',
      description: `Every failed delivery of this partner postback since a time, at most ${RECOVER_MAX.toLocaleString('en')} per call; has_more says whether more remain.`,
      params: id,
      body: EndpointRecover,
      answer: { status: 202, description: 'The deliveries are queued again.', schema: EndpointRecovered },
      errors: { 409: 'endpoint_disabled.', 503: ERRORS[503] },
      handler: async ({ params, body, deps }) => recoverFailed(deps, await load(deps, params.id), body.since),
    }),
  ],
);
