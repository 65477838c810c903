import { createEvent, deliveryIdFloor, deliveryIdFor, endpointJson, idTime, newId, sealHeaders } from '@trackway/domain';
import { HttpError, badRequest, notFound } from '@trackway/http';
import { publishOrLeave, writeEvents } from '@trackway/outbox';
import { checkLiteralHost, generateSecret } from '@trackway/webhooks';
import { deleteEndpoint } from '@trackway/ledger';
import type { ApiDeps } from '../deps';
import { listPage } from '../pagination';
import { prefixedIdPath } from '../path-params';
import {
  DeliveryPage,
  EndpointCreate,
  EndpointDeliveriesList,
  EndpointList,
  EndpointRecover,
  EndpointRecovered,
  EndpointSecretRotated,
  EndpointTestSent,
  EndpointUpdate,
  RECOVER_MAX,
  WebhookEndpoint,
  WebhookEndpointWithSecret,
  deliveryJson,
  pageOf,
} from '../representations';
import type { z } from 'zod';
import { replayInPages } from '../replay';
import { ERRORS, resource, route } from '../route';

/** After a rotation, the old secret keeps signing beside the new one this long. */
const OVERLAP_MS = 24 * 3600 * 1000;
const id = prefixedIdPath('endpoint', 'Webhook endpoint');

/**
 * An endpoint's URL, or a 400: http(s) as allowed, no credentials, no private address literal.
 * Webhook endpoints' and partner postbacks' URLs alike (names are resolved and checked at every
 * attempt, by the delivery worker's SSRF guard).
 */
export function checkEndpointUrl(deps: ApiDeps, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badRequest({ url: 'is not a URL' });
  }
  const schemes = deps.webhooks.allowHttp ? ['https:', 'http:'] : ['https:'];
  if (!schemes.includes(parsed.protocol)) throw badRequest({ url: deps.webhooks.allowHttp ? 'must be an http(s) URL' : 'must be an https URL' });
  if (parsed.username || parsed.password) throw badRequest({ url: 'must not contain credentials; use custom headers' });
  try {
    // Names are resolved and checked at every attempt; an address literal can be refused now.
    checkLiteralHost(parsed.hostname, { allowedCidrs: deps.webhooks.allowedCidrs });
  } catch {
    throw badRequest({ url: 'points to a private, loopback or otherwise non-public address' });
  }
  return url;
}

/** A webhook endpoint (never a partner postback: those share the table, not these routes). */
async function load(deps: ApiDeps, endpointId: string) {
  const endpoint = await deps.prisma.webhookEndpoint.findUnique({ where: { id: endpointId } });
  if (endpoint?.kind !== 'webhook') throw notFound('Webhook endpoint');
  return endpoint;
}

/** Tells caching processes, and answers the endpoint as its update returned it. */
async function changed(deps: ApiDeps, endpoint: Awaited<ReturnType<typeof load>>) {
  await deps.invalidate('endpoint', endpoint.id);
  return endpointJson(endpoint);
}

/** Enables or disables an endpoint. */
async function setEnabled(deps: ApiDeps, endpointId: string, enabled: boolean) {
  const { id: found } = await load(deps, endpointId);
  const data = enabled ? { enabled: true, disabledReason: null, failingSince: null } : { enabled: false, disabledReason: 'Disabled by an administrator.' };
  return changed(deps, await deps.prisma.webhookEndpoint.update({ where: { id: found }, data }));
}

export const disabled = (what: string) => new HttpError(409, 'endpoint_disabled', `Enable the endpoint before ${what}.`);

// What webhook endpoints and partner postbacks (rows of one table, delivered by one engine) do alike.

/**
 * Windows a page of deliveries is looked for in, back from its cursor (or now), in days: the
 * deliveries table holds a partition a day, and a query bounded by id is planned over the
 * partitions of its window only (over all of them, a planning cost that grows with retention).
 * A wider window is asked only when the narrower did not fill the page; the last is unbounded.
 */
const PAGE_WINDOWS_DAYS = [3, 35, null] as const;

/** An endpoint's deliveries, newest first, filtered by status. */
export function deliveriesPage(deps: ApiDeps, endpointId: string, query: z.output<typeof EndpointDeliveriesList>) {
  return listPage(
    query,
    'string',
    async ({ id, ...keyset }) => {
      const from = (id ? idTime(id.lt) : null) ?? new Date();
      for (const days of PAGE_WINDOWS_DAYS) {
        const gte = days === null ? undefined : deliveryIdFloor(new Date(from.getTime() - days * 86_400_000));
        const rows = await deps.prisma.delivery.findMany({ where: { endpointId, status: query.status, id: { ...id, gte } }, ...keyset });
        if (rows.length >= keyset.take || days === null) return rows;
      }
      return [];
    },
    deliveryJson,
  );
}

/**
 * A delivery's id carries its event's time: one created since a time has an id past that time
 * less its fan-out's lag. Recover reads back this far before `since` (a week: longer than any
 * outage's backlog; a delivery whose event is older than that is not recovered).
 */
const RECOVER_ID_SLACK_MS = 7 * 86_400_000;

/**
 * Re-sends an endpoint's failed deliveries since a time: at most RECOVER_MAX a call. Bounded by
 * id as well as by time: only the partitions since then are read, along the (endpoint, status, id) index.
 */
export async function recoverFailed(deps: ApiDeps, endpoint: { id: string; enabled: boolean }, since: Date) {
  if (!endpoint.enabled) throw disabled('recovering its deliveries');
  const failed = await deps.prisma.delivery.findMany({
    where: {
      endpointId: endpoint.id,
      status: 'failed',
      id: { gte: deliveryIdFloor(new Date(Math.max(0, since.getTime() - RECOVER_ID_SLACK_MS))) },
      createdAt: { gte: since },
    },
    orderBy: { id: 'asc' },
    take: RECOVER_MAX + 1,
    select: { id: true },
  });
  const batch = failed.slice(0, RECOVER_MAX).map((d) => d.id);
  return { recovered: await replayInPages(deps, batch), has_more: failed.length > RECOVER_MAX };
}

/**
 * A webhook.test event for one endpoint only: written with its delivery in one transaction, then
 * published like every other event (fan-out sends it to the endpoint it names).
 */
export async function sendTestEvent(
  deps: ApiDeps,
  endpoint: { id: string; enabled: boolean },
  data: { endpoint_id: string; message: string } & Record<string, unknown>,
  missingMacros: string[] = [],
) {
  if (!endpoint.enabled) throw disabled('sending it a test event');
  const event = createEvent('webhook.test', data);
  const deliveryId = deliveryIdFor(event.id, endpoint.id);
  // The delivery, then the event: the order every transaction takes these tables in (LOCK_ORDER).
  await deps.prisma.$transaction(async (tx) => {
    await tx.delivery.create({ data: { id: deliveryId, eventId: event.id, endpointId: endpoint.id, eventType: event.type, missingMacros } });
    await writeEvents(tx, [event]);
  });
  await publishOrLeave(deps.pool, deps.queues.events, [event], deps.logger, 'test event');
  return { event_id: event.id, delivery_id: deliveryId };
}

export default resource(
  {
    tag: 'Webhook endpoints',
    base: '/v1/webhook-endpoints',
    description: 'Where events are delivered: signed (Standard Webhooks), retried, logged, replayable.',
  },
  [
    route({
      method: 'post',
      path: '/v1/webhook-endpoints',
      summary: 'Create a webhook endpoint',
      description: 'The answer shows the signing secret this once; it is stored sealed, like custom header values (which no answer shows).',
      body: EndpointCreate,
      answer: { status: 201, description: 'The new webhook endpoint, with its signing secret.', schema: WebhookEndpointWithSecret },
      handler: async ({ body, deps }) => {
        const secret = generateSecret();
        const endpoint = await deps.prisma.webhookEndpoint.create({
          data: {
            id: newId('endpoint'),
            url: checkEndpointUrl(deps, body.url),
            eventTypes: body.event_types,
            description: body.description ?? null,
            sealedHeaders: sealHeaders(deps.box, body.headers ?? {}),
            rateLimitPerSecond: body.rate_limit_per_second ?? null,
            secretSealed: deps.box.seal(secret),
          },
        });
        await deps.invalidate('endpoint', endpoint.id);
        return { ...endpointJson(endpoint), secret };
      },
    }),
    route({
      method: 'get',
      path: '/v1/webhook-endpoints',
      summary: 'List webhook endpoints',
      description: 'Newest first; filter by enabled.',
      query: EndpointList,
      answer: { status: 200, description: 'A page, newest first.', schema: pageOf(WebhookEndpoint, 'WebhookEndpointPage') },
      handler: async ({ query, deps }) => {
        const enabled = query.enabled === undefined ? undefined : query.enabled === 'true';
        return listPage(
          query,
          'string',
          ({ id, ...keyset }) => deps.prisma.webhookEndpoint.findMany({ where: { kind: 'webhook', enabled, id }, ...keyset }),
          endpointJson,
        );
      },
    }),
    route({
      method: 'get',
      path: '/v1/webhook-endpoints/{id}',
      summary: 'Get a webhook endpoint',
      description: 'Custom header values are shown masked.',
      params: id,
      answer: { status: 200, description: 'The webhook endpoint.', schema: WebhookEndpoint },
      handler: async ({ params, deps }) => endpointJson(await load(deps, params.id)),
    }),
    route({
      method: 'patch',
      path: '/v1/webhook-endpoints/{id}',
      summary: 'Update a webhook endpoint',
      description: 'headers, when given, replace every custom header.',
      params: id,
      body: EndpointUpdate,
      answer: { status: 200, description: 'The webhook endpoint, updated.', schema: WebhookEndpoint },
      handler: async ({ params, body, deps }) => {
        const { id: found } = await load(deps, params.id);
        const updated = await deps.prisma.webhookEndpoint.update({
          where: { id: found },
          data: {
            url: body.url === undefined ? undefined : checkEndpointUrl(deps, body.url),
            eventTypes: body.event_types,
            description: body.description,
            ...(body.headers && { sealedHeaders: sealHeaders(deps.box, body.headers), plaintextHeaders: {} }),
            rateLimitPerSecond: body.rate_limit_per_second,
          },
        });
        return changed(deps, updated);
      },
    }),
    route({
      method: 'delete',
      path: '/v1/webhook-endpoints/{id}',
      summary: 'Delete a webhook endpoint',
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
      path: '/v1/webhook-endpoints/{id}/enable',
      summary: 'Enable a webhook endpoint',
      description: 'Deliveries start again (a disabled endpoint gets none); its failing clock starts afresh.',
      params: id,
      answer: { status: 200, description: 'The endpoint.', schema: WebhookEndpoint },
      handler: ({ params, deps }) => setEnabled(deps, params.id, true),
    }),
    route({
      method: 'post',
      path: '/v1/webhook-endpoints/{id}/disable',
      summary: 'Disable a webhook endpoint',
      description: 'No more deliveries until it is enabled again.',
      params: id,
      answer: { status: 200, description: 'The endpoint.', schema: WebhookEndpoint },
      handler: ({ params, deps }) => setEnabled(deps, params.id, false),
    }),
    route({
      method: 'post',
      path: '/v1/webhook-endpoints/{id}/rotate-secret',
      summary: 'Replace the signing secret',
      description: 'The old secret keeps signing beside the new one for 24 h, so receivers can switch over.',
      params: id,
      answer: { status: 200, description: 'The new secret, shown this once.', schema: EndpointSecretRotated },
      errors: { 409: 'conflict: rotated concurrently; fetch the endpoint and retry.' },
      handler: async ({ params, deps }) => {
        const endpoint = await load(deps, params.id);
        const secret = generateSecret();
        const previousSecretExpiresAt = new Date(Date.now() + OVERLAP_MS);
        // Conditional on the secret we read: two concurrent rotations cannot both "succeed" with
        // one of the returned secrets never stored.
        const { count } = await deps.prisma.webhookEndpoint.updateMany({
          where: { id: endpoint.id, secretSealed: endpoint.secretSealed },
          data: { secretSealed: deps.box.seal(secret), previousSecretSealed: endpoint.secretSealed, previousSecretExpiresAt },
        });
        if (count === 0) throw new HttpError(409, 'conflict', 'The secret was rotated concurrently; fetch the endpoint and retry.');
        await deps.invalidate('endpoint', endpoint.id);
        return { id: endpoint.id, secret, previous_secret_expires_at: previousSecretExpiresAt.toISOString() };
      },
    }),
    route({
      method: 'post',
      path: '/v1/webhook-endpoints/{id}/test',
      summary: 'Send a webhook.test event',
      description: 'A webhook.test event for this endpoint only: written with its delivery in one transaction, then published like every other event.',
      params: id,
      answer: { status: 202, description: 'The event and its delivery are queued.', schema: EndpointTestSent },
      errors: { 409: 'endpoint_disabled.' },
      handler: async ({ params, deps }) => {
        const endpoint = await load(deps, params.id);
        return sendTestEvent(deps, endpoint, { endpoint_id: endpoint.id, message: 'This is a test event from Trackway.' });
      },
    }),
    route({
      method: 'get',
      path: '/v1/webhook-endpoints/{id}/deliveries',
      summary: "List an endpoint's deliveries",
      description: 'The delivery log, newest first; filter by status.',
      params: id,
      query: EndpointDeliveriesList,
      answer: { status: 200, description: 'A page, newest first.', schema: DeliveryPage },
      handler: async ({ params, query, deps }) => deliveriesPage(deps, (await load(deps, params.id)).id, query),
    }),
    route({
      method: 'post',
      path: '/v1/webhook-endpoints/{id}/recover',
      summary: 'Re-send failed deliveries since a time',
      description: `Like Svix's recover: every failed delivery of this endpoint since a time, at most ${RECOVER_MAX.toLocaleString('en')} per call; has_more says whether more remain.`,
      params: id,
      body: EndpointRecover,
      answer: { status: 202, description: 'The deliveries are queued again.', schema: EndpointRecovered },
      errors: { 409: 'endpoint_disabled.', 503: ERRORS[503] },
      handler: async ({ params, body, deps }) => recoverFailed(deps, await load(deps, params.id), body.since),
    }),
  ],
);
