import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * Per-endpoint isolation state, in Redis so every delivery worker shares it:
 * a circuit breaker, a concurrency cap and the optional rate limit. A job that may not run
 * now is parked as delayed by the caller (no attempt spent), never busy-retried.
 */
export type BreakerState = 'closed' | 'open' | 'half_open';
export type Admission = { ok: true; probe: boolean } | { ok: false; retryAt: number; reason: 'breaker_open' | 'probe_in_flight' | 'concurrency' | 'rate_limit' };

const ADMIT = `
local openUntil = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if openUntil == 0 then return {1, 0} end
local now = tonumber(ARGV[1])
if now < openUntil then return {0, openUntil} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return {2, 0} end
return {3, now + tonumber(ARGV[3])}
`;

const FAIL = `
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local openUntil = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if openUntil > 0 or failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'open_until', tonumber(ARGV[2]) + tonumber(ARGV[3]))
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
`;

const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
`;

export interface IsolationOptions {
  prefix: string;
  breakerThreshold: number;
  breakerCooldownMs: number;
  /** Concurrent attempts per endpoint across all workers. */
  endpointConcurrency: number;
  /** An attempt's deadline: bounds how long a slot or probe is held if a worker dies. */
  attemptTimeoutMs: number;
}

export function createIsolation(redis: Redis, options: IsolationOptions) {
  const key = (kind: string, endpointId: string) => `${options.prefix}:${kind}:${endpointId}`;
  const holdMs = options.attemptTimeoutMs + 5_000;
  const limiters = new Map<number, RateLimiterRedis>();
  const limiter = (perSecond: number) => {
    let found = limiters.get(perSecond);
    if (!found) {
      found = new RateLimiterRedis({ storeClient: redis, keyPrefix: `${options.prefix}:ratelimit:${perSecond}`, points: perSecond, duration: 1 });
      limiters.set(perSecond, found);
    }
    return found;
  };
  // Short, jittered parking for a busy endpoint, so parked jobs do not come back in lockstep.
  const park = (base: number) => Date.now() + Math.round(base * (0.5 + Math.random()));

  return {
    async admit(endpointId: string, rateLimitPerSecond: number | null, token: string): Promise<Admission> {
      const now = Date.now();
      const [verdict, until] = (await redis.eval(ADMIT, 2, key('breaker', endpointId), key('probe', endpointId), now, holdMs, Math.min(options.breakerCooldownMs, holdMs))) as [number, number];
      // 0: open until `until`; 3: half-open with the probe in flight; 1 closed; 2 this is the probe.
      if (verdict === 0 || verdict === 3) {
        return { ok: false, retryAt: until + Math.round(Math.random() * 250), reason: verdict === 0 ? 'breaker_open' : 'probe_in_flight' };
      }
      const probe = verdict === 2;
      const slot = await redis.eval(ACQUIRE, 1, key('slots', endpointId), now, now + holdMs, token, probe ? Number.MAX_SAFE_INTEGER : options.endpointConcurrency, holdMs * 2);
      if (slot !== 1) return { ok: false, retryAt: park(Math.min(options.attemptTimeoutMs, 1_000)), reason: 'concurrency' };
      if (rateLimitPerSecond) {
        try {
          await limiter(rateLimitPerSecond).consume(endpointId);
        } catch (rejection) {
          await this.release(endpointId, token);
          if (rejection instanceof RateLimiterRes) return { ok: false, retryAt: Date.now() + rejection.msBeforeNext + Math.round(Math.random() * 50), reason: 'rate_limit' };
          throw rejection;
        }
      }
      return { ok: true, probe };
    },

    async release(endpointId: string, token: string): Promise<void> {
      await redis.zrem(key('slots', endpointId), token);
    },

    /** A success closes the breaker. */
    async succeeded(endpointId: string): Promise<void> {
      await redis.del(key('breaker', endpointId), key('probe', endpointId));
    },

    /** A failure counts toward the threshold; a failed probe reopens the breaker. True when it (re)opened. */
    async failed(endpointId: string): Promise<boolean> {
      const opened = await redis.eval(FAIL, 2, key('breaker', endpointId), key('probe', endpointId), options.breakerThreshold, Date.now(), options.breakerCooldownMs, options.breakerCooldownMs * 10 + 86_400_000);
      return opened === 1;
    },

    async state(endpointId: string): Promise<BreakerState> {
      const openUntil = Number((await redis.hget(key('breaker', endpointId), 'open_until')) ?? 0);
      if (openUntil === 0) return 'closed';
      return Date.now() < openUntil ? 'open' : 'half_open';
    },

    async reset(endpointId: string): Promise<void> {
      await redis.del(key('breaker', endpointId), key('probe', endpointId), key('slots', endpointId));
    },
  };
}

export type Isolation = ReturnType<typeof createIsolation>;
