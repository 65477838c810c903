import { EVENT_CATALOG, EVENT_TYPES } from '@trackway/domain';
import { BODY_LIMITS } from '@trackway/http';
import { z } from 'zod';
import { type ZodOpenApiObject, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject, type ZodOpenApiResponsesObject, createDocument } from 'zod-openapi';
import * as r from './representations';

/*
 * The route registry: every admin route (method, path, request schemas, answers) in one table.
 * The OpenAPI document is built from it and representations.ts; a test walks the app's Express
 * routers and checks that they and this table name the same routes, in both directions.
 */

export type Method = 'get' | 'post' | 'patch' | 'delete';
type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export interface RouteSpec {
  method: Method;
  /** OpenAPI syntax: /v1/offers/{id}. */
  path: string;
  summary: string;
  tag: string;
  description?: string;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  ok: { status: 200 | 201 | 202 | 204; description: string; schema?: z.ZodType };
  /** Errors beyond those every admin route can answer (401, 403, 429, 500). */
  errors?: Partial<Record<ErrorStatus, string>>;
}

/** Answers every route may give, with what each means. */
const ERRORS: Record<ErrorStatus, string> = {
  400: 'invalid_request (with `fields`), malformed_body, malformed_url or too_many_parameters.',
  401: 'unauthorized: no Bearer token, or one that is invalid or expired.',
  403: 'forbidden: the token lacks the admin scope.',
  404: 'not_found.',
  409: 'conflict.',
  413: `payload_too_large: the body is over ${BODY_LIMITS.admin}.`,
  415: 'unsupported_charset or unsupported_encoding.',
  422: 'Unprocessable.',
  429: 'rate_limited: too many failed authentications from this address; retry after Retry-After seconds.',
  500: 'internal_error: a bug on our side.',
  503: 'unavailable: Redis or Postgres cannot be reached; retry after Retry-After seconds.',
};

const intPath = (what: string) =>
  z.object({
    id: z
      .string()
      .regex(/^[1-9]\d{0,9}$/)
      .meta({ description: `The ${what}'s id.`, example: '1' }),
  });
const prefixedPath = (schema: z.ZodString, what: string) => z.object({ id: schema.meta({ description: `The ${what}'s id.` }) });
const withBody = { 400: ERRORS[400], 413: ERRORS[413], 415: ERRORS[415] };
const listQueryErrors = { 400: 'invalid_request: an unknown or repeated parameter, a bad cursor or limit.' };

/** Create, list, get and update of a resource: the routes most resources have. */
function crud(o: {
  base: string;
  tag: string;
  what: string;
  params: z.ZodObject;
  item: z.ZodType;
  /** What GET /{id} answers when it shows more than the list's items. */
  detail?: z.ZodType;
  query: z.ZodObject;
  create?: { body: z.ZodType; answer: z.ZodType; description?: string; errors?: RouteSpec['errors'] };
  update?: { body: z.ZodType; description?: string; errors?: RouteSpec['errors'] };
}): RouteSpec[] {
  const routes: RouteSpec[] = [];
  const list = r.pageOf(o.item, `${o.item.meta()?.id}Page`);
  if (o.create) {
    routes.push({
      method: 'post',
      path: o.base,
      tag: o.tag,
      summary: `Create ${article(o.what)}`,
      description: o.create.description,
      body: o.create.body,
      ok: { status: 201, description: `The new ${o.what}.`, schema: o.create.answer },
      errors: { ...withBody, ...o.create.errors },
    });
  }
  routes.push(
    {
      method: 'get',
      path: o.base,
      tag: o.tag,
      summary: `List ${o.tag.toLowerCase()}`,
      query: o.query,
      ok: { status: 200, description: 'A page, newest first.', schema: list },
      errors: listQueryErrors,
    },
    {
      method: 'get',
      path: `${o.base}/{id}`,
      tag: o.tag,
      summary: `Get ${article(o.what)}`,
      params: o.params,
      ok: { status: 200, description: `The ${o.what}.`, schema: o.detail ?? o.item },
      errors: { 404: `No ${o.what} has this id.` },
    },
  );
  if (o.update) {
    routes.push({
      method: 'patch',
      path: `${o.base}/{id}`,
      tag: o.tag,
      summary: `Update ${article(o.what)}`,
      description: o.update.description,
      params: o.params,
      body: o.update.body,
      ok: { status: 200, description: `The ${o.what}, updated.`, schema: o.item },
      errors: { ...withBody, 404: `No ${o.what} has this id.`, ...o.update.errors },
    });
  }
  return routes;
}
const article = (what: string) => (/^[aeiou]/i.test(what) ? `an ${what}` : `a ${what}`);

const advertiserId = intPath('advertiser');
const endpointId = prefixedPath(r.ids.endpoint, 'endpoint');
const deliveryId = prefixedPath(r.ids.delivery, 'delivery');
const payoutId = prefixedPath(r.ids.payout, 'payout');

export const ADMIN_ROUTES: RouteSpec[] = [
  ...crud({
    base: '/v1/advertisers',
    tag: 'Advertisers',
    what: 'advertiser',
    params: advertiserId,
    item: r.Advertiser,
    query: r.EntityList,
    create: {
      body: r.AdvertiserCreate,
      answer: r.AdvertiserWithKey,
      description: 'The answer shows the postback key this once; Trackway keeps only its hash.',
    },
    update: { body: r.AdvertiserUpdate, description: 'require_signed_postbacks needs a signing secret first (rotate-signing-secret).' },
  }),
  {
    method: 'post',
    path: '/v1/advertisers/{id}/rotate-key',
    tag: 'Advertisers',
    summary: 'Replace the postback key',
    description: 'The old key stops working everywhere within a cache TTL.',
    params: advertiserId,
    ok: { status: 200, description: 'The advertiser, with its new key (shown this once).', schema: r.AdvertiserWithKey },
    errors: { 404: 'No advertiser has this id.' },
  },
  {
    method: 'post',
    path: '/v1/advertisers/{id}/rotate-signing-secret',
    tag: 'Advertisers',
    summary: 'Replace the postback signing secret',
    description: 'Signed postbacks (Standard Webhooks): the previous secret keeps verifying for 24 h.',
    params: advertiserId,
    ok: { status: 200, description: 'The new secret, shown this once.', schema: r.SigningSecretRotated },
    errors: { 404: 'No advertiser has this id.', 409: 'conflict: rotated concurrently; fetch the advertiser and retry.' },
  },
  ...crud({
    base: '/v1/affiliates',
    tag: 'Affiliates',
    what: 'affiliate',
    params: intPath('affiliate'),
    item: r.Affiliate,
    query: r.EntityList,
    create: { body: r.AffiliateCreate, answer: r.Affiliate },
    update: { body: r.AffiliateUpdate },
  }),
  ...crud({
    base: '/v1/offers',
    tag: 'Offers',
    what: 'offer',
    params: intPath('offer'),
    item: r.Offer,
    query: r.OfferList,
    create: { body: r.OfferCreate, answer: r.Offer, errors: { 400: `${ERRORS[400]} advertiser_id names no advertiser.` } },
    update: { body: r.OfferUpdate },
  }),
  ...crud({
    base: '/v1/conversions',
    tag: 'Conversions',
    what: 'conversion',
    params: prefixedPath(r.ids.conversion, 'conversion'),
    item: r.Conversion,
    query: r.ConversionList,
    update: {
      body: r.ConversionReview,
      description: 'Fraud review: approve a conversion a rule held, or reject one (the same state machine, commissions and events as a postback).',
      errors: { 409: 'invalid_transition (this status cannot become that one) or conflict (changed meanwhile; retry).' },
    },
  }),
  {
    method: 'get',
    path: '/v1/postbacks/{id}',
    tag: 'Postbacks',
    summary: "Get a postback's outcome",
    description: 'queued until the attribution worker has processed it.',
    params: prefixedPath(r.ids.postback, 'postback'),
    ok: { status: 200, description: 'The outcome.', schema: r.Postback },
    errors: { 404: 'No postback has this id.', 503: ERRORS[503] },
  },
  ...crud({
    base: '/v1/webhook-endpoints',
    tag: 'Webhook endpoints',
    what: 'webhook endpoint',
    params: endpointId,
    item: r.WebhookEndpoint,
    query: r.EndpointList,
    create: { body: r.EndpointCreate, answer: r.WebhookEndpointWithSecret, description: 'The answer shows the signing secret this once.' },
    update: { body: r.EndpointUpdate, description: 'headers, when given, replace every custom header.' },
  }),
  {
    method: 'delete',
    path: '/v1/webhook-endpoints/{id}',
    tag: 'Webhook endpoints',
    summary: 'Delete a webhook endpoint',
    params: endpointId,
    ok: { status: 204, description: 'Deleted.' },
    errors: { 404: 'No webhook endpoint has this id.' },
  },
  {
    method: 'post',
    path: '/v1/webhook-endpoints/{id}/enable',
    tag: 'Webhook endpoints',
    summary: 'Enable a webhook endpoint',
    params: endpointId,
    ok: { status: 200, description: 'The endpoint.', schema: r.WebhookEndpoint },
    errors: { 404: 'No webhook endpoint has this id.' },
  },
  {
    method: 'post',
    path: '/v1/webhook-endpoints/{id}/disable',
    tag: 'Webhook endpoints',
    summary: 'Disable a webhook endpoint',
    params: endpointId,
    ok: { status: 200, description: 'The endpoint.', schema: r.WebhookEndpoint },
    errors: { 404: 'No webhook endpoint has this id.' },
  },
  {
    method: 'post',
    path: '/v1/webhook-endpoints/{id}/rotate-secret',
    tag: 'Webhook endpoints',
    summary: 'Replace the signing secret',
    description: 'The old secret keeps signing beside the new one for 24 h.',
    params: endpointId,
    ok: { status: 200, description: 'The new secret, shown this once.', schema: r.EndpointSecretRotated },
    errors: { 404: 'No webhook endpoint has this id.', 409: 'conflict: rotated concurrently; fetch the endpoint and retry.' },
  },
  {
    method: 'post',
    path: '/v1/webhook-endpoints/{id}/test',
    tag: 'Webhook endpoints',
    summary: 'Send a webhook.test event',
    params: endpointId,
    ok: { status: 202, description: 'The event and its delivery are queued.', schema: r.EndpointTestSent },
    errors: { 404: 'No webhook endpoint has this id.', 409: 'endpoint_disabled.' },
  },
  {
    method: 'get',
    path: '/v1/webhook-endpoints/{id}/deliveries',
    tag: 'Webhook endpoints',
    summary: "List an endpoint's deliveries",
    params: endpointId,
    query: r.EndpointDeliveriesList,
    ok: { status: 200, description: 'A page, newest first.', schema: r.pageOf(r.Delivery, 'DeliveryPage') },
    errors: { ...listQueryErrors, 404: 'No webhook endpoint has this id.' },
  },
  {
    method: 'post',
    path: '/v1/webhook-endpoints/{id}/recover',
    tag: 'Webhook endpoints',
    summary: 'Re-send failed deliveries since a time',
    description: 'At most 10,000 per call; has_more says whether more remain.',
    params: endpointId,
    body: r.EndpointRecover,
    ok: { status: 202, description: 'The deliveries are queued again.', schema: r.EndpointRecovered },
    errors: { ...withBody, 404: 'No webhook endpoint has this id.', 409: 'endpoint_disabled.', 503: ERRORS[503] },
  },
  {
    method: 'get',
    path: '/v1/deliveries/{id}',
    tag: 'Deliveries',
    summary: 'Get a delivery and its attempts',
    params: deliveryId,
    ok: { status: 200, description: 'The delivery.', schema: r.DeliveryWithAttempts },
    errors: { 404: 'No delivery has this id.' },
  },
  {
    method: 'post',
    path: '/v1/deliveries/{id}/retry',
    tag: 'Deliveries',
    summary: 'Replay a delivery',
    description: 'The same event and webhook-id, with the full retry schedule.',
    params: deliveryId,
    ok: { status: 202, description: 'Queued again.', schema: r.DeliveryRetried },
    errors: { 404: 'No delivery has this id.', 409: 'endpoint_disabled or delivery_pending.', 503: ERRORS[503] },
  },
  ...crud({
    base: '/v1/payouts',
    tag: 'Payouts',
    what: 'payout',
    params: payoutId,
    item: r.Payout,
    detail: r.PayoutWithCommissions,
    query: r.PayoutList,
    create: {
      body: r.PayoutCreate,
      answer: r.PayoutCreated,
      description: "Gathers the affiliate's approved, unpaid commissions in one currency.",
      errors: { 422: 'no_commissions: nothing approved and unpaid in this currency.' },
    },
  }),
  {
    method: 'post',
    path: '/v1/payouts/{id}/mark-sent',
    tag: 'Payouts',
    summary: 'Mark a payout sent',
    description: 'Emits payout.sent.',
    params: payoutId,
    body: r.PayoutMarkSent,
    ok: { status: 200, description: 'The payout, sent.', schema: r.PayoutWithCommissions },
    errors: { ...withBody, 404: 'No payout has this id.', 409: 'already_sent.' },
  },
  {
    method: 'get',
    path: '/v1/event-types',
    tag: 'Events',
    summary: 'List event types',
    description: 'Each with an example of its data; the webhooks of this document give their schemas.',
    ok: { status: 200, description: 'Every event type.', schema: r.EventTypeList },
  },
];

/** Routes of the api's Express app that are not the admin API, and why (docs/api.md). */
export const UNDOCUMENTED_ROUTES: { method: Method; path: string; why: string }[] = [
  { method: 'get', path: '/healthz', why: 'liveness probe for orchestrators' },
  { method: 'get', path: '/readyz', why: 'readiness probe for orchestrators' },
  { method: 'get', path: '/metrics', why: 'Prometheus scrape endpoint (METRICS_TOKEN)' },
  { method: 'get', path: '/admin/login', why: 'Bull Board login page (HTML)' },
  { method: 'post', path: '/admin/login', why: 'Bull Board login form' },
  { method: 'post', path: '/admin/logout', why: 'Bull Board logout' },
  { method: 'get', path: '/docs', why: 'this reference, rendered (HTML)' },
  { method: 'get', path: '/docs/scalar.js', why: "the reference's script" },
];
/** Mounted sub-apps that are not the admin API (Bull Board's UI and its own API). */
export const UNDOCUMENTED_MOUNTS = ['/admin/queues'];

const retryAfter = z.object({ 'Retry-After': z.string().meta({ description: 'Seconds.' }) });
const errorContent = { 'application/json': { schema: r.ErrorEnvelope } };
const errorResponse = (status: ErrorStatus, description: string) => ({
  description,
  content: errorContent,
  ...(status === 429 || status === 503 ? { headers: retryAfter } : {}),
});

function operation(route: RouteSpec): ZodOpenApiOperationObject {
  const errors: Partial<Record<ErrorStatus, string>> = { 401: ERRORS[401], 403: ERRORS[403], 429: ERRORS[429], ...route.errors, 500: ERRORS[500] };
  const responses: ZodOpenApiResponsesObject = {
    [route.ok.status]: { description: route.ok.description, ...(route.ok.schema ? { content: { 'application/json': { schema: route.ok.schema } } } : {}) },
    ...Object.fromEntries(Object.entries(errors).map(([status, description]) => [status, errorResponse(Number(status) as ErrorStatus, description)])),
  };
  return {
    operationId: operationId(route),
    summary: route.summary,
    description: route.description,
    tags: [route.tag],
    security: [{ adminBearer: [] }],
    requestParams: { ...(route.params ? { path: route.params } : {}), ...(route.query ? { query: route.query } : {}) },
    ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } } : {}),
    responses,
  };
}

const operationId = (route: RouteSpec) =>
  route.method +
  route.path
    .replace(/^\/v1/, '')
    .split(/[/-]/)
    .filter(Boolean)
    .map((part) => (part === '{id}' ? 'ById' : part[0].toUpperCase() + part.slice(1)))
    .join('');

// ——— Ingest ———

const INGEST_SERVER = [
  {
    url: '{ingest}',
    description: 'The ingest service (postbacks and clicks): its own host and port.',
    variables: { ingest: { default: 'http://localhost:3000' } },
  },
];
const postbackErrors = {
  400: errorResponse(
    400,
    'invalid_request naming each field (a missing click_id, an unreplaced placeholder, bytes that are not UTF-8…), malformed_body or too_many_parameters.',
  ),
  401: errorResponse(401, 'unauthorized (no key, or an unknown one) or invalid_signature.'),
  403: errorResponse(403, 'ip_not_allowed: the advertiser accepts postbacks only from its allowed_ips.'),
  413: errorResponse(413, `payload_too_large: the body is over ${BODY_LIMITS.postback}, or has too many parameters.`),
  415: errorResponse(415, 'unsupported_media_type: send JSON or application/x-www-form-urlencoded.'),
  429: errorResponse(429, "rate_limited: over the advertiser's rate, or too many failed authentications; retry after Retry-After seconds."),
  503: errorResponse(503, 'unavailable: the postback could not be queued (nothing was recorded); retry after Retry-After seconds.'),
};

function postbackOperation(method: 'get' | 'post', keyInPath: boolean): ZodOpenApiOperationObject {
  const where = keyInPath ? 'the key in the path' : '`key` or the X-Postback-Key header';
  return {
    operationId: `${method}Postback${keyInPath ? 'WithKey' : ''}`,
    tags: ['Ingest'],
    summary: `Report a conversion (${method.toUpperCase()}${keyInPath ? ', key in the path' : ''})`,
    description: `An advertiser's server reports a conversion, with ${where}. A 202 means it is durably queued; anything else means it was not recorded and may be sent again. Parameters Trackway does not read are reported back in ignored_params.`,
    security: keyInPath ? [] : [{ postbackKeyHeader: [] }, { postbackKeyQuery: [] }],
    requestParams: {
      ...(keyInPath ? { path: r.PostbackKeyPath } : {}),
      query: keyInPath ? r.PostbackQuery.omit({ key: true }) : r.PostbackQuery,
      header: r.PostbackHeaders,
    },
    ...(method === 'post'
      ? { requestBody: { content: { 'application/json': { schema: r.PostbackBody }, 'application/x-www-form-urlencoded': { schema: r.PostbackBody } } } }
      : {}),
    responses: { 202: { description: 'Queued.', content: { 'application/json': { schema: r.PostbackAccepted } } }, ...postbackErrors },
  };
}

const ingestPaths: ZodOpenApiPathsObject = {
  '/click': {
    servers: INGEST_SERVER,
    get: {
      operationId: 'getClick',
      tags: ['Ingest'],
      summary: 'Track a click and redirect',
      description: "Issues a click ID and redirects to the offer's destination with it (and the sub values) filled in.",
      requestParams: { query: r.ClickQuery },
      responses: {
        302: {
          description: "Found: to the offer's destination URL.",
          headers: z.object({ Location: z.string().meta({ description: 'The destination, with {click_id} and the others replaced.' }) }),
          content: {
            'text/plain': {
              schema: z.string().meta({ example: 'Found. Redirecting to https://shop.example/landing?clickid=AQAAAAEAAAAHZ0k2AJx1n3Qd8fV0m2Yc5Jk3a1Rw' }),
            },
          },
        },
        400: errorResponse(400, 'invalid_request naming each bad parameter.'),
        404: errorResponse(404, 'offer_not_found or affiliate_not_found (none active with this id).'),
        409: errorResponse(409, "destination_refused: these values would take the redirect off the destination's host."),
        503: errorResponse(503, 'unavailable: the offer cannot be looked up right now.'),
      },
    },
  },
  '/postback': { servers: INGEST_SERVER, get: postbackOperation('get', false), post: postbackOperation('post', false) },
  '/postback/{key}': { servers: INGEST_SERVER, get: postbackOperation('get', true), post: postbackOperation('post', true) },
};

// ——— Webhooks ———

const webhookHeaders = z.object({
  'webhook-id': z.string().meta({ description: "The event's id: the same across retries and replays." }),
  'webhook-timestamp': z.string().meta({ description: 'Unix seconds when this attempt was signed.' }),
  'webhook-signature': z
    .string()
    .meta({ description: 'Standard Webhooks: space-separated v1,<base64 HMAC-SHA256> of `id.timestamp.body`, one per active secret.' }),
});

function webhooks(): ZodOpenApiObject['webhooks'] {
  return Object.fromEntries(
    EVENT_TYPES.map((type) => [
      type,
      {
        post: {
          operationId: `webhook${type
            .split('.')
            .map((w) => w[0].toUpperCase() + w.slice(1))
            .join('')}`,
          tags: ['Events'],
          summary: type,
          description: `${EVENT_CATALOG[type].description} Sent as a signed POST to every enabled endpoint subscribed to it; retried until a 2xx.`,
          requestParams: { header: webhookHeaders },
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: r.eventEnvelope(type),
                examples: {
                  example: { value: { id: 'evt_01JD8Z6Q62B4D6F8H0K2M4P6R8', type, timestamp: '2026-11-27T10:14:52.318Z', data: EVENT_CATALOG[type].example } },
                },
              },
            },
          },
          responses: {
            '2XX': { description: 'Received: no retry.' },
            default: { description: 'Anything else (or no answer in time) is retried on the schedule; 410 Gone disables the endpoint.' },
          },
        },
      },
    ]),
  );
}

/** The OpenAPI 3.1 document, generated from the registry and the representations. */
export function buildDocument(): ReturnType<typeof createDocument> {
  const paths: ZodOpenApiPathsObject = { ...ingestPaths };
  for (const route of ADMIN_ROUTES) paths[route.path] = { ...paths[route.path], [route.method]: operation(route) };
  paths['/openapi.json'] = {
    get: {
      operationId: 'getOpenApi',
      tags: ['Meta'],
      summary: 'This document',
      security: [],
      responses: { 200: { description: 'The OpenAPI 3.1 document.', content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } } },
    },
  };
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Trackway',
      version: '1',
      description:
        'Server-to-server conversion tracking: postbacks in (ingest), signed webhooks out, and the admin API. Every error answer is the envelope `{"error": {"code", "message", "fields"?}}`.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'The api service (admin API).' }],
    tags: [...new Set(ADMIN_ROUTES.map((route) => route.tag)), 'Ingest', 'Meta'].map((name) => ({ name })),
    paths,
    webhooks: webhooks(),
    components: {
      securitySchemes: {
        adminBearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'A JWT with iat, exp (at most ADMIN_JWT_MAX_AGE) and the admin scope.',
        },
        postbackKeyHeader: { type: 'apiKey', in: 'header', name: 'X-Postback-Key' },
        postbackKeyQuery: { type: 'apiKey', in: 'query', name: 'key' },
      },
    },
  });
}
