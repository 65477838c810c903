import { randomBytes } from 'node:crypto';
import { type PrismaClient, createDatabase, migrate } from '@trackway/db';
import { Redis } from 'ioredis';
import pg from 'pg';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/trackway_test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export const randomSuffix = () => randomBytes(5).toString('hex');
/** A BullMQ prefix of its own per test file, so files run in parallel without touching each other. */
export const randomPrefix = () => `test-${randomSuffix()}`;

export interface TestDatabase {
  schema: string;
  /** A DATABASE_URL selecting this schema, for child processes. */
  url: string;
  prisma: PrismaClient;
  /** The pg pool under `prisma` (the hot paths' statements run on it). */
  pool: pg.Pool;
  drop(): Promise<void>;
}

/** A Postgres schema of its own per test file, migrated with the project's migrations. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const schema = `t_${randomSuffix()}`;
  await migrate(TEST_DATABASE_URL, { schema });
  const url = new URL(TEST_DATABASE_URL);
  url.searchParams.set('schema', schema);
  const { prisma, pool } = createDatabase(url.toString(), { poolSize: 40 });
  return {
    schema,
    url: url.toString(),
    prisma,
    pool,
    async drop() {
      await prisma.$disconnect();
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

/** Deletes a test's keys: those under the prefix, and its queues' (`{<prefix>:<queue>}:…`, see @trackway/queues layout). */
export async function deleteRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    for (const pattern of [`${prefix}:*`, `{${prefix.replace(/[{}]/g, '')}:*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}

/** Polls until `probe` returns a truthy value (returned) or the timeout passes (throws). */
export async function waitFor<T>(probe: () => Promise<T> | T, { timeoutMs = 10_000, intervalMs = 25, what = 'condition' } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export * from './fixtures';
export * from './receiver';
export * from './sockets';
export * from './headers';

/** For queues in tests: errors (e.g. from a Redis a test stops on purpose) are expected there. */
export const ignoreErrors = () => undefined;
export * from './browser';
export * from './own-redis';
