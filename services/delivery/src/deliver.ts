import type { PrismaClient } from '@trackway/db';
import type { EventEnvelope } from '@trackway/domain';
import { disableEndpoint } from '@trackway/ledger';
import type { Logger } from '@trackway/logger';
import { publishEvents, writeEvents } from '@trackway/outbox';
import type { DeliveryJob, TypedQueue } from '@trackway/queues';
import type { Metrics } from '@trackway/runtime';
import { signedHeaders } from '@trackway/webhooks';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { type EndpointDirectory, liveSecrets } from './endpoints';
import type { Isolation } from './isolation';
import { delayBeforeAttempt } from './schedule';
import { type AttemptResult, send } from './sender';
import type { AddressPolicy } from '@trackway/webhooks';

export const USER_AGENT = `Trackway-Webhooks/${process.env.npm_package_version ?? '0.1.0'} (+https://github.com/trackway/trackway)`;
// Headers an endpoint's custom headers may not replace.
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'user-agent', 'webhook-id', 'webhook-timestamp', 'webhook-signature', 'host', 'connection', 'transfer-encoding']);

/** A failed attempt with attempts left: BullMQ's backoff strategy reads the delay from it. */
export class DeliveryAttemptFailed extends Error {
  override name = 'DeliveryAttemptFailed';
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
  }
}

export interface DeliverDeps {
  prisma: PrismaClient;
  endpoints: EndpointDirectory;
  isolation: Isolation;
  eventsQueue: TypedQueue<'events'>;
  /** Tells every process caching endpoints that one changed (e.g. was disabled). */
  invalidateEndpoint: (id: string) => Promise<void>;
  logger: Logger;
  metrics: Metrics;
  settings: {
    timeoutMs: number;
    schedule: readonly number[];
    disableAfterMs: number;
    policy: AddressPolicy;
  };
}

/** The request body: the envelope, in a fixed key order, identical on every attempt and replay. */
export function bodyOf(payload: unknown): string {
  const event = payload as EventEnvelope;
  return JSON.stringify({ id: event.id, type: event.type, timestamp: event.timestamp, data: event.data });
}

const statusClass = (result: AttemptResult) => (result.statusCode ? `${Math.floor(result.statusCode / 100)}xx` : 'none');

export function createDeliverHandler(deps: DeliverDeps) {
  const { prisma, endpoints, isolation, logger, metrics, settings } = deps;

  const settleEvents = async (events: EventEnvelope[], endpointId: string) => {
    if (events.length === 0) return;
    await deps.invalidateEndpoint(endpointId).catch(() => undefined);
    await publishEvents(prisma, deps.eventsQueue, events).catch((error: unknown) => logger.warn({ err: error }, 'events left for the outbox relay'));
  };

  return async function deliver(job: Job<DeliveryJob>, token?: string) {
    const { deliveryId, endpointId, eventId, replay } = job.data;
    const delivery = await prisma.delivery.findUnique({ where: { id: deliveryId }, include: { event: { select: { payload: true } } } });
    if (!delivery) return { skipped: 'delivery_pruned' };
    if (delivery.status !== 'pending' && !replay) return { skipped: `already_${delivery.status}` };

    const endpoint = await endpoints.get(endpointId);
    if (!endpoint || !endpoint.enabled) {
      // Invariant 4: retried until 2xx, its schedule ends, or its endpoint is disabled.
      await prisma.delivery.update({ where: { id: deliveryId }, data: { status: 'failed', nextAttemptAt: null } });
      metrics.deliveries.inc({ result: 'endpoint_disabled', status_class: 'none' });
      return { skipped: 'endpoint_disabled' };
    }

    // Isolation gates: a paused, busy or rate-limited endpoint parks this job without spending an attempt.
    const slotToken = `${job.id}:${token ?? ''}`;
    const admission = await isolation.admit(endpointId, endpoint.rateLimitPerSecond, slotToken);
    if (!admission.ok) {
      await job.moveToDelayed(admission.retryAt, token);
      throw new DelayedError(admission.reason);
    }

    let result: AttemptResult;
    const at = new Date();
    try {
      const body = bodyOf(delivery.event.payload);
      const custom = Object.fromEntries(Object.entries(endpoint.headers).filter(([name]) => !RESERVED_HEADERS.has(name.toLowerCase())));
      const headers = {
        ...custom,
        'content-type': 'application/json',
        'user-agent': USER_AGENT,
        ...signedHeaders({ id: eventId, timestamp: at, body }, liveSecrets(endpoint, at)),
      };
      result = await send(endpoint.url, body, headers, { timeoutMs: settings.timeoutMs, policy: settings.policy });
    } finally {
      await isolation.release(endpointId, slotToken);
    }

    const succeeded = result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;
    const gone = result.statusCode === 410;
    const blocked = result.error === 'ssrf_blocked';
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const final = succeeded || gone || blocked || lastAttempt;
    const nextDelay = final ? null : delayBeforeAttempt(settings.schedule, job.attemptsMade + 2, result.retryAfterMs);

    const events = await prisma.$transaction(async (tx) => {
      const { attemptCount } = await tx.delivery.update({
        where: { id: deliveryId },
        data: {
          attemptCount: { increment: 1 },
          status: succeeded ? 'succeeded' : final ? 'failed' : 'pending',
          nextAttemptAt: nextDelay === null ? null : new Date(Date.now() + nextDelay),
        },
      });
      await tx.deliveryAttempt.create({
        data: { deliveryId, number: attemptCount, at, durationMs: result.durationMs, statusCode: result.statusCode, error: result.error, responseBody: result.responseBody },
      });
      if (succeeded) {
        await tx.webhookEndpoint.updateMany({ where: { id: endpointId, failingSince: { not: null } }, data: { failingSince: null } });
        return [];
      }
      // The endpoint.disabled event is written in the transaction that disables the endpoint.
      const disable = async (reason: string) => {
        const emitted = await disableEndpoint(tx, endpointId, reason, at);
        await writeEvents(tx, emitted);
        return emitted;
      };
      if (gone) return disable('The endpoint answered 410 Gone.');
      if (blocked) return [];
      await tx.webhookEndpoint.updateMany({ where: { id: endpointId, failingSince: null }, data: { failingSince: at } });
      const failingSince = endpoint.failingSince ?? (await tx.webhookEndpoint.findUnique({ where: { id: endpointId } }))?.failingSince ?? at;
      if (at.getTime() - failingSince.getTime() >= settings.disableAfterMs) {
        return disable(`Every attempt failed since ${failingSince.toISOString()}.`);
      }
      return [];
    });
    await settleEvents(events, endpointId);

    if (!blocked) {
      const opened = succeeded ? (await isolation.succeeded(endpointId), false) : await isolation.failed(endpointId);
      metrics.setBreakerState(endpointId, succeeded ? 'closed' : opened ? 'open' : await isolation.state(endpointId));
    }
    metrics.deliveries.inc({ result: succeeded ? 'succeeded' : final ? 'failed' : 'retry', status_class: statusClass(result) });
    const logLine = { delivery_id: deliveryId, event_id: eventId, endpoint_id: endpointId, attempt: job.attemptsMade + 1, status_code: result.statusCode, error: result.error, duration_ms: result.durationMs };
    if (succeeded) {
      logger.info(logLine, 'delivered');
      return { status_code: result.statusCode };
    }
    logger.warn({ ...logLine, next_attempt_in_ms: nextDelay }, final ? 'delivery failed for good' : 'delivery attempt failed');
    const reason = result.error ?? `HTTP ${result.statusCode}`;
    if (final) throw new UnrecoverableError(gone ? 'endpoint gone (410); endpoint disabled' : blocked ? 'destination blocked (ssrf_blocked)' : `last attempt failed: ${reason}`);
    throw new DeliveryAttemptFailed(reason, nextDelay!);
  };
}
