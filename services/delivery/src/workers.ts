import { setMaxListeners } from 'node:events';
import type { PgPool, PrismaClient } from '@trackway/db';
import type { HistoryRetention, SecretBox } from '@trackway/domain';
import type { ErrorReporter, Logger } from '@trackway/logger';
import {
  DELIVERY_BACKOFF,
  type DeliveryQueues,
  type JobPayloads,
  QUEUE,
  type TypedQueue,
  cappedExponentialDelay,
  parseJob,
  queueKeyPrefix,
} from '@trackway/queues';
import { MAX_BREAKER_SERIES, type Metrics, type PostgresOutage, registerWorker } from '@trackway/runtime';
import type { AddressPolicy } from '@trackway/webhooks';
import { type Job, type MinimalJob, type Processor, type Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { DeliveryAttemptFailed, createDeliverHandler } from './deliver';
import { type EndpointDirectory, createEndpointDirectory } from './endpoints';
import { createFanOut } from './fanout';
import { dropExpiredHistory } from '@trackway/ledger';
import { createSweeper } from './housekeeping';
import { createGatedIsolation } from './gate';
import { InFlightRequests } from './in-flight';
import { createIsolation } from './isolation';
import { delayBeforeAttempt } from './schedule';
import { createSender } from './sender';

export const DELIVERY_QUEUES = [QUEUE.events, QUEUE.deliveries, QUEUE.housekeeping] as const;
export type DeliveryQueue = (typeof DELIVERY_QUEUES)[number];

/**
 * How often a job may be found stalled (its worker died holding it) before BullMQ fails it.
 * BullMQ's default is 1: two kill -9s would fail a delivery. Outages put jobs back without
 * failing them; a job failed anyway is found by the sweeper.
 */
export const MAX_STALLED_COUNT = 20;

export interface DeliverySettings {
  timeoutMs: number;
  schedule: readonly number[];
  /** DELIVERY_RETRY_AFTER_MAX: the longest a receiver's Retry-After defers the next attempt. */
  retryAfterMaxMs: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  disableAfterMs: number;
  /** What retention keeps (days), per class of history. */
  retention: HistoryRetention;
  endpointConcurrency: number;
  /** DELIVERY_MAX_IN_FLIGHT: HTTP requests in flight at once in this process (their jobs' slots lent back). */
  maxInFlight: number;
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
  /** `deliveries`: its shards (DELIVERY_QUEUE_SHARDS), each consumed by a worker of its own. */
  queues: { events: TypedQueue<'events'>; deliveries: DeliveryQueues };
  /** QUEUE_PREFIX. */
  prefix: string;
  invalidateEndpoint: (id: string) => Promise<void>;
  logger: Logger;
  metrics: Metrics;
  /** Where the workers' errors go (ServiceContext.reportRedisError: an outage is one line per interval). */
  reportRedisError?: ErrorReporter;
  /** Jobs failing because PostgreSQL cannot be reached: folded into its outage lines (ServiceContext.postgresOutage). */
  postgresOutage?: PostgresOutage;
  concurrency: { events: number; deliveries: number };
  settings: DeliverySettings;
  /** Extra worker options (tests shorten lock durations to exercise stalled-job recovery). */
  workerOptions?: { lockDuration?: number; stalledInterval?: number };
}

export function createDeliveryWorkers(
  deps: DeliveryDeps,
  queues: readonly DeliveryQueue[] = DELIVERY_QUEUES,
): { workers: Worker[]; endpoints: EndpointDirectory; drain: (queue: Queue, kind: DeliveryQueue) => Worker } {
  const { settings } = deps;
  const endpoints = createEndpointDirectory(deps.prisma, deps.box);
  const isolation = createIsolation(deps.redis, {
    prefix: deps.prefix,
    shards: deps.queues.deliveries.shards.length,
    breakerThreshold: settings.breakerThreshold,
    breakerCooldownMs: settings.breakerCooldownMs,
    endpointConcurrency: settings.endpointConcurrency,
    attemptTimeoutMs: settings.timeoutMs,
  });
  deps.metrics.setBreakerSource(() => isolation.snapshot(MAX_BREAKER_SERIES));
  const fanOut = createFanOut({ pool: deps.pool, endpoints, deliveriesQueue: deps.queues.deliveries, schedule: settings.schedule });
  // One origin may serve many endpoints: its pool takes as many requests as the process may
  // have in flight, so none waits inside undici (where its deadline would already run).
  const sender = createSender(settings.policy, { connectionsPerOrigin: settings.maxInFlight });
  const inFlight = new InFlightRequests(settings.maxInFlight);
  deps.metrics.setRequestsSource(() => ({ in_flight: inFlight.inFlight, waiting: inFlight.waiting }));
  // Every job waiting out an outage listens on it: as many listeners as jobs, not a leak.
  const closing = new AbortController();
  setMaxListeners(0, closing.signal);
  const deliver = createDeliverHandler({
    prisma: deps.prisma,
    pool: deps.pool,
    endpoints,
    isolation: createGatedIsolation(isolation, {
      endpointConcurrency: settings.endpointConcurrency,
      workerConcurrency: deps.concurrency.deliveries,
      attemptTimeoutMs: settings.timeoutMs,
    }),
    sender,
    inFlight,
    eventsQueue: deps.queues.events,
    deliveriesQueue: deps.queues.deliveries,
    invalidateEndpoint: deps.invalidateEndpoint,
    logger: deps.logger,
    metrics: deps.metrics,
    closing: closing.signal,
    lockDurationMs: deps.workerOptions?.lockDuration,
    settings,
  });
  const sweep = createSweeper({ pool: deps.pool, deliveriesQueue: deps.queues.deliveries, schedule: settings.schedule, logger: deps.logger });

  const handlers = {
    events: async (job) => fanOut(parseJob('events', job).events),
    deliveries: async (job, token) => {
      parseJob('deliveries', job);
      return deliver(job as Job<JobPayloads['deliveries']>, token);
    },
    housekeeping: async (job) => (job.name === 'sweep' ? sweep() : dropExpiredHistory(deps.pool, { retention: settings.retention, logger: deps.logger })),
  } satisfies Record<DeliveryQueue, Processor>;

  const concurrency: Record<DeliveryQueue, number> = { events: deps.concurrency.events, deliveries: deps.concurrency.deliveries, housekeeping: 1 };
  // The delivery workers (one per shard, and per old queue drained): each lends its own slots
  // (in-flight.ts); the first to close stops the jobs waiting out an outage, the last the sender.
  const open = new Set<Worker>();
  const workerOn = (kind: DeliveryQueue, name: string, prefix: string) => {
    const worker = registerWorker(
      new Worker(name, handlers[kind], {
        connection: deps.connection,
        prefix,
        concurrency: concurrency[kind],
        maxStalledCount: kind === QUEUE.housekeeping ? 1 : MAX_STALLED_COUNT,
        ...deps.workerOptions,
        settings: {
          // The retry schedule: the processor computed the delay (jitter, Retry-After) already.
          backoffStrategy: (attemptsMade: number, type?: string, error?: Error, job?: MinimalJob) => {
            if (type !== DELIVERY_BACKOFF) return cappedExponentialDelay(attemptsMade);
            if (error instanceof DeliveryAttemptFailed) return error.delayMs;
            // A retry after a batch's attempt goes on from the attempts made before it.
            const prior = Number((job?.data as { priorAttempts?: number } | undefined)?.priorAttempts ?? 0);
            return delayBeforeAttempt(settings.schedule, attemptsMade + prior + 1, null);
          },
        },
      }),
      deps,
    );
    if (kind === QUEUE.deliveries) {
      inFlight.lendSlotsOf(worker);
      open.add(worker);
      worker.once('closing', () => closing.abort());
      worker.once('closed', () => {
        open.delete(worker);
        if (open.size === 0) void sender.close();
      });
    }
    return worker;
  };
  const workers = queues.flatMap((kind) =>
    kind === QUEUE.deliveries
      ? deps.queues.deliveries.all().map((queue) => workerOn(kind, queue.name, queue.opts.prefix!))
      : [workerOn(kind, kind, queueKeyPrefix(deps.prefix, kind))],
  );
  if (open.size === 0) void sender.close();
  /** A worker on a queue of an older layout (findOldLayoutQueues, findOldDeliveryQueues), with the handler of its kind. */
  const drain = (queue: Queue, kind: DeliveryQueue) => workerOn(kind, queue.name, queue.opts.prefix!);
  return { workers, endpoints, drain };
}
