import { createLogger } from '@trackway/logger';
import { createClickIdCodec } from '@trackway/clickid';
import { createProducerConnection, createQueue, whenReady } from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { TEST_REDIS_URL, type TestDatabase, createTestDatabase, deleteRedisPrefix, ignoreErrors, randomPrefix } from '@trackway/testing';
import { createSecretBox } from '@trackway/domain';
import { type IngestDeps, createApp } from '../src/app';
import { createLookups } from '../src/lookups';

export const CLICK_SECRET = 'test-click-secret-0123456789abcdef0123456789';
export const SECRETS_KEY = Buffer.alloc(32, 7);
export const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef0123456789';

export interface IngestHarness {
  db: TestDatabase;
  prefix: string;
  app: ReturnType<typeof createApp>;
  /** What `app` was made with: for another app over the same queues and database. */
  deps: IngestDeps;
  queues: { postbacks: ReturnType<typeof createQueue<'postbacks'>>; clicks: ReturnType<typeof createQueue<'clicks'>> };
  clickIds: ReturnType<typeof createClickIdCodec>;
  health: { accepting: boolean; checks: Record<string, () => Promise<unknown>> };
  /** Error-level log lines the app wrote (it logs nothing below that here). */
  errors: string[];
  close(): Promise<void>;
}

export async function startIngest(options: { redisUrl?: string; frontDoor?: IngestDeps['frontDoor'] } = {}): Promise<IngestHarness> {
  const db = await createTestDatabase();
  const prefix = randomPrefix();
  const redis = createProducerConnection(options.redisUrl ?? TEST_REDIS_URL);
  redis.on('error', () => undefined);
  if (!options.redisUrl) await whenReady(redis);
  const queues = { postbacks: createQueue('postbacks', redis, prefix, ignoreErrors), clicks: createQueue('clicks', redis, prefix, ignoreErrors) };
  queues.postbacks.on('error', () => undefined);
  queues.clicks.on('error', () => undefined);
  const clickIds = createClickIdCodec(CLICK_SECRET);
  const health = { accepting: true, checks: {} };
  const errors: string[] = [];
  const deps: IngestDeps = {
    queues,
    redis,
    lookups: createLookups(db.prisma, createSecretBox(SECRETS_KEY)),
    clickIds,
    logger: createLogger({ service: 'test', level: 'error', destination: { write: (line: string) => void errors.push(line) } }),
    metrics: createMetrics('ingest'),
    health,
    frontDoor: options.frontDoor,
    metricsToken: METRICS_TOKEN,
  };
  const app = createApp(deps);
  return {
    db,
    prefix,
    app,
    deps,
    queues,
    clickIds,
    health,
    errors,
    async close() {
      await Promise.all([queues.postbacks.close(), queues.clicks.close()]);
      redis.disconnect();
      await deleteRedisPrefix(prefix);
      await db.drop();
    },
  };
}
