import type { PgPool, PrismaClient } from '@trackway/db';
import type { EventEnvelope } from '@trackway/domain';
import { disableEndpoint } from '@trackway/ledger';
import type { Logger } from '@trackway/logger';
import { publishEvents, writeEvents } from '@trackway/outbox';
import type { DeliveryJob, TypedQueue } from '@trackway/queues';
import type { Metrics } from '@trackway/runtime';
import { RESERVED_HEADERS, signedHeaders } from '@trackway/webhooks';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { type EndpointDirectory, liveSecrets } from './endpoints';
import type { Isolation } from './isolation';
import { delayBeforeAttempt } from './schedule';
import type { AttemptResult, Sender } from './sender';
import type { AddressPolicy } from '@trackway/webhooks';

export const USER_AGENT = `Trackway-Webhooks/${process.env.npm_package_version ?? '0.1.0'} (+https://github.com/trackway/trackway)`;

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
  pool: PgPool;
  endpoints: EndpointDirectory;
  isolation: Isolation;
  /** The keep-alive HTTP client, SSRF-guarded by settings.policy. */
  sender: Sender;
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
const isSuccess = (result: AttemptResult) => result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;

export function createDeliverHandler(deps: DeliverDeps) {
  const { prisma, endpoints, isolation, logger, metrics, settings } = deps;

  const settleEvents = async (events: EventEnvelope[], endpointId: string) => {
    if (events.length === 0) return;
    await deps.invalidateEndpoint(endpointId).catch(() => undefined);
    await publishEvents(deps.pool, deps.eventsQueue, events).catch((error: unknown) => logger.warn({ err: error }, 'events left for the outbox relay'));
  };

  // Recent attempt duration per endpoint (EWMA, this process): how long a parked job waits for a slot.
  const typicalMs = new Map<string, number>();
  const observe = (endpointId: string, ms: number) => {
    const previous = typicalMs.get(endpointId);
    if (typicalMs.size > 10_000 && previous === undefined) typicalMs.clear();
    typicalMs.set(endpointId, previous === undefined ? ms : previous * 0.8 + ms * 0.2);
  };

  return async function deliver(job: Job<DeliveryJob>, token?: string) {
    const { deliveryId, endpointId, eventId, replay } = job.data;
    const endpoint = await endpoints.get(endpointId);
    if (!endpoint || !endpoint.enabled) {
      // Invariant 4: retried until 2xx, its schedule ends, or its endpoint is disabled.
      await prisma.delivery.updateMany({ where: { id: deliveryId, status: 'pending' }, data: { status: 'failed', nextAttemptAt: null } });
      metrics.deliveries.inc({ result: 'endpoint_disabled', status_class: 'none' });
      return { skipped: 'endpoint_disabled' };
    }

    // Isolation gates first (they need only the cached endpoint): a paused, busy or
    // rate-limited endpoint parks this job without spending an attempt or a database read.
    const slotToken = `${job.id}:${token ?? ''}`;
    // A parked job comes back as a new start that is not an attempt: starts − attempts − 1 = times parked.
    const timesParked = Math.max(0, (job.attemptsStarted ?? 0) - job.attemptsMade - 1);
    const admission = await isolation.admit(endpointId, endpoint.rateLimitPerSecond, slotToken, typicalMs.get(endpointId), timesParked);
    if (!admission.ok) {
      await job.moveToDelayed(admission.retryAt, token);
      throw new DelayedError(admission.reason);
    }

    let result: AttemptResult | undefined;
    let skipped: string | undefined;
    const at = new Date();
    try {
      const [delivery] = await prisma.$queryRaw<{ status: string; payload: unknown }[]>`
        SELECT d.status::text AS status, e.payload FROM deliveries d JOIN outbox_events e ON e.id = d.event_id WHERE d.id = ${deliveryId}`;
      if (!delivery) skipped = 'delivery_pruned';
      else if (delivery.status !== 'pending' && !replay) skipped = `already_${delivery.status}`;
      else {
        const body = bodyOf(delivery.payload);
        const custom = Object.fromEntries(Object.entries(endpoint.headers).filter(([name]) => !RESERVED_HEADERS.has(name.toLowerCase())));
        const headers = {
          ...custom,
          'content-type': 'application/json',
          'user-agent': USER_AGENT,
          ...signedHeaders({ id: eventId, timestamp: at, body }, liveSecrets(endpoint, at)),
        };
        result = await deps.sender.send(endpoint.url, body, headers, { timeoutMs: settings.timeoutMs });
        observe(endpointId, result.durationMs);
      }
    } finally {
      const outcome = !result || result.error === 'ssrf_blocked' ? 'neutral' : isSuccess(result) ? 'succeeded' : 'failed';
      await isolation.finish(endpointId, slotToken, outcome, admission.probe);
    }
    if (!result) return { skipped };

    const succeeded = isSuccess(result);
    const gone = result.statusCode === 410;
    const blocked = result.error === 'ssrf_blocked';
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const final = succeeded || gone || blocked || lastAttempt;
    const nextDelay = final ? null : delayBeforeAttempt(settings.schedule, job.attemptsMade + 2, result.retryAfterMs);
    const status = succeeded ? 'succeeded' : final ? 'failed' : 'pending';
    const nextAttemptAt = nextDelay === null ? null : new Date(Date.now() + nextDelay);

    // One statement records the attempt: numbers it, settles the delivery, and tracks since
    // when the endpoint has been failing (cleared by a success).
    const record = (db: Pick<PrismaClient, '$queryRaw'>) => db.$queryRaw<{ failing_since: Date | null }[]>`
      WITH d AS (
        UPDATE deliveries SET attempt_count = attempt_count + 1, status = ${status}::"DeliveryStatus",
          next_attempt_at = ${nextAttemptAt}::timestamptz, updated_at = now()
        WHERE id = ${deliveryId} RETURNING attempt_count
      ), a AS (
        INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, status_code, error, response_body)
        SELECT ${deliveryId}, attempt_count, ${at}::timestamptz, ${result.durationMs}::integer, ${result.statusCode}::integer, ${result.error}::varchar, ${result.responseBody}::varchar FROM d
      )
      UPDATE webhook_endpoints SET failing_since = CASE WHEN ${succeeded}::boolean THEN NULL ELSE COALESCE(failing_since, ${at}::timestamptz) END
      WHERE id = ${endpointId} AND (CASE WHEN ${succeeded}::boolean THEN failing_since IS NOT NULL ELSE NOT ${blocked}::boolean END)
      RETURNING failing_since`;

    if (succeeded || blocked) {
      await record(prisma);
    } else {
      // A failure may disable the endpoint (410, or failing for DELIVERY_DISABLE_AFTER): the
      // attempt, the disabling and its endpoint.disabled event commit together.
      const events = await prisma.$transaction(async (tx) => {
        const [recorded] = await record(tx);
        const failingSince = recorded?.failing_since;
        const reason = gone
          ? 'The endpoint answered 410 Gone.'
          : failingSince && at.getTime() - failingSince.getTime() >= settings.disableAfterMs
            ? `Every attempt failed since ${failingSince.toISOString()}.`
            : null;
        if (!reason) return [];
        const emitted = await disableEndpoint(tx, endpointId, reason, at);
        await writeEvents(tx, emitted);
        return emitted;
      });
      await settleEvents(events, endpointId);
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
