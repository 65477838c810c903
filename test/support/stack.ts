// The whole system in one test process: API, ingest, attribution and delivery workers sharing
// one Postgres schema and one random BullMQ prefix, with real Redis pub/sub invalidation.
import { createClickIdCodec } from '@trackway/clickid';
import { defaultMaxInFlight } from '@trackway/config';
import { createSecretBox } from '@trackway/domain';
import { createLogger } from '@trackway/logger';
import {
  type DeliveryQueues,
  createOldLayoutQueue,
  createProducerConnection,
  createQueues,
  createWorkerConnection,
  publishInvalidation,
  subscribeInvalidations,
  whenReady,
} from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { TEST_REDIS_URL, type TestDatabase, createTestDatabase, deleteRedisPrefix, ignoreErrors, randomPrefix } from '@trackway/testing';
import type { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { createApp as createApi } from '../../services/api/src/app';
import { createVerifier, signAdminToken } from '../../services/api/src/auth';
import { createWorkers as createAttributionWorkers } from '../../services/attribution/src/workers';
import { type DeliveryQueue, type DeliverySettings, createDeliveryWorkers } from '../../services/delivery/src/workers';
import { createApp as createIngest } from '../../services/ingest/src/app';
import { createLookups } from '../../services/ingest/src/lookups';

export const STACK_SECRET = 'stack-test-secret-0123456789abcdef0123456789';
export const SECRETS_KEY = Buffer.alloc(32, 9);

export const FAST_DELIVERY: DeliverySettings = {
  timeoutMs: 1_000,
  schedule: [0, 50, 100],
  retryAfterMaxMs: 3_600_000,
  breakerThreshold: 5,
  breakerCooldownMs: 1_000,
  disableAfterMs: 5 * 86_400_000,
  retention: { clickDays: 366, postbackDays: 90, deliveryLogDays: 30 },
  endpointConcurrency: 4,
  maxInFlight: defaultMaxInFlight(),
  policy: { allowedCidrs: ['127.0.0.0/8'] },
};

export interface Stack {
  db: TestDatabase;
  prefix: string;
  queues: ReturnType<typeof createQueues>;
  producer: Redis;
  api: ReturnType<typeof createApi>;
  ingest: ReturnType<typeof createIngest>;
  clickIds: ReturnType<typeof createClickIdCodec>;
  auth: { Authorization: string };
  metrics: ReturnType<typeof createMetrics>;
  /**
   * Starts delivery workers (events, deliveries) with these settings; returns them. `database`
   * gives them a connection of their own (e.g. through a proxy a test cuts), `isolationRedis` a
   * Redis of their own for the breaker, slots and rate limits.
   */
  startDelivery(
    settings?: Partial<DeliverySettings>,
    options?: {
      concurrency?: number;
      database?: Pick<TestDatabase, 'prisma' | 'pool'>;
      queues?: DeliveryQueue[];
      isolationRedis?: Redis;
      /** BullMQ lockDuration / stalledInterval (tests shorten them). */
      workerOptions?: { lockDuration?: number; stalledInterval?: number };
      /** Where the workers queue deliveries (a test's proxy over the stack's); they consume the stack's shards either way. */
      deliveriesQueue?: DeliveryQueues;
    },
  ): Promise<Worker[] & { drain: (queue: Queue, kind: DeliveryQueue) => Worker }>;
  /** Starts attribution workers (postbacks and clicks, or those named). */
  startAttribution(queues?: ('postbacks' | 'clicks')[]): Worker[] & { drainOld: (queue: Queue, kind: 'postbacks' | 'clicks' | 'outbox') => Worker };
  stopWorkers(workers?: Worker[]): Promise<void>;
  /** Subscribes a webhook endpoint through the admin API (201 expected): its answer, secret included. */
  subscribe(url: string, eventTypes?: string[], fields?: Record<string, unknown>): Promise<{ id: string; secret: string; [field: string]: unknown }>;
  close(): Promise<void>;
}

/**
 * `redis`: another Redis than the test one (a cluster's seed nodes with `cluster`); `prefix`,
 * `deliveryShards` (DELIVERY_QUEUE_SHARDS) and `replicas` (ingest's REDIS_WAIT_REPLICAS) as set.
 */
export async function startStack(
  options: { redis?: { url: string; cluster: boolean }; prefix?: string; deliveryShards?: number; replicas?: number } = {},
): Promise<Stack> {
  const db = await createTestDatabase();
  const prefix = options.prefix ?? randomPrefix();
  const logger = createLogger({ service: 'test', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const redis = options.redis ?? { url: TEST_REDIS_URL, cluster: false };
  const producer = createProducerConnection(redis.url, { cluster: redis.cluster });
  producer.on('error', () => undefined);
  await whenReady(producer, 10_000);
  const connections: Redis[] = [producer];
  const connect = () => {
    const c = createWorkerConnection(redis.url, { cluster: redis.cluster });
    c.on('error', () => undefined);
    connections.push(c);
    return c;
  };
  const queues = createQueues(producer, prefix, ignoreErrors, options.deliveryShards);
  const box = createSecretBox(SECRETS_KEY);
  const clickIds = createClickIdCodec(STACK_SECRET);
  const health = { accepting: true, checks: {} };
  const metrics = createMetrics('test');
  const olderPostbacks = createOldLayoutQueue('postbacks', producer, prefix, ignoreErrors);
  const api = createApi({
    prisma: db.prisma,
    pool: db.pool,
    queues,
    olderPostbacks,
    redis: producer,
    box,
    sessionKey: SECRETS_KEY,
    webhooks: { schedule: FAST_DELIVERY.schedule, allowHttp: true, allowedCidrs: ['127.0.0.0/8'] },
    invalidate: (kind, id) => publishInvalidation(producer, prefix, kind, id),
    verifier: createVerifier({ secret: STACK_SECRET }),
    logger,
    metrics,
    health,
  });
  const lookups = createLookups(db.prisma, box);
  // As ingest's main: announced changes clear its caches.
  await subscribeInvalidations(connect(), prefix, (kind) => {
    if (kind === 'advertiser') lookups.advertiserByKeyHash.clear();
    if (kind === 'offer') lookups.offer.clear();
    if (kind === 'affiliate') lookups.affiliate.clear();
  }).ready;
  const ingest = createIngest({ queues, redis: producer, lookups, clickIds, logger, metrics, health, replicas: options.replicas });
  const auth = { Authorization: `Bearer ${await signAdminToken(STACK_SECRET)}` };
  const workers: Worker[] = [];

  const stack: Stack = {
    db,
    prefix,
    queues,
    producer,
    api,
    ingest,
    clickIds,
    auth,
    metrics,
    async startDelivery(settings = {}, options = {}) {
      const merged = { ...FAST_DELIVERY, ...settings };
      const database = options.database ?? db;
      const {
        workers: started,
        endpoints,
        drain,
      } = createDeliveryWorkers(
        {
          prisma: database.prisma,
          pool: database.pool,
          box,
          connection: connect(),
          // As in production: a fail-fast connection, shared with the producers.
          redis: options.isolationRedis ?? producer,
          queues: options.deliveriesQueue ? { ...queues, deliveries: options.deliveriesQueue } : queues,
          prefix,
          invalidateEndpoint: (id) => publishInvalidation(producer, prefix, 'endpoint', id),
          logger,
          metrics,
          concurrency: { events: 10, deliveries: options.concurrency ?? 20 },
          workerOptions: options.workerOptions,
          settings: merged,
        },
        options.queues ?? ['events', 'deliveries'],
      );
      await subscribeInvalidations(connect(), prefix, (kind) => {
        if (kind === 'endpoint') endpoints.clear();
        if (kind === 'offer') endpoints.clearOffers();
      }).ready;
      workers.push(...started);
      await Promise.all(started.map((w) => w.waitUntilReady()));
      return Object.assign(started, {
        drain: (queue: Queue, kind: DeliveryQueue) => {
          const worker = drain(queue, kind);
          workers.push(worker);
          return worker;
        },
      });
    },
    startAttribution(names = ['postbacks', 'clicks']) {
      const started = createAttributionWorkers(
        {
          prisma: db.prisma,
          pool: db.pool,
          clickIds,
          eventsQueue: queues.events,
          clicksQueue: queues.clicks,
          connection: connect(),
          prefix,
          logger,
          metrics,
          concurrency: { postbacks: 8, clicks: 50 },
          relayGraceMs: 0,
        },
        names,
      );
      // As attribution's main: announced changes (an offer or affiliate made inactive) clear its caches.
      subscribeInvalidations(connect(), prefix, (kind) => started.invalidate(kind));
      workers.push(...started);
      const { drainOld } = started;
      return Object.assign(started, {
        drainOld: (queue: Queue, kind: 'postbacks' | 'clicks' | 'outbox') => {
          const worker = drainOld(queue, kind);
          workers.push(worker);
          return worker;
        },
      });
    },
    async stopWorkers(list = workers) {
      await Promise.all(list.map((w) => w.close()));
      for (const w of list) workers.splice(workers.indexOf(w), 1);
    },
    async subscribe(url, eventTypes = ['*'], fields = {}) {
      return (
        await request(api)
          .post('/v1/webhook-endpoints')
          .set(stack.auth)
          .send({ url, event_types: eventTypes, ...fields })
          .expect(201)
      ).body;
    },
    async close() {
      await stack.stopWorkers([...workers]);
      await Promise.all([...Object.values(queues), olderPostbacks].map((q) => q.close()));
      for (const c of connections) c.disconnect();
      if (!options.redis) await deleteRedisPrefix(prefix);
      await db.drop();
    },
  };
  return stack;
}
