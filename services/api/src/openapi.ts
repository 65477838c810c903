import { EVENT_CATALOG, EVENT_TYPES } from '@trackway/domain';
import { BODY_LIMITS } from '@trackway/http';
import { z } from 'zod';
import { type ZodOpenApiObject, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject, type ZodOpenApiResponsesObject, createDocument } from 'zod-openapi';
import { ClickQuery, PostbackAccepted, PostbackBody, PostbackHeaders, PostbackKeyPath, PostbackQuery } from './ingest-contract';
import * as r from './representations';
import { ADMIN_RESOURCES } from './resources';
import { type ErrorStatus, type Method, type Resource, type Route, routeErrors } from './route';

/*
 * The OpenAPI 3.1 document, generated: the admin routes from their definitions (route.ts,
 * ./resources), ingest's operations from ingest-contract.ts, the webhooks from the event
 * catalog and representations.ts. Nothing in it is written twice.
 */

/** Routes of the api's Express app that are not the admin API, and why (docs/api.md). */
export const UNDOCUMENTED_ROUTES: { method: Method; path: string; why: string }[] = [
  { method: 'get', path: '/healthz', why: 'liveness probe for orchestrators' },
  { method: 'get', path: '/readyz', why: 'readiness probe for orchestrators' },
  { method: 'get', path: '/metrics', why: 'Prometheus scrape endpoint (METRICS_TOKEN)' },
  { method: 'get', path: '/admin/login', why: 'admin sign-in page for Bull Board and the console (HTML)' },
  { method: 'post', path: '/admin/login', why: 'admin sign-in form' },
  { method: 'post', path: '/admin/logout', why: 'admin sign-out' },
  // The web console (docs/console.md): HTML pages and forms over the report, review and replay functions the API's routes use.
  { method: 'get', path: '/console', why: 'console: overview (HTML)' },
  { method: 'get', path: '/console/reports', why: 'console: report tables (HTML)' },
  { method: 'get', path: '/console/reports.csv', why: 'console: a report table as CSV (GET /v1/reports?format=csv)' },
  { method: 'get', path: '/console/review', why: 'console: conversions held for review (HTML)' },
  { method: 'post', path: '/console/review/{id}', why: 'console: approve or reject form (PATCH /v1/conversions/{id})' },
  { method: 'get', path: '/console/endpoints', why: 'console: endpoints and their deliveries (HTML)' },
  { method: 'post', path: '/console/deliveries/{id}/replay', why: 'console: replay form (POST /v1/deliveries/{id}/retry)' },
  ...['console.js', 'console.css', 'uPlot.min.js', 'uPlot.min.css'].map((name) => ({
    method: 'get' as const,
    path: `/console/assets/${name}`,
    why: "console: the pages' scripts and styles",
  })),
  { method: 'get', path: '/docs', why: 'this reference, rendered (HTML)' },
  { method: 'get', path: '/docs/scalar.js', why: "the reference's script" },
];
/** Mounted sub-apps that are not the admin API (Bull Board's UI and its own API). */
export const UNDOCUMENTED_MOUNTS = ['/admin/queues'];

// ——— Answers' parts ———

const requestIdHeader = z.string().meta({
  description: "The request's id: the client's X-Request-Id when it sent a sane one (at most 128 letters, digits and . _ : = + / @ -), else a new one.",
});
const retryAfterHeader = z.string().meta({ description: 'Seconds.' });
const errorContent = { 'application/json': { schema: r.ErrorEnvelope } };

/** An error answer; the api's carry X-Request-Id (ingest's do not yet). */
function errorResponse(status: ErrorStatus, description: string, api = true) {
  const retry = status === 429 || status === 503 || (status === 409 && description.includes('Retry-After'));
  const headers = { ...(api ? { 'X-Request-Id': requestIdHeader } : {}), ...(retry ? { 'Retry-After': retryAfterHeader.optional() } : {}) };
  return { description, content: errorContent, ...(Object.keys(headers).length > 0 ? { headers: z.object(headers) } : {}) };
}

const idempotencyKeyHeader = z.object({
  'Idempotency-Key': z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x20-\x7e]+$/)
    .optional()
    .meta({
      description:
        'Makes this POST safe to retry: the same key and request within 24 hours answer the first answer (marked Idempotent-Replayed: true) without doing anything again. Keys are per caller (the token subject).',
      example: '5f1c2a9e-6d8b-4c1e-9a2f-7b3d4e5f6a7b',
    }),
});

function operation(route: Route): ZodOpenApiOperationObject {
  const okHeaders = {
    'X-Request-Id': requestIdHeader,
    ...(route.method === 'post'
      ? { 'Idempotent-Replayed': z.literal('true').optional().meta({ description: 'Present on an answer replayed for an Idempotency-Key.' }) }
      : {}),
  };
  const responses: ZodOpenApiResponsesObject = {
    [route.answer.status]: {
      description: route.answer.description,
      headers: z.object(okHeaders),
      ...(route.answer.schema
        ? {
            content: {
              'application/json': { schema: route.answer.schema },
              ...(route.stream ? { [route.stream.contentType]: { schema: z.string().meta({ description: route.stream.description }) } } : {}),
            },
          }
        : {}),
    },
    ...Object.fromEntries(
      Object.entries(routeErrors(route)).map(([status, description]) => [status, errorResponse(Number(status) as ErrorStatus, description)]),
    ),
  };
  return {
    operationId: operationId(route),
    summary: route.summary,
    description: route.description,
    tags: [route.tag],
    security: [{ adminBearer: [] }],
    requestParams: {
      ...(route.params ? { path: route.params.schema } : {}),
      ...(route.query ? { query: route.query } : {}),
      ...(route.method === 'post' ? { header: idempotencyKeyHeader } : {}),
    },
    ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } } : {}),
    responses,
  };
}

const operationId = (route: Route) =>
  route.method +
  route.path
    .replace(/^\/v1/, '')
    .split(/[/-]/)
    .filter(Boolean)
    .map((part) => (part === '{id}' ? 'ById' : part[0].toUpperCase() + part.slice(1)))
    .join('');

// ——— Ingest ———

const ingestServer = (url: string) => [
  {
    url: '{ingest}',
    description: 'The ingest service (postbacks and clicks): PUBLIC_INGEST_URL of this deployment.',
    variables: { ingest: { default: url } },
  },
];
const postbackErrors = {
  400: errorResponse(
    400,
    'invalid_request naming each field (a missing click_id, an unreplaced placeholder, bytes that are not UTF-8…), malformed_body or too_many_parameters.',
    false,
  ),
  401: errorResponse(401, 'unauthorized (no key, or an unknown one) or invalid_signature.', false),
  403: errorResponse(403, 'ip_not_allowed: the advertiser accepts postbacks only from its allowed_ips.', false),
  413: errorResponse(413, `payload_too_large: the body is over ${BODY_LIMITS.postback}, or has too many parameters.`, false),
  415: errorResponse(415, 'unsupported_media_type: send JSON or application/x-www-form-urlencoded.', false),
  429: errorResponse(429, "rate_limited: over the advertiser's rate, or too many failed authentications; retry after Retry-After seconds.", false),
  503: errorResponse(503, 'unavailable: the postback could not be queued (nothing was recorded); retry after Retry-After seconds.', false),
};

function postbackOperation(method: 'get' | 'post', keyInPath: boolean): ZodOpenApiOperationObject {
  const where = keyInPath ? 'the key in the path' : '`key` or the X-Postback-Key header';
  return {
    operationId: `${method}Postback${keyInPath ? 'WithKey' : ''}`,
    tags: ['Ingest'],
    summary: `Report a conversion (${method.toUpperCase()}${keyInPath ? ', key in the path' : ''})`,
    description: `An advertiser's server reports a conversion, with ${where}. A 202 means it is durably queued; anything else means it was not recorded and may be sent again. Parameters Trackway does not read are reported back in ignored_params.`,
    // The key in the path is the credential itself: no scheme describes it.
    security: keyInPath ? [] : [{ postbackKeyHeader: [] }, { postbackKeyQuery: [] }],
    requestParams: {
      ...(keyInPath ? { path: PostbackKeyPath } : {}),
      query: keyInPath ? PostbackQuery.omit({ key: true }) : PostbackQuery,
      header: PostbackHeaders,
    },
    ...(method === 'post'
      ? { requestBody: { content: { 'application/json': { schema: PostbackBody }, 'application/x-www-form-urlencoded': { schema: PostbackBody } } } }
      : {}),
    responses: { 202: { description: 'Queued.', content: { 'application/json': { schema: PostbackAccepted } } }, ...postbackErrors },
  };
}

function ingestPaths(ingestUrl: string): ZodOpenApiPathsObject {
  const servers = ingestServer(ingestUrl);
  return {
    '/click': {
      servers,
      get: {
        operationId: 'getClick',
        tags: ['Ingest'],
        summary: 'Track a click and redirect',
        description:
          "Issues a click ID and redirects (302) to the offer's destination with it (and the sub values) filled in. The redirect is the success answer: a client that is not a browser should not follow it (fetch's redirect: 'manual') and read Location.",
        // Anyone's browser follows an affiliate's link: no credential.
        security: [],
        requestParams: { query: ClickQuery },
        responses: {
          302: {
            description: "Found: the click is recorded; Location is the offer's destination URL.",
            headers: z.object({ Location: z.url().meta({ description: 'The destination, with {click_id} and the others replaced.' }) }),
            content: {
              'text/plain': {
                schema: z.string().meta({ example: 'Found. Redirecting to https://shop.example/landing?clickid=AQAAAAEAAAAHZ0k2AJx1n3Qd8fV0m2Yc5Jk3a1Rw' }),
              },
            },
          },
          400: errorResponse(400, 'invalid_request naming each bad parameter.', false),
          404: errorResponse(404, 'offer_not_found or affiliate_not_found (none active with this id).', false),
          409: errorResponse(409, "destination_refused: these values would take the redirect off the destination's host.", false),
          503: errorResponse(503, 'unavailable: the offer cannot be looked up right now.', false),
        },
      },
    },
    '/postback': { servers, get: postbackOperation('get', false), post: postbackOperation('post', false) },
    '/postback/{key}': { servers, get: postbackOperation('get', true), post: postbackOperation('post', true) },
  };
}

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
          // The receiver authenticates Trackway by the signature headers, not by a scheme of this document.
          security: [],
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

export interface DocumentOptions {
  /** PUBLIC_INGEST_URL: where this deployment's ingest is reached (the document's second server). */
  ingestUrl: string;
  resources?: readonly Resource[];
}

/** The OpenAPI 3.1 document, generated from the route definitions, ingest's contract and the representations. */
export function buildDocument(options: DocumentOptions): ReturnType<typeof createDocument> {
  const resources = options.resources ?? ADMIN_RESOURCES;
  const paths: ZodOpenApiPathsObject = { ...ingestPaths(options.ingestUrl) };
  for (const route of resources.flatMap((res) => res.routes)) paths[route.path] = { ...paths[route.path], [route.method]: operation(route) };
  paths['/openapi.json'] = {
    get: {
      operationId: 'getOpenApi',
      tags: ['Meta'],
      summary: 'This document',
      description: 'The OpenAPI 3.1 document of this deployment, without auth; GET /docs renders it.',
      security: [],
      responses: {
        200: {
          description: 'The OpenAPI 3.1 document.',
          headers: z.object({ 'X-Request-Id': requestIdHeader }),
          content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
        },
        400: errorResponse(400, 'malformed_url or too_many_parameters: a request target no route can read.'),
      },
    },
  };
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Trackway',
      version: '1',
      description:
        'Server-to-server conversion tracking: postbacks in (ingest), signed webhooks out, and the admin API. Every error answer is the envelope `{"error": {"code", "message", "fields"?, "request_id"?}}`; every answer of the api carries X-Request-Id. Admin POSTs take an Idempotency-Key.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/', description: 'The api service (admin API).' }],
    tags: [
      ...resources.map((res) => ({ name: res.tag, description: res.description })),
      { name: 'Ingest', description: 'The ingest service: clicks in (redirected to the offer) and postbacks in (queued for attribution).' },
      { name: 'Meta', description: 'This document.' },
    ].filter((tag, i, all) => all.findIndex((t) => t.name === tag.name) === i),
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
        postbackKeyHeader: { type: 'apiKey', in: 'header', name: 'X-Postback-Key', description: "The advertiser's postback key, in a header." },
        postbackKeyQuery: { type: 'apiKey', in: 'query', name: 'key', description: "The advertiser's postback key, as the `key` parameter." },
      },
    },
  });
}
