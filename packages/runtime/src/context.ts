import { type CommonConfig, type ServiceConfig, type ServiceName, loadDotEnv, loadServiceConfig } from '@trackway/config';
import { type PgPool, type PrismaClient, createDatabase, pendingMigrations } from '@trackway/db';
import { type ErrorReporter, type Logger, createLogger, errorReporter, stdoutDestination } from '@trackway/logger';
import { createProducerConnection, createWorkerConnection, whenReady } from '@trackway/queues';
import type { Redis } from 'ioredis';
import type { HealthState } from './health';
import { type Metrics, createMetrics } from './metrics';

export interface ServiceContext<C extends CommonConfig = CommonConfig> {
  /** The service's own variables only (packages/config: serviceEnvSchemas). */
  config: C;
  logger: Logger;
  /** Rate-limited structured lines for errors that repeat during an outage (queues, workers, connections). */
  reportError: ErrorReporter;
  metrics: Metrics;
  prisma: PrismaClient;
  /** The pg pool under `prisma`, for the hot paths' named multi-row statements. */
  pool: PgPool;
  /** For producers in request handlers: fails fast when Redis is down. */
  producer: Redis;
  /** For workers and subscribers: waits for Redis to come back. */
  newWorkerConnection: () => Redis;
  health: HealthState;
  /** Resolves once the producer connection is ready (or after 5 s, when Redis is down). */
  producerReady: Promise<boolean>;
  /** Closes the connections the context opened. */
  disconnect: () => Promise<void>;
}

/** What every service process starts with: parsed config, logger, metrics, Postgres, Redis, health checks. */
export function createServiceContext<N extends ServiceName>(service: N, options: { poolSize?: number } = {}): ServiceContext<ServiceConfig<N>> {
  loadDotEnv();
  const config = loadServiceConfig(service, {
    onGeneratedSecret: (name) => console.warn(`${service}: ${name} is not set; using a random one for this process only`),
  });
  const logger = createLogger({ service, level: config.LOG_LEVEL, destination: stdoutDestination() });
  const metrics = createMetrics(service);
  const { prisma, pool } = createDatabase(config.DATABASE_URL, { poolSize: options.poolSize ?? 10 });
  const connections: Redis[] = [];
  const reportError = errorReporter(logger);
  const track = (redis: Redis, role: string) => {
    redis.on('error', (error) => reportError({ role }, error, 'redis connection error'));
    connections.push(redis);
    return redis;
  };
  const producer = track(createProducerConnection(config.REDIS_URL, { cluster: config.REDIS_CLUSTER }), 'producer');
  // Services start even when Redis is down (readyz says so); this only avoids failing the
  // first requests of a normal start while the connection is still being made.
  const producerReady = whenReady(producer, 5_000);
  const health: HealthState = {
    accepting: true,
    checks: {
      redis: () => producer.ping(),
      postgres: () => prisma.$queryRaw`SELECT 1`,
      migrations: async () => {
        const pending = await pendingMigrations((sql) => prisma.$queryRawUnsafe(sql));
        if (pending.length > 0) throw new Error(`pending migrations: ${pending.join(', ')}`);
      },
    },
  };
  return {
    config,
    logger,
    reportError,
    metrics,
    prisma,
    pool,
    producer,
    producerReady,
    newWorkerConnection: () => track(createWorkerConnection(config.REDIS_URL, { cluster: config.REDIS_CLUSTER }), 'worker'),
    health,
    disconnect: async () => {
      await Promise.allSettled(connections.map((c) => c.quit()));
      await prisma.$disconnect();
    },
  };
}
