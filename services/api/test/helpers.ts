import { createSecretBox } from '@trackway/domain';
import { createLogger } from '@trackway/logger';
import { createProducerConnection, createQueues, whenReady } from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { TEST_REDIS_URL, type TestDatabase, createTestDatabase, deleteRedisPrefix, ignoreErrors, randomPrefix } from '@trackway/testing';
import { type ApiDeps, createApp } from '../src/app';
import { type AuthConfig, createVerifier, signAdminToken } from '../src/auth';

export const TEST_SECRETS_KEY = Buffer.alloc(32, 11);
export const ADMIN_SECRET = 'api-test-admin-secret-0123456789abcdef0123456';
export const METRICS_TOKEN = 'api-test-metrics-token-0123456789abcdef012345';

export interface ApiHarness {
  db: TestDatabase;
  prefix: string;
  app: ReturnType<typeof createApp>;
  /** What `app` was made with: for another app over the same queues and database. */
  deps: ApiDeps;
  queues: ReturnType<typeof createQueues>;
  invalidations: Array<[string, string | number | undefined]>;
  token: string;
  auth: { Authorization: string };
  redis: ReturnType<typeof createProducerConnection>;
  close(): Promise<void>;
}

export async function startApi(
  auth: AuthConfig = { secret: ADMIN_SECRET },
  db?: TestDatabase,
  options: { frontDoor?: ApiDeps['frontDoor']; redisUrl?: string; logLines?: string[]; deps?: Partial<ApiDeps>; deliveryShards?: number } = {},
): Promise<ApiHarness> {
  const database = db ?? (await createTestDatabase());
  const prefix = randomPrefix();
  const redis = createProducerConnection(options.redisUrl ?? TEST_REDIS_URL);
  redis.on('error', () => undefined);
  const queues = createQueues(redis, prefix, ignoreErrors, options.deliveryShards);
  if (!options.redisUrl) await whenReady(redis);
  const invalidations: Array<[string, string | number | undefined]> = [];
  const deps: ApiDeps = {
    prisma: database.prisma,
    pool: database.pool,
    queues,
    redis,
    box: createSecretBox(TEST_SECRETS_KEY),
    sessionKey: TEST_SECRETS_KEY,
    webhooks: { schedule: [0, 50, 100], allowHttp: true, allowedCidrs: ['127.0.0.0/8'] },
    invalidate: async (kind, id) => void invalidations.push([kind, id]),
    verifier: createVerifier(auth),
    logger: options.logLines
      ? createLogger({ service: 'test', level: 'info', destination: { write: (line: string) => void options.logLines!.push(line) } })
      : createLogger({ service: 'test', level: 'silent' }),
    metrics: createMetrics('api'),
    health: { accepting: true, checks: {} },
    frontDoor: options.frontDoor,
    metricsToken: METRICS_TOKEN,
    // An answer that strays from its route's schema is a 500 here, so every test that reaches it fails.
    checkAnswers: true,
    ...options.deps,
  };
  const app = createApp(deps);
  const token = await signAdminToken(ADMIN_SECRET);
  return {
    db: database,
    prefix,
    app,
    deps,
    queues,
    invalidations,
    token,
    auth: { Authorization: `Bearer ${token}` },
    redis,
    async close() {
      await Promise.all(Object.values(queues).map((q) => q.close()));
      redis.disconnect();
      await deleteRedisPrefix(prefix);
      if (!db) await database.drop();
    },
  };
}
