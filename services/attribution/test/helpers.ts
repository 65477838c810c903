import { createLogger } from '@trackway/logger';
import { createClickIdCodec } from '@trackway/clickid';
import { createQueue, createWorkerConnection } from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { TEST_REDIS_URL, type TestDatabase, createTestDatabase, deleteRedisPrefix, ignoreErrors, randomPrefix } from '@trackway/testing';
import { newId } from '@trackway/domain';
import type { PostbackJob } from '@trackway/queues';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { type AttributeDeps, attributeBatch } from '../src/postbacks/attribute';
import { type AttributionDeps, createWorkers } from '../src/workers';

export const CLICK_SECRET = 'attribution-test-secret-0123456789abcdef0123';

export interface AttributionHarness {
  db: TestDatabase;
  prefix: string;
  clickIds: ReturnType<typeof createClickIdCodec>;
  redis: Redis;
  queues: {
    postbacks: ReturnType<typeof createQueue<'postbacks'>>;
    clicks: ReturnType<typeof createQueue<'clicks'>>;
    events: ReturnType<typeof createQueue<'events'>>;
  };
  deps: AttributionDeps;
  /** What attributeBatch / processPostback need, on this harness's database. */
  attribution: AttributeDeps;
  startWorkers(count?: number): Worker[];
  stopWorkers(): Promise<void>;
  close(): Promise<void>;
}

export async function startAttribution(): Promise<AttributionHarness> {
  const db = await createTestDatabase();
  const prefix = randomPrefix();
  const redis = createWorkerConnection(TEST_REDIS_URL);
  const queues = {
    postbacks: createQueue('postbacks', redis, prefix, ignoreErrors),
    clicks: createQueue('clicks', redis, prefix, ignoreErrors),
    events: createQueue('events', redis, prefix, ignoreErrors),
  };
  const clickIds = createClickIdCodec(CLICK_SECRET);
  const workers: Worker[] = [];
  const connections: Redis[] = [];
  const deps: AttributionDeps = {
    prisma: db.prisma,
    pool: db.pool,
    clickIds,
    eventsQueue: queues.events,
    clicksQueue: queues.clicks,
    connection: redis,
    prefix,
    logger: createLogger({ service: 'test', level: 'silent' }),
    metrics: createMetrics('attribution'),
    concurrency: { postbacks: 16, clicks: 100 },
    relayGraceMs: 0,
  };
  return {
    db,
    prefix,
    clickIds,
    redis,
    queues,
    deps,
    attribution: {
      pool: db.pool,
      clickIds,
      offers: (id) => db.prisma.offer.findUnique({ where: { id } }),
      affiliates: (id) => db.prisma.affiliate.findUnique({ where: { id }, select: { status: true } }),
    },
    startWorkers(count = 1) {
      const started: Worker[] = [];
      for (let i = 0; i < count; i++) {
        // Each worker its own connection, as separate processes would have.
        const connection = createWorkerConnection(TEST_REDIS_URL);
        connections.push(connection);
        started.push(...createWorkers({ ...deps, connection }, ['postbacks', 'clicks']));
      }
      workers.push(...started);
      return started;
    },
    async stopWorkers() {
      await Promise.all(workers.splice(0).map((w) => w.close()));
    },
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all(Object.values(queues).map((q) => q.close()));
      for (const c of [...connections, redis]) c.disconnect();
      await deleteRedisPrefix(prefix);
      await db.drop();
    },
  };
}

export function postbackJob(overrides: Partial<PostbackJob> & Pick<PostbackJob, 'advertiserId' | 'clickId'>): PostbackJob {
  return {
    postbackId: newId('postback'),
    receivedAt: new Date().toISOString(),
    orderId: `ORD-${Math.random().toString(36).slice(2)}`,
    event: 'conversion',
    amount: '100.00',
    status: 'approved',
    ...overrides,
  };
}

/** The same postback sent again by the advertiser: a new postback id, optionally other fields. */
export function again(job: PostbackJob, changes: Partial<PostbackJob> = {}): PostbackJob {
  return { ...job, ...changes, postbackId: newId('postback') };
}

/** One postback, as a batch of one (the worker always attributes batches). */
export async function processPostback(deps: AttributeDeps, job: PostbackJob) {
  const [result] = await attributeBatch(deps, [job]);
  return result;
}
