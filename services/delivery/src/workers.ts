import type { PgPool, PrismaClient } from '@trackway/db';
import type { SecretBox } from '@trackway/domain';
import type { Logger } from '@trackway/logger';
import { DELIVERY_BACKOFF, type JobPayloads, QUEUE, type TypedQueue, cappedExponentialDelay, parseJob } from '@trackway/queues';
import { MAX_BREAKER_SERIES, type Metrics, registerWorker } from '@trackway/runtime';
import { type Job, type Processor, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { DeliveryAttemptFailed, createDeliverHandler } from './deliver';
import { type EndpointDirectory, createEndpointDirectory } from './endpoints';
import { createFanOut } from './fanout';
import { pruneDeliveryLog } from './housekeeping';
import { createIsolation } from './isolation';
import { delayBeforeAttempt } from './schedule';
import { createSender } from './sender';
import type { AddressPolicy } from '@trackway/webhooks';

export const DELIVERY_QUEUES = [QUEUE.events, QUEUE.deliveries, QUEUE.housekeeping] as const;
export type DeliveryQueue = (typeof DELIVERY_QUEUES)[number];

export interface DeliverySettings {
  timeoutMs: number;
  schedule: readonly number[];
  breakerThreshold: number;
  breakerCooldownMs: number;
  disableAfterMs: number;
  retentionDays: number;
  endpointConcurrency: number;
  policy: AddressPolicy;
}

export interface DeliveryDeps {
  prisma: PrismaClient;
  /** The pool under `prisma`: the hot paths' named multi-row statements. */
  pool: PgPool;
  box: SecretBox;
  /** Worker connection (blocking commands). */
  connection: Redis;
  /** Shared isolation state and cache invalidation. */
  redis: Redis;
  queues: { events: TypedQueue<'events'>; deliveries: TypedQueue<'deliveries'> };
  prefix: string;
  invalidateEndpoint: (id: string) => Promise<void>;
  logger: Logger;
  metrics: Metrics;
  concurrency: { events: number; deliveries: number };
  settings: DeliverySettings;
  /** Extra worker options (tests shorten lock durations to exercise stalled-job recovery). */
  workerOptions?: { lockDuration?: number; stalledInterval?: number };
}

export function createDeliveryWorkers(deps: DeliveryDeps, queues: readonly DeliveryQueue[] = DELIVERY_QUEUES): { workers: Worker[]; endpoints: EndpointDirectory } {
  const { settings } = deps;
  const endpoints = createEndpointDirectory(deps.prisma, deps.box);
  const isolation = createIsolation(deps.redis, {
    prefix: deps.prefix,
    breakerThreshold: settings.breakerThreshold,
    breakerCooldownMs: settings.breakerCooldownMs,
    endpointConcurrency: settings.endpointConcurrency,
    attemptTimeoutMs: settings.timeoutMs,
  });
  deps.metrics.setBreakerSource(() => isolation.snapshot(MAX_BREAKER_SERIES));
  const fanOut = createFanOut({ pool: deps.pool, endpoints, deliveriesQueue: deps.queues.deliveries, schedule: settings.schedule });
  const sender = createSender(settings.policy, { connectionsPerOrigin: deps.concurrency.deliveries });
  const deliver = createDeliverHandler({
    sender,
    prisma: deps.prisma,
    pool: deps.pool,
    endpoints,
    isolation,
    eventsQueue: deps.queues.events,
    invalidateEndpoint: deps.invalidateEndpoint,
    logger: deps.logger,
    metrics: deps.metrics,
    settings,
  });

  const handlers = {
    events: async (job) => fanOut(parseJob('events', job).events),
    deliveries: async (job, token) => {
      parseJob('deliveries', job);
      return deliver(job as Job<JobPayloads['deliveries']>, token);
    },
    housekeeping: async () => pruneDeliveryLog(deps.prisma, settings.retentionDays),
  } satisfies Record<DeliveryQueue, Processor>;

  const concurrency: Record<DeliveryQueue, number> = { events: deps.concurrency.events, deliveries: deps.concurrency.deliveries, housekeeping: 1 };
  const workers = queues.map((name) =>
    registerWorker(
      new Worker(name, handlers[name], {
        connection: deps.connection,
        prefix: deps.prefix,
        concurrency: concurrency[name],
        ...deps.workerOptions,
        settings: {
          // The retry schedule: the processor computed the delay (jitter, Retry-After) already.
          backoffStrategy: (attemptsMade: number, type?: string, error?: Error) => {
            if (type !== DELIVERY_BACKOFF) return cappedExponentialDelay(attemptsMade);
            if (error instanceof DeliveryAttemptFailed) return error.delayMs;
            return delayBeforeAttempt(settings.schedule, attemptsMade + 1, null);
          },
        },
      }),
      deps,
    ),
  );
  // The keep-alive connections go when the deliveries worker has finished its last job.
  const deliveriesWorker = workers.find((w) => w.name === QUEUE.deliveries);
  if (deliveriesWorker) deliveriesWorker.once('closed', () => void sender.close());
  else void sender.close();
  // Whatever ended a delivery job for good (an error while recording its last attempt, a job
  // that stalled too often), the delivery must not stay "pending" with nothing left to run it:
  // it becomes a dead letter that can be replayed.
  for (const worker of workers.filter((w) => w.name === QUEUE.deliveries)) {
    worker.on('failed', (job) => {
      if (!job) return;
      void (async () => {
        if ((await job.getState()) !== 'failed') return;
        const { deliveryId, replayCount } = job.data as JobPayloads['deliveries'];
        await deps.prisma.delivery.updateMany({ where: { id: deliveryId, status: 'pending', replayCount: replayCount ?? 0 }, data: { status: 'failed', nextAttemptAt: null } });
      })().catch((error: unknown) => deps.logger.error({ err: error, job_id: job.id }, 'could not mark a failed delivery'));
    });
  }
  return { workers, endpoints };
}
