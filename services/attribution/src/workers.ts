import type { ClickIdCodec } from '@trackway/clickid';
import type { PgPool, PrismaClient } from '@trackway/db';
import type { ErrorReporter, Logger } from '@trackway/logger';
import { enqueueEvents, markPublished, relayOutbox } from '@trackway/outbox';
import {
  type ClickJob,
  type InvalidationKind,
  type PostbackJob,
  QUEUE,
  type TypedQueue,
  cappedExponentialDelay,
  parseJob,
  queueKeyPrefix,
} from '@trackway/queues';
import { type Metrics, MicroBatcher, type PostgresOutage, cachedLookup, registerWorker } from '@trackway/runtime';
import { DelayedError, type Processor, type Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { clickFolder } from './clicks/fold-clicks';
import { writeClicks } from './clicks/write-clicks';
import { type AttributionResult, type ClickQueueLook, attributeIsolated, turns } from './postbacks/attribute';

export const ATTRIBUTION_QUEUES = [QUEUE.postbacks, QUEUE.clicks, QUEUE.outbox] as const;
export type AttributionQueue = (typeof ATTRIBUTION_QUEUES)[number];

export interface BatchSettings {
  /** Postbacks (or clicks) written in one transaction at most. */
  size: number;
  /** How long the first of a batch waits for more. */
  waitMs: number;
}

export const DEFAULT_BATCHES = {
  postbacks: { size: 500, waitMs: 50 },
  clicks: { size: 1_000, waitMs: 20 },
} satisfies Record<'postbacks' | 'clicks', BatchSettings>;

export interface AttributionDeps {
  prisma: PrismaClient;
  /** The pool under `prisma`: the hot paths' named multi-row statements. */
  pool: PgPool;
  clickIds: ClickIdCodec;
  eventsQueue: TypedQueue<'events'>;
  /** The clicks queue: whether a click row not written yet may still land (its sub IDs). */
  clicksQueue: TypedQueue<'clicks'>;
  /** How long a postback waits for its click row at most (CLICK_ROW_WAIT_MS; tests shorten it). */
  clickRowWaitMs?: number;
  connection: Redis;
  /** QUEUE_PREFIX: each queue's keys under a hash tag of its own (queueKeyPrefix). */
  prefix: string;
  logger: Logger;
  metrics: Metrics;
  /** Where the workers' errors go (ServiceContext.reportRedisError: an outage is one line per interval). */
  reportRedisError?: ErrorReporter;
  /** Jobs failing because PostgreSQL cannot be reached: folded into its outage lines (ServiceContext.postgresOutage). */
  postgresOutage?: PostgresOutage;
  /** Jobs each worker runs at once: the batches are formed from them. */
  concurrency: { postbacks: number; clicks: number };
  batches?: Partial<Record<'postbacks' | 'clicks', BatchSettings>>;
  relayGraceMs?: number;
  /** BullMQ lockDuration / stalledInterval (WORKER_LOCK_DURATION, WORKER_STALLED_INTERVAL). */
  workerOptions?: { lockDuration?: number; stalledInterval?: number };
  /** false only for the benchmark's baseline: report rows are not moved (reports would be wrong). */
  reportUpkeep?: boolean;
  /** How soon written clicks are folded into the report rows (tests shorten it). */
  clickFoldMs?: number;
}

/** A job's postbacks all settled: the first permanent failure fails it for good, else the first failure retries it. */
function settleJob<T>(results: PromiseSettledResult<T>[]): T[] {
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (failures.length > 0) throw failures.find((e) => !(e instanceof UnrecoverableError)) ?? failures[0];
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

export function createHandlers(deps: AttributionDeps) {
  const { prisma, pool, clickIds, eventsQueue, logger, metrics } = deps;
  const batches = { ...DEFAULT_BATCHES, ...deps.batches };
  // Offers and affiliates change rarely: cached for 30 s and cleared when the API announces a
  // change (an affiliate made inactive holds its next conversions within that time at most).
  const offers = cachedLookup((id) => prisma.offer.findUnique({ where: { id: Number(id) } }), { ttlMs: 30_000 });
  const affiliates = cachedLookup((id) => prisma.affiliate.findUnique({ where: { id: Number(id) }, select: { status: true } }), { ttlMs: 30_000 });

  // Marking events published only spares the relay work (it waits OUTBOX_RELAY grace before it
  // republishes): done in the background, one statement at a time, off the batch's path.
  // A slow Postgres makes batches wait for the marks instead of letting them pile up.
  let marking = Promise.resolve();
  let marksPending = 0;
  const markLater = async (ids: string[]) => {
    marksPending += 1;
    marking = marking
      .then(() => markPublished(pool, ids))
      .catch((error: unknown) => logger.warn({ err: error, events: ids.length }, 'events not marked published; the relay will publish them again'))
      .finally(() => void (marksPending -= 1));
    if (marksPending > 4) await marking;
  };

  // The postbacks the worker's concurrent jobs hold are attributed together, one transaction
  // per batch, two batches in flight, deciding in the order the batches were formed (so this
  // process decides postbacks in queue order); their events are enqueued with one queue call
  // after commit.
  const nextTurn = turns();
  const clickQueue = clickQueueLook(deps.clicksQueue, deps.connection);
  const waiting = new Map<string, Map<string, number>>();
  const postbacks = new MicroBatcher<PostbackJob, AttributionResult>(
    async (jobs) => {
      const results = await attributeIsolated(
        {
          pool,
          clickIds,
          offers: (id) => offers.get(id),
          affiliates: (id) => affiliates.get(id),
          clickQueue,
          clickRowWaitMs: deps.clickRowWaitMs,
          waiting,
          reportUpkeep: deps.reportUpkeep,
        },
        jobs,
        nextTurn(),
      );
      const events = results.flatMap((r) => (r.ok ? r.value.events : []));
      try {
        await enqueueEvents(eventsQueue, events);
        await markLater(events.map((e) => e.id));
      } catch (error) {
        // Committed but not enqueued: the outbox relay publishes these events later.
        logger.warn({ err: error, events: events.length }, 'events left for the outbox relay');
      }
      return results;
    },
    { maxSize: batches.postbacks.size, maxWaitMs: batches.postbacks.waitMs, maxInFlight: 2 },
  );
  const folder = deps.reportUpkeep === false ? null : clickFolder(pool, logger, deps.clickFoldMs);
  const clicks = new MicroBatcher<ClickJob, void>(
    async (rows) => {
      const written = await writeClicks(pool, rows, deps.reportUpkeep);
      folder?.poke();
      return written;
    },
    {
      maxSize: batches.clicks.size,
      maxWaitMs: batches.clicks.waitMs,
    },
  );

  return {
    handlers: {
      postbacks: async (job, token) => {
        const list = parseJob('postbacks', job).postbacks;
        const results = await Promise.allSettled(list.map((p) => postbacks.add(p)));
        const counts: Record<string, number> = {};
        const waits = new Set<string>();
        results.forEach((result, i) => {
          if (result.status === 'rejected') return;
          if (result.value.deferred) {
            waits.add(list[i].postbackId);
            return;
          }
          const { outcome, events, replayed } = result.value;
          // The line that links a postback to the events (and so the deliveries) it caused.
          logger.info(
            {
              postback_id: list[i].postbackId,
              outcome: outcome.status,
              reason: outcome.reason,
              conversion_id: outcome.conversionId,
              event_ids: events.map((e) => e.id),
              replayed,
            },
            'postback attributed',
          );
          counts[outcome.status] = (counts[outcome.status] ?? 0) + 1;
          if (replayed) return;
          metrics.postbacks.inc({ stage: 'attribution', outcome: outcome.status, reason: outcome.reason ?? '' });
          if (outcome.conversionStatus) metrics.conversions.inc({ status: outcome.conversionStatus });
        });
        if (waits.size > 0) {
          // Put back before anything else, even if another postback of the job failed (it fails
          // again on the next run, once none waits): its other postbacks are committed, and replay,
          // writing nothing, when it runs again. Each waiting one keeps when it first waited.
          const since = new Date().toISOString();
          logger.debug({ job_id: job.id, postbacks: waits.size }, 'postbacks wait for their click rows');
          await job.updateData({ postbacks: list.map((p) => (waits.has(p.postbackId) ? { ...p, clickWaitSince: p.clickWaitSince ?? since } : p)) });
          await job.moveToDelayed(Date.now() + CLICK_ROW_RECHECK_MS, token);
          throw new DelayedError('postbacks wait for their click rows');
        }
        settleJob(results);
        return counts;
      },
      clicks: async (job) => {
        const list = parseJob('clicks', job).clicks;
        settleJob(await Promise.allSettled(list.map((c) => clicks.add(c))));
        metrics.clicks.inc({ outcome: 'recorded' }, list.length);
        return { recorded: list.length };
      },
      outbox: async () => ({ published: await relayOutbox(pool, eventsQueue, { graceMs: deps.relayGraceMs }) }),
    } satisfies Record<AttributionQueue, Processor>,
    /** Clears the cache of a kind the API announced a change of (subscribeInvalidations). */
    invalidate(kind: InvalidationKind) {
      if (kind === 'offer') offers.clear();
      if (kind === 'affiliate') affiliates.clear();
    },
    /** Resolves once every background mark has run and the written clicks are folded (for a graceful shutdown). */
    drain: async () => {
      await marking;
      await folder?.stop();
    },
  };
}

/**
 * When the oldest click job still queued was queued (Unix ms), or null when none is: the oldest
 * job of each state (lists hold the oldest last; BullMQ ids are not times), its timestamp only,
 * not its 256 clicks.
 */
export async function oldestQueuedClick(clicks: TypedQueue<'clicks'>, redis: Redis): Promise<number | null> {
  const ids = await clicks.getRanges(['active', 'wait', 'prioritized', 'delayed'], 0, 0, true);
  const stamps = await Promise.all(ids.map((id) => redis.hget(clicks.toKey(id), 'timestamp')));
  const times = stamps.filter((t): t is string => t !== null).map(Number);
  return times.length === 0 ? null : Math.min(...times);
}

/** How long a look at the clicks queue serves the batches after it. */
const CLICK_QUEUE_LOOK_MS = 200;

/**
 * Looks at the clicks queue, one look serving the batches of the next CLICK_QUEUE_LOOK_MS: a
 * click row missing from a read made after a look can only belong to a click queued after it,
 * which no postback processed so soon after its own click has (a conversion takes a visit).
 * That spares the batches whose click rows are missing a Redis read and a second row read each.
 */
export function clickQueueLook(clicks: TypedQueue<'clicks'>, redis: Redis, ttlMs = CLICK_QUEUE_LOOK_MS): () => Promise<ClickQueueLook> {
  let last: ClickQueueLook | undefined;
  let pending: Promise<ClickQueueLook> | undefined;
  return () => {
    if (last && Date.now() - last.seenAt < ttlMs) return Promise.resolve(last);
    pending ??= oldestQueuedClick(clicks, redis)
      .then((oldest) => (last = { oldest, seenAt: Date.now() }))
      .finally(() => (pending = undefined));
    return pending;
  };
}

/** How soon a postback waiting for its click row looks again. */
const CLICK_ROW_RECHECK_MS = 1_000;

// A job that stalls (its worker was killed) is put back this many times before BullMQ fails it:
// postbacks and clicks are idempotent, so running one again is always safe.
const MAX_STALLED_COUNT = 20;

export function createWorkers(
  deps: AttributionDeps,
  queues: readonly AttributionQueue[] = ATTRIBUTION_QUEUES,
): Worker[] & {
  invalidate: (kind: InvalidationKind) => void;
  drain: () => Promise<void>;
  /** A worker on a queue of the older layout (findOldLayoutQueues), with the handler of its kind. */
  drainOld: (queue: Queue, kind: AttributionQueue) => Worker;
} {
  const { handlers, invalidate, drain } = createHandlers(deps);
  const concurrency: Record<AttributionQueue, number> = {
    postbacks: deps.concurrency.postbacks,
    clicks: deps.concurrency.clicks,
    outbox: 1,
  };
  const workerOn = (kind: AttributionQueue, name: string, prefix: string) =>
    registerWorker(
      new Worker(name, handlers[kind], {
        connection: deps.connection,
        prefix,
        concurrency: concurrency[kind],
        maxStalledCount: MAX_STALLED_COUNT,
        ...deps.workerOptions,
        settings: { backoffStrategy: (attemptsMade: number) => cappedExponentialDelay(attemptsMade) },
      }),
      deps,
    );
  const workers = queues.map((kind) => workerOn(kind, kind, queueKeyPrefix(deps.prefix, kind)));
  const drainOld = (queue: Queue, kind: AttributionQueue) => workerOn(kind, queue.name, queue.opts.prefix!);
  return Object.assign(workers, { invalidate, drain, drainOld });
}
