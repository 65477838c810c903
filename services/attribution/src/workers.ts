import type { ClickIdCodec } from '@trackway/clickid';
import type { PgPool, PrismaClient } from '@trackway/db';
import type { Logger } from '@trackway/logger';
import { publishEvents, relayOutbox } from '@trackway/outbox';
import { type PostbackJob, QUEUE, type TypedQueue, cappedExponentialDelay, parseJob } from '@trackway/queues';
import { type CachedLookup, type Metrics, cachedLookup, registerWorker } from '@trackway/runtime';
import { type Processor, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { ClickBatcher } from './clicks/click-batcher';
import { processPostback } from './postbacks/process-postback';

export const ATTRIBUTION_QUEUES = [QUEUE.postbacks, QUEUE.clicks, QUEUE.outbox] as const;
export type AttributionQueue = (typeof ATTRIBUTION_QUEUES)[number];

export interface AttributionDeps {
  prisma: PrismaClient;
  /** The pool under `prisma`: the hot paths' named multi-row statements. */
  pool: PgPool;
  clickIds: ClickIdCodec;
  eventsQueue: TypedQueue<'events'>;
  connection: Redis;
  prefix: string;
  logger: Logger;
  metrics: Metrics;
  concurrency: { postbacks: number; clicks: number };
  relayGraceMs?: number;
  /** BullMQ lockDuration / stalledInterval (WORKER_LOCK_DURATION, WORKER_STALLED_INTERVAL). */
  workerOptions?: { lockDuration?: number; stalledInterval?: number };
}

export function createHandlers(deps: AttributionDeps) {
  const { prisma, clickIds, eventsQueue, logger, metrics } = deps;
  const clicks = new ClickBatcher(prisma);
  // Offers change rarely: cached for 30 s and cleared when the API announces a change.
  const offers = cachedLookup((id) => prisma.offer.findUnique({ where: { id: Number(id) } }), { ttlMs: 30_000 });
  return {
    handlers: {
      postbacks: async (job) => {
        const results = [];
        for (const payload of parseJob('postbacks', job).postbacks) results.push(await attributeOne(payload));
        return results.length === 1 ? results[0] : { outcomes: results.length };
      },
      clicks: async (job) => {
        for (const click of parseJob('clicks', job).clicks) {
          await clicks.add(click);
          metrics.clicks.inc({ outcome: 'recorded' });
        }
      },
      outbox: async () => ({ published: await relayOutbox(deps.pool, eventsQueue, { graceMs: deps.relayGraceMs }) }),
    } satisfies Record<AttributionQueue, Processor>,
    offers,
  };
  async function attributeOne(payload: PostbackJob) {
        const { outcome, events, replayed } = await processPostback(prisma, clickIds, payload, (id) => offers.get(id));
        // The line that links a postback to the events (and so the deliveries) it caused.
        logger.info(
          { postback_id: payload.postbackId, outcome: outcome.status, reason: outcome.reason, conversion_id: outcome.conversionId, event_ids: events.map((e) => e.id), replayed },
          'postback attributed',
        );
        if (!replayed) {
          metrics.postbacks.inc({ stage: 'attribution', outcome: outcome.status, reason: outcome.reason ?? '' });
          if (outcome.conversionStatus) metrics.conversions.inc({ status: outcome.conversionStatus });
        }
        try {
          await publishEvents(deps.pool, eventsQueue, events);
        } catch (error) {
          // Committed but not enqueued: the outbox relay publishes these events later.
          logger.warn({ err: error, postback_id: payload.postbackId }, 'events left for the outbox relay');
        }
        return { status: outcome.status, reason: outcome.reason, conversion_id: outcome.conversionId };
  }
}

export function createWorkers(deps: AttributionDeps, queues: readonly AttributionQueue[] = ATTRIBUTION_QUEUES): Worker[] & { offers: CachedLookup<object> } {
  const { handlers, offers } = createHandlers(deps);
  const concurrency: Record<AttributionQueue, number> = {
    postbacks: deps.concurrency.postbacks,
    clicks: deps.concurrency.clicks,
    outbox: 1,
  };
  const workers = queues.map((name) =>
    registerWorker(
      new Worker(name, handlers[name], {
        connection: deps.connection,
        prefix: deps.prefix,
        concurrency: concurrency[name],
        ...deps.workerOptions,
        settings: { backoffStrategy: (attemptsMade: number) => cappedExponentialDelay(attemptsMade) },
      }),
      deps,
    ),
  );
  return Object.assign(workers, { offers });
}
