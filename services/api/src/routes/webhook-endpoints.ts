import { createEvent, endpointJson, newId, sealHeaders } from '@trackway/domain';
import { HttpError, badRequest, notFound, parseInput, unavailable } from '@trackway/http';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { deliveryJobOptions, replayJobId } from '@trackway/queues';
import { checkLiteralHost, generateSecret } from '@trackway/webhooks';
import { Router } from 'express';
import type { ApiDeps } from '../deps';
import { decodeCursor, page, parseListQuery } from '../pagination';
import { EndpointCreate, EndpointDeliveriesList, EndpointList, EndpointRecover, EndpointUpdate, deliveryJson } from '../representations';
import { prefixedId } from './params';

const OVERLAP_MS = 24 * 3600 * 1000;

const REPLAY_PAGE = 500;
export const RECOVER_MAX = 10_000;

/**
 * Re-sends deliveries (same event, same webhook-id), each as a new job with the full schedule.
 * Only deliveries that are not pending are taken, by one conditional UPDATE that also counts the
 * replay: two concurrent requests cannot both replay a delivery. Returns how many were replayed.
 */
export async function replayDeliveries(deps: ApiDeps, ids: string[]): Promise<number> {
  if (ids.length === 0) return 0;
  if (deps.redis.status !== 'ready') throw unavailable('The replay could not be queued; retry later.');
  const flipped = await deps.prisma.$queryRaw<
    { id: string; event_id: string; endpoint_id: string; event_type: string; replay_count: number; previous: string }[]
  >`
    WITH old AS (
      SELECT id, status FROM deliveries WHERE id = ANY(${ids}::varchar[]) AND status <> 'pending' FOR UPDATE
    )
    UPDATE deliveries d SET status = 'pending', replay_count = d.replay_count + 1, next_attempt_at = now(), updated_at = now()
    FROM old WHERE d.id = old.id
    RETURNING d.id, d.event_id, d.endpoint_id, d.event_type, d.replay_count, old.status::text AS previous`;
  if (flipped.length === 0) return 0;
  try {
    await deps.queues.deliveries.addBulk(
      flipped.map((d) => ({
        name: d.event_type,
        data: { deliveryId: d.id, endpointId: d.endpoint_id, eventId: d.event_id, replay: true, replayCount: d.replay_count },
        opts: deliveryJobOptions(deps.webhooks.schedule, replayJobId(d.event_id, d.endpoint_id, d.replay_count)),
      })),
    );
  } catch (error) {
    // Not queued: put the statuses back (unless a later replay took over meanwhile).
    for (const d of flipped) {
      await deps.prisma.delivery.updateMany({
        where: { id: d.id, replayCount: d.replay_count, status: 'pending' },
        data: { status: d.previous as 'failed' | 'succeeded' },
      });
    }
    deps.logger.warn({ err: error }, 'replay not queued');
    throw unavailable('The replay could not be queued; retry later.');
  }
  return flipped.length;
}

/** Replays in pages; at most RECOVER_MAX per call (the answer says whether more remain). */
export async function replayInPages(deps: ApiDeps, ids: string[]): Promise<number> {
  let replayed = 0;
  for (let i = 0; i < ids.length; i += REPLAY_PAGE) replayed += await replayDeliveries(deps, ids.slice(i, i + REPLAY_PAGE));
  return replayed;
}

export function webhookEndpointsRouter(deps: ApiDeps): Router {
  const { prisma, box, invalidate } = deps;
  const router = Router();

  const checkUrl = (url: string) => {
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
  };
  const load = async (id: string) => {
    const endpoint = await prisma.webhookEndpoint.findUnique({ where: { id: prefixedId(id, 'ep', 'Webhook endpoint') } });
    if (!endpoint) throw notFound('Webhook endpoint');
    return endpoint;
  };
  const changed = async (id: string) => {
    await invalidate('endpoint', id);
    return endpointJson(await prisma.webhookEndpoint.findUniqueOrThrow({ where: { id } }));
  };

  router.post('/', async (req, res) => {
    const input = parseInput(EndpointCreate, req.body);
    const secret = generateSecret();
    const endpoint = await prisma.webhookEndpoint.create({
      data: {
        id: newId('endpoint'),
        url: checkUrl(input.url),
        eventTypes: input.event_types,
        description: input.description ?? null,
        sealedHeaders: sealHeaders(box, input.headers ?? {}),
        rateLimitPerSecond: input.rate_limit_per_second ?? null,
        secretSealed: box.seal(secret),
      },
    });
    await invalidate('endpoint', endpoint.id);
    // The secret is shown here and on rotation only; it is stored encrypted, like header values
    // (which no answer shows).
    res.status(201).json({ ...endpointJson(endpoint), secret });
  });

  router.get('/', async (req, res) => {
    const q = parseListQuery(EndpointList, req.query);
    const cursor = decodeCursor<string>(q.cursor, 'string');
    const rows = await prisma.webhookEndpoint.findMany({
      where: { enabled: q.enabled === undefined ? undefined : q.enabled === 'true', id: cursor === undefined ? undefined : { lt: cursor } },
      orderBy: { id: 'desc' },
      take: q.limit + 1,
    });
    res.json(page(rows, q.limit, endpointJson));
  });

  router.get('/:id', async (req, res) => {
    res.json(endpointJson(await load(req.params.id)));
  });

  router.patch('/:id', async (req, res) => {
    const { id } = await load(req.params.id);
    const input = parseInput(EndpointUpdate, req.body);
    await prisma.webhookEndpoint.update({
      where: { id },
      data: {
        url: input.url === undefined ? undefined : checkUrl(input.url),
        eventTypes: input.event_types,
        description: input.description,
        ...(input.headers && { sealedHeaders: sealHeaders(box, input.headers), plaintextHeaders: {} }),
        rateLimitPerSecond: input.rate_limit_per_second,
      },
    });
    res.json(await changed(id));
  });

  router.delete('/:id', async (req, res) => {
    const { id } = await load(req.params.id);
    await prisma.webhookEndpoint.delete({ where: { id } });
    await invalidate('endpoint', id);
    res.status(204).end();
  });

  router.post('/:id/enable', async (req, res) => {
    const { id } = await load(req.params.id);
    await prisma.webhookEndpoint.update({ where: { id }, data: { enabled: true, disabledReason: null, failingSince: null } });
    res.json(await changed(id));
  });

  router.post('/:id/disable', async (req, res) => {
    const { id } = await load(req.params.id);
    await prisma.webhookEndpoint.update({ where: { id }, data: { enabled: false, disabledReason: 'Disabled by an administrator.' } });
    res.json(await changed(id));
  });

  // The old secret keeps signing beside the new one for 24 h, so receivers can switch over.
  router.post('/:id/rotate-secret', async (req, res) => {
    const endpoint = await load(req.params.id);
    const secret = generateSecret();
    const previousSecretExpiresAt = new Date(Date.now() + OVERLAP_MS);
    // Conditional on the secret we read: two concurrent rotations cannot both "succeed" with
    // one of the returned secrets never stored.
    const { count } = await prisma.webhookEndpoint.updateMany({
      where: { id: endpoint.id, secretSealed: endpoint.secretSealed },
      data: { secretSealed: box.seal(secret), previousSecretSealed: endpoint.secretSealed, previousSecretExpiresAt },
    });
    if (count === 0) throw new HttpError(409, 'conflict', 'The secret was rotated concurrently; fetch the endpoint and retry.');
    await invalidate('endpoint', endpoint.id);
    res.json({ id: endpoint.id, secret, previous_secret_expires_at: previousSecretExpiresAt.toISOString() });
  });

  // A webhook.test event for this endpoint only: written with its delivery row in one
  // transaction, then published like every other event.
  router.post('/:id/test', async (req, res) => {
    const endpoint = await load(req.params.id);
    if (!endpoint.enabled) throw new HttpError(409, 'endpoint_disabled', 'Enable the endpoint before sending it a test event.');
    const event = createEvent('webhook.test', { endpoint_id: endpoint.id, message: 'This is a test event from Trackway.' });
    const deliveryId = newId('delivery');
    await prisma.$transaction(async (tx) => {
      await writeEvents(tx, [event]);
      await tx.delivery.create({ data: { id: deliveryId, eventId: event.id, endpointId: endpoint.id, eventType: event.type } });
    });
    await publishEvents(deps.pool, deps.queues.events, [event]).catch((error: unknown) =>
      deps.logger.warn({ err: error }, 'test event left for the outbox relay'),
    );
    res.status(202).json({ event_id: event.id, delivery_id: deliveryId });
  });

  router.get('/:id/deliveries', async (req, res) => {
    const { id } = await load(req.params.id);
    const q = parseListQuery(EndpointDeliveriesList, req.query);
    const cursor = decodeCursor<string>(q.cursor, 'string');
    const rows = await prisma.delivery.findMany({
      where: { endpointId: id, status: q.status, id: cursor === undefined ? undefined : { lt: cursor } },
      orderBy: { id: 'desc' },
      take: q.limit + 1,
    });
    res.json(page(rows, q.limit, deliveryJson));
  });

  // Like Svix's recover: re-send every failed delivery of this endpoint since a time.
  router.post('/:id/recover', async (req, res) => {
    const endpoint = await load(req.params.id);
    const { since } = parseInput(EndpointRecover, req.body);
    if (!endpoint.enabled) throw new HttpError(409, 'endpoint_disabled', 'Enable the endpoint before recovering its deliveries.');
    const failed = await prisma.delivery.findMany({
      where: { endpointId: endpoint.id, status: 'failed', createdAt: { gte: since } },
      orderBy: { id: 'asc' },
      take: RECOVER_MAX + 1,
      select: { id: true },
    });
    const batch = failed.slice(0, RECOVER_MAX).map((d) => d.id);
    res.status(202).json({ recovered: await replayInPages(deps, batch), has_more: failed.length > RECOVER_MAX });
  });

  return router;
}
