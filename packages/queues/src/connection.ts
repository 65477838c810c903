import { Cluster, Redis, type RedisOptions } from 'ioredis';

export interface ConnectionOptions extends RedisOptions {
  /**
   * REDIS_CLUSTER: `redisUrl` lists seed nodes (comma-separated redis:// URLs) of a Redis
   * Cluster. Give QUEUE_PREFIX a hash tag ({trackway}) so every key of a queue shares a slot.
   */
  cluster?: boolean;
}

const retryStrategy = (times: number) => Math.min(times * 200, 2_000);

/**
 * A single-node client, or a Cluster client when asked. The Cluster client has the same
 * command surface for what Trackway uses (BullMQ, keyed Lua scripts, pub/sub), so it is handed
 * around as the Redis type.
 */
function connect(redisUrl: string, options: ConnectionOptions): Redis {
  const { cluster, enableOfflineQueue, ...redisOptions } = options;
  if (!cluster) return new Redis(redisUrl, { ...redisOptions, enableOfflineQueue, retryStrategy });
  const seeds = redisUrl.split(',').map((entry) => new URL(entry.trim()));
  const auth = seeds[0].password ? { username: decodeURIComponent(seeds[0].username) || undefined, password: decodeURIComponent(seeds[0].password) } : {};
  return new Cluster(
    seeds.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) })),
    { enableOfflineQueue, clusterRetryStrategy: retryStrategy, redisOptions: { ...redisOptions, ...auth } },
  ) as unknown as Redis;
}

/**
 * Producer connection (HTTP handlers): no offline queue and short timeouts, so a request fails
 * at once with 503 when Redis is unreachable instead of hanging.
 */
export function createProducerConnection(redisUrl: string, extra: ConnectionOptions = {}): Redis {
  return connect(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000, commandTimeout: 2_000, ...extra });
}

/** Worker connection: BullMQ requires maxRetriesPerRequest null for blocking commands. */
export function createWorkerConnection(redisUrl: string, extra: ConnectionOptions = {}): Redis {
  return connect(redisUrl, { maxRetriesPerRequest: null, ...extra });
}

/** Every key matching a pattern, on a single node or on every master of a cluster. */
export async function scanKeys(redis: Redis, pattern: string, limit = Number.POSITIVE_INFINITY): Promise<string[]> {
  const nodes = (redis as unknown as { isCluster?: boolean }).isCluster ? (redis as unknown as Cluster).nodes('master') : [redis];
  const keys: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      keys.push(...batch);
      if (keys.length >= limit) return keys.slice(0, limit);
    } while (cursor !== '0');
  }
  return keys;
}

/**
 * Redis WAIT on the master that holds `queue`'s keys: resolves with how many replicas have
 * acknowledged every write this connection has made to that master so far, waiting at most
 * `timeoutMs` for `replicas` of them. On a cluster a pipeline goes to the master of its keys'
 * slot, so WAIT rides with a read of one of the queue's keys (a bare WAIT would go anywhere).
 */
export async function waitForReplicas(redis: Redis, queue: { toKey(type: string): string }, replicas: number, timeoutMs: number): Promise<number> {
  const results = await redis.pipeline().exists(queue.toKey('meta')).call('WAIT', replicas, timeoutMs).exec();
  const [error, acked] = results?.[1] ?? [new RedisUnavailableError('no answer to WAIT'), 0];
  if (error) throw error;
  return Number(acked);
}

export class RedisUnavailableError extends Error {
  override name = 'RedisUnavailableError';
}

const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);
const UNREACHABLE_NAMES = new Set(['RedisUnavailableError', 'MaxRetriesPerRequestError', 'ClusterAllFailedError', 'ConnectionClosedError']);
// What ioredis and BullMQ say when a command meets a connection that is down or closing.
const UNREACHABLE_MESSAGE =
  /Stream isn't writeable|Connection is closed|Command timed out|connect ETIMEDOUT|None of startup nodes is available|Failed to refresh slots cache/i;

/** Whether an error from a Redis operation means Redis cannot be reached (as opposed to a refusal or a bug). */
export function isRedisUnreachable(error: unknown): boolean {
  const err = error as { code?: unknown; name?: unknown; message?: unknown } | null;
  if (!err || typeof err !== 'object') return false;
  return (
    (typeof err.code === 'string' && SOCKET_ERRORS.has(err.code)) ||
    (typeof err.name === 'string' && UNREACHABLE_NAMES.has(err.name)) ||
    (typeof err.message === 'string' && UNREACHABLE_MESSAGE.test(err.message))
  );
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

/**
 * Resolves true once the connection is ready, or false after `timeoutMs` — or, with
 * `orFirstFailure`, as soon as a try fails; it keeps retrying either way.
 */
export function whenReady(redis: Redis, timeoutMs = 5_000, options: { orFirstFailure?: boolean } = {}): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const settle = (ready: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onFailure);
      redis.off('end', onFailure);
      resolve(ready);
    };
    const onReady = () => settle(true);
    const onFailure = () => settle(false);
    const timer = setTimeout(onFailure, timeoutMs);
    redis.once('ready', onReady);
    if (options.orFirstFailure) {
      redis.once('error', onFailure);
      redis.once('end', onFailure);
    }
  });
}

/**
 * What a server waits for before it listens: long enough not to answer 503 to the first
 * requests of a normal start, never longer than Redis takes to refuse.
 */
export const whenFirstTried = (redis: Redis, timeoutMs = 5_000) => whenReady(redis, timeoutMs, { orFirstFailure: true });
