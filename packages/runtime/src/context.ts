import { isPostgresUnreachable } from '@trackway/http';
import { type CommonConfig, type ServiceConfig, type ServiceName, loadDotEnv, loadServiceConfig } from '@trackway/config';
import { type PgPool, type PrismaClient, createDatabase, pendingMigrations } from '@trackway/db';
import { type ErrorReporter, type Logger, type OutageLog, createLogger, errorReporter, outageLog, stdoutDestination } from '@trackway/logger';
import {
  INVALIDATION_KINDS,
  type InvalidationKind,
  type InvalidationSubscription,
  createProducerConnection,
  createWorkerConnection,
  isRedisUnreachable,
  subscribeInvalidations,
  whenFirstTried,
} from '@trackway/queues';
import type { Redis } from 'ioredis';
import type { HealthState } from './health';
import { type Metrics, createMetrics } from './metrics';

export interface ServiceContext<C extends CommonConfig = CommonConfig> {
  /** The service's own variables only (packages/config: serviceEnvSchemas). */
  config: C;
  logger: Logger;
  /** Rate-limited structured lines for errors that repeat (one per kind and interval). */
  reportError: ErrorReporter;
  /**
   * For errors of Redis operations (queues, workers, enqueues): while Redis cannot be reached
   * they are folded, with every connection's, into one outage line per interval; other errors
   * go to `reportError`.
   */
  reportRedisError: ErrorReporter;
  /** PostgreSQL cannot be reached (the workers' jobs fail on it): one outage line per interval, in words. */
  postgresOutage: PostgresOutage;
  metrics: Metrics;
  prisma: PrismaClient;
  /** The pg pool under `prisma`, for the hot paths' named multi-row statements. */
  pool: PgPool;
  /** For producers in request handlers: fails fast when Redis is down. */
  producer: Redis;
  /** For workers and subscribers: waits for Redis to come back. */
  newWorkerConnection: () => Redis;
  health: HealthState;
  /** Resolves once the producer connection is ready, or has failed its first try (Redis down). */
  producerReady: Promise<boolean>;
  /**
   * Cache invalidation on a connection of its own, without waiting for Redis: `onChange` hears
   * each announced change, and every kind (id null) each time the subscription is (re)made, for
   * what was missed meanwhile. Readiness check `invalidations` fails while it is not active.
   */
  subscribeInvalidations: (onChange: (kind: InvalidationKind, id: string | null) => void) => InvalidationSubscription;
  /**
   * A start-up step that needs Redis (a job scheduler's upsert): run in the background, again
   * after each failure, until it succeeds. Readiness check `check` fails until then.
   */
  startUpStep: (check: string, step: () => Promise<unknown>) => void;
  /** Closes the connections the context opened. */
  disconnect: () => Promise<void>;
}

export interface PostgresOutage extends OutageLog {
  /** Whether an error says PostgreSQL could not be reached (not Redis, whose errors look alike). */
  concerns(error: unknown): boolean;
}

/** Whether an error says the PostgreSQL at this URL could not be reached (isPostgresUnreachable at its port, 5432 when it names none). */
export function reachingPostgres(url: string): (error: unknown) => boolean {
  let port = '5432';
  try {
    port = new URL(url).port || port;
  } catch {}
  return (error) => isPostgresUnreachable(error, port);
}

/** host:port of each URL of a list (a Redis Cluster's seeds), never its credentials. */
function hostsOf(urls: string): string {
  return urls
    .split(',')
    .map((url) => {
      try {
        return new URL(url.trim()).host;
      } catch {
        return 'an unreadable URL';
      }
    })
    .join(', ');
}

/** What every service process starts with: parsed config, logger, metrics, Postgres, Redis, health checks. */
export function createServiceContext<N extends ServiceName>(service: N, options: { poolSize?: number } = {}): ServiceContext<ServiceConfig<N>> {
  loadDotEnv();
  const config = loadServiceConfig(service, {
    onGeneratedSecret: (name) => console.warn(`${service}: ${name} is not set; using a random one for this process only`),
  });
  const logger = createLogger({ service, level: config.LOG_LEVEL, destination: stdoutDestination() });
  const { prisma, pool } = createDatabase(config.DATABASE_URL, { poolSize: options.poolSize ?? 10 });
  const connections: Redis[] = [];
  const reportError = errorReporter(logger);
  // Every connection, queue and worker fails and retries on its own while Redis is down: one
  // outage line per interval for all of them, and one when every connection is back.
  const allReady = () => connections.every((c) => c.status === 'ready');
  // Run on its own (as in production), a service keeps running and retrying while a store is
  // down; its outage lines say in words which variable names it, where, and what to do.
  const about = (variable: string, url: string, store: string) => ({
    variable,
    address: hostsOf(url),
    hint: `${service} keeps running and retrying: start ${store} at that address, or set ${variable} to one that answers`,
  });
  const redisOutage = outageLog(logger, { dependency: 'redis', isUp: allReady, about: about('REDIS_URL', config.REDIS_URL, 'Redis') });
  const postgresOutage: PostgresOutage = Object.assign(
    outageLog(logger, { dependency: 'postgres', about: about('DATABASE_URL', config.DATABASE_URL, 'PostgreSQL') }),
    { concerns: reachingPostgres(config.DATABASE_URL) },
  );
  const reportRedisError: ErrorReporter = (context, error, message) => {
    if (!redisOutage.down && !isRedisUnreachable(error)) return reportError(context, error, message);
    const names = Object.values(context);
    redisOutage.report(names.length > 0 ? `${message} (${names.join(', ')})` : message, error);
  };
  let lastRedisError: string | undefined;
  const track = (redis: Redis, role: string) => {
    redis.on('error', (error) => {
      if (role === 'producer') lastRedisError = error.message;
      redisOutage.report(`${role} connection`, error);
    });
    redis.on('ready', () => allReady() && redisOutage.recovered());
    connections.push(redis);
    return redis;
  };
  const producer = track(createProducerConnection(config.REDIS_URL, { cluster: config.REDIS_CLUSTER }), 'producer');
  const newConnection = (role: string) => track(createWorkerConnection(config.REDIS_URL, { cluster: config.REDIS_CLUSTER }), role);
  // Services listen even when Redis is down (readyz says so): HTTP services wait only for the
  // producer's first try, so a normal start does not answer its first requests 503.
  const producerReady = whenFirstTried(producer, 5_000);
  // Queue depths are read from Redis at scrape time: left out while it cannot answer.
  const metrics = createMetrics(service, { redisReady: () => producer.status === 'ready' });
  const health: HealthState = {
    accepting: true,
    checks: {
      redis: async () => {
        if (producer.status !== 'ready') throw new Error(lastRedisError ? `unreachable (${lastRedisError})` : `not connected yet (${producer.status})`);
        await producer.ping();
      },
      postgres: () => prisma.$queryRaw`SELECT 1`,
      migrations: async () => {
        const pending = await pendingMigrations((sql) => prisma.$queryRawUnsafe(sql));
        if (pending.length > 0) throw new Error(`pending migrations: ${pending.join(', ')}`);
      },
    },
  };
  const later = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());
  return {
    config,
    logger,
    reportError,
    reportRedisError,
    postgresOutage,
    metrics,
    prisma,
    pool,
    producer,
    producerReady,
    newWorkerConnection: () => newConnection('worker'),
    health,
    subscribeInvalidations: (onChange) => {
      const subscription = subscribeInvalidations(newConnection('subscriber'), config.QUEUE_PREFIX, onChange, {
        onSubscribed: () => {
          for (const kind of INVALIDATION_KINDS) onChange(kind, null);
        },
        onError: (error) => reportRedisError({}, error, 'invalidation subscription failed'),
      });
      health.checks.invalidations = async () => {
        if (!subscription.active()) throw new Error('not subscribed (caches expire by their TTL meanwhile)');
      };
      return subscription;
    },
    startUpStep: (check, step) => {
      let state = 'waiting for redis';
      health.checks[check] = async () => {
        if (state !== 'ok') throw new Error(state);
      };
      void (async () => {
        for (let failures = 0; health.accepting; failures++) {
          try {
            await step();
            state = 'ok';
            return;
          } catch (error) {
            state = `not done yet: ${(error as Error).message}`;
            reportRedisError({ check }, error, 'start-up step failed; retrying');
            await later(Math.min(1_000 * 2 ** failures, 10_000));
          }
        }
      })();
    },
    disconnect: async () => {
      // A connection that never came up has nothing to finish: quit would wait for it.
      await Promise.allSettled(connections.map(async (c) => (c.status === 'ready' ? c.quit() : c.disconnect())));
      await prisma.$disconnect();
    },
  };
}
