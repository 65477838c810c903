// Real Postgres (a schema of its own) and Redis (a prefix of its own) for the delivery
// service's own tests, with endpoints and events written the way the API and attribution do.
import { createSecretBox, createEvent, newId, type EventEnvelope, type EventType } from '@trackway/domain';
import { writeEvents } from '@trackway/outbox';
import { type DeliveryQueues, createDeliveryQueues, createWorkerConnection } from '@trackway/queues';
import { TEST_REDIS_URL, type TestDatabase, createTestDatabase, deleteRedisPrefix, ignoreErrors, randomPrefix } from '@trackway/testing';
import { generateSecret } from '@trackway/webhooks';
import type { Redis } from 'ioredis';
import { createEndpointDirectory } from '../src/endpoints';

export const box = createSecretBox(Buffer.alloc(32, 7));

export interface Harness {
  db: TestDatabase;
  prefix: string;
  redis: Redis;
  deliveries: DeliveryQueues;
  endpoints: ReturnType<typeof createEndpointDirectory>;
  /** An enabled endpoint subscribed to `eventTypes`. */
  endpoint(url?: string, eventTypes?: string[]): Promise<string>;
  /** Events written to the outbox (as attribution does), not published. */
  events(count: number, type?: EventType, data?: Record<string, unknown>): Promise<EventEnvelope[]>;
  close(): Promise<void>;
}

export async function startHarness(options: { shards?: number } = {}): Promise<Harness> {
  const db = await createTestDatabase();
  const prefix = randomPrefix();
  const redis = createWorkerConnection(TEST_REDIS_URL);
  const deliveries = createDeliveryQueues(redis, prefix, ignoreErrors, options.shards);
  return {
    db,
    prefix,
    redis,
    deliveries,
    endpoints: createEndpointDirectory(db.prisma, box),
    async endpoint(url = 'https://receiver.example/hook', eventTypes = ['*']) {
      const row = await db.prisma.webhookEndpoint.create({ data: { id: newId('endpoint'), url, eventTypes, secretSealed: box.seal(generateSecret()) } });
      return row.id;
    },
    async events(count, type = 'conversion.approved', data = { conversion: { id: 'cnv_test' } }) {
      const list = Array.from({ length: count }, () => createEvent(type, data));
      await db.prisma.$transaction((tx) => writeEvents(tx, list));
      return list;
    },
    async close() {
      await deliveries.close();
      redis.disconnect();
      await deleteRedisPrefix(prefix);
      await db.drop();
    },
  };
}

/** A pool that counts the named statements it runs (the real pool runs them). */
export function countingPool(pool: TestDatabase['pool']) {
  const runs: string[] = [];
  return {
    runs,
    count: (name: string) => runs.filter((n) => n === name).length,
    query: ((config: { name?: string }, ...rest: unknown[]) => {
      if (config?.name) runs.push(config.name);
      return (pool.query as (...args: unknown[]) => unknown)(config, ...rest);
    }) as TestDatabase['pool']['query'],
  };
}
