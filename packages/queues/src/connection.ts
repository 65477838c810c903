import { Redis, type RedisOptions } from 'ioredis';

/**
 * Producer connection (HTTP handlers): no offline queue and short timeouts, so a request fails
 * at once with 503 when Redis is unreachable instead of hanging.
 */
export function createProducerConnection(redisUrl: string, extra: RedisOptions = {}): Redis {
  return new Redis(redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    ...extra,
  });
}

/** Worker connection: BullMQ requires maxRetriesPerRequest null for blocking commands. */
export function createWorkerConnection(redisUrl: string, extra: RedisOptions = {}): Redis {
  return new Redis(redisUrl, {
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    ...extra,
  });
}

export class RedisUnavailableError extends Error {
  override name = 'RedisUnavailableError';
}

/**
 * Runs a producer command only when the connection is up, and never longer than `timeoutMs`.
 * BullMQ waits for the first 'ready' before running anything, so without this guard a request
 * made while Redis has been down since start-up would hang instead of failing fast.
 */
export async function failFast<T>(redis: Redis, run: () => Promise<T>, timeoutMs = 2_000): Promise<T> {
  if (redis.status !== 'ready') throw new RedisUnavailableError(`redis is ${redis.status}`);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      run(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RedisUnavailableError(`no answer from redis in ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves true once the connection is ready, or false after `timeoutMs` (it keeps retrying). */
export function whenReady(redis: Redis, timeoutMs = 5_000): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      redis.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    redis.once('ready', onReady);
  });
}
