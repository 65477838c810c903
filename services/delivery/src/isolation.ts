import { deliveryShardNames, endpointKeyPrefix, queueKeyPrefix, scanKeys } from '@trackway/queues';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { parkUntil } from './schedule';

/**
 * Per-endpoint isolation state, in Redis so every delivery worker shares it: a circuit
 * breaker, a concurrency cap and the optional rate limit. One round trip answers whether an
 * attempt may start now; the in-process gate (gate.ts) in front of it waits for a turn, and a
 * job that may not run soon is parked as delayed by the caller (no attempt spent).
 */
export type BreakerState = 'closed' | 'open' | 'half_open';
export type Admission =
  | { ok: true; probe: boolean }
  | {
      ok: false;
      retryAt: number;
      reason: 'breaker_open' | 'probe_in_flight' | 'concurrency' | 'rate_limit';
      /** With `concurrency` from Redis: how long the endpoint's oldest attempt, in any process, has been out. */
      oldestInFlightMs?: number;
    };

// One round trip to admit: breaker (closed / open / half-open with one probe), then a slot.
// KEYS: breaker hash, probe key, slots zset. ARGV: now, hold ms, token, concurrency cap.
// Returns {verdict, until}: 1 admitted, 2 admitted as the half-open probe, 0 open until
// `until`, 3 probe in flight (retry at `until`), 4 no free slot (`until`: when the oldest
// slot's hold ends, so that it was taken at until − hold).
const ADMIT = `
local now = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local probe = 0
local openUntil = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if openUntil > 0 then
  if now < openUntil then return {0, openUntil} end
  if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', hold) then return {3, now + hold} end
  probe = 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if probe == 0 and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then
  return {4, tonumber(redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2])}
end
redis.call('ZADD', KEYS[3], now + hold, ARGV[3])
redis.call('PEXPIRE', KEYS[3], hold * 2)
return {1 + probe, 0}
`;

// One round trip to finish: release the slot, then record the outcome on the breaker.
// KEYS: breaker hash, probe key, slots zset. ARGV: token, succeeded (1/0), threshold, now,
// cooldown ms, ttl ms, succeeded before (1/0: a turn of several requests whose last failed after
// successes: the failures counted so far are reset first, as those successes would have; an
// open breaker stays open). Returns the state after: 0 closed, 1 open (counting failures below
// the threshold counts as closed).
const FINISH = `
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] ~= '1' and ARGV[7] == '1' and tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') == 0 then
  redis.call('HDEL', KEYS[1], 'failures')
end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local openUntil = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if openUntil > 0 or failures >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'open_until', tonumber(ARGV[4]) + tonumber(ARGV[5]))
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
`;

export interface IsolationOptions {
  /** QUEUE_PREFIX: an endpoint's keys take the hash tag of its delivery shard (layout.ts), so its scripts' keys share a slot. */
  prefix: string;
  /** DELIVERY_QUEUE_SHARDS (default 1). */
  shards?: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  /** Concurrent attempts per endpoint across all workers. */
  endpointConcurrency: number;
  /** An attempt's deadline: bounds how long a slot or probe is held if a worker dies. */
  attemptTimeoutMs: number;
}

// The scripts run by SHA (EVALSHA, loaded once per connection; ioredis falls back to EVAL on
// NOSCRIPT, e.g. after a Redis restart), not sent whole on every admission.
interface Scripted {
  trackwayAdmit(...args: (string | number)[]): Promise<[number, number]>;
  trackwayFinish(...args: (string | number)[]): Promise<number>;
}

export function createIsolation(redis: Redis, options: IsolationOptions) {
  const shards = options.shards ?? 1;
  const key = (kind: string, endpointId: string) => `${endpointKeyPrefix(options.prefix, shards, endpointId)}:${kind}:${endpointId}`;
  redis.defineCommand('trackwayAdmit', { numberOfKeys: 3, lua: ADMIT });
  redis.defineCommand('trackwayFinish', { numberOfKeys: 3, lua: FINISH });
  const scripts = redis as unknown as Scripted;
  const holdMs = options.attemptTimeoutMs + 5_000;
  const limiters = new Map<string, RateLimiterRedis>();
  const limiter = (endpointId: string, perSecond: number) => {
    // rate-limiter-flexible keys `<keyPrefix>:<endpoint id>`: beside the endpoint's other keys.
    const keyPrefix = `${endpointKeyPrefix(options.prefix, shards, endpointId)}:ratelimit:${perSecond}`;
    let found = limiters.get(keyPrefix);
    if (!found) {
      found = new RateLimiterRedis({ storeClient: redis, keyPrefix, points: perSecond, duration: 1 });
      limiters.set(keyPrefix, found);
    }
    return found;
  };
  return {
    async admit(endpointId: string, rateLimitPerSecond: number | null, token: string, typicalAttemptMs?: number, timesParked = 0): Promise<Admission> {
      const keys = [key('breaker', endpointId), key('probe', endpointId), key('slots', endpointId)];
      const now = Date.now();
      const [verdict, until] = await scripts.trackwayAdmit(...keys, now, holdMs, token, options.endpointConcurrency);
      if (verdict === 0) return { ok: false, retryAt: until + Math.round(Math.random() * 250), reason: 'breaker_open' };
      if (verdict === 3) return { ok: false, retryAt: until + Math.round(Math.random() * 250), reason: 'probe_in_flight' };
      if (verdict === 4) {
        const oldestInFlightMs = Math.max(0, now - (until - holdMs));
        return { ok: false, retryAt: parkUntil(typicalAttemptMs, timesParked, options.attemptTimeoutMs), reason: 'concurrency', oldestInFlightMs };
      }
      if (rateLimitPerSecond) {
        try {
          await limiter(endpointId, rateLimitPerSecond).consume(endpointId);
        } catch (rejection) {
          await redis.zrem(keys[2], token);
          if (rejection instanceof RateLimiterRes)
            return { ok: false, retryAt: Date.now() + rejection.msBeforeNext + Math.round(Math.random() * 50), reason: 'rate_limit' };
          throw rejection;
        }
      }
      return { ok: true, probe: verdict === 2 };
    },

    /**
     * Releases the slot and records the attempt's outcome: a success closes the breaker; a
     * failure counts toward the threshold, and a failed probe reopens it. A turn of several
     * requests (a batch's) reports its last outcome, and whether successes came before a failure
     * (`succeededBefore`: the count restarts, unless the breaker is open). Returns the state.
     */
    async finish(
      endpointId: string,
      token: string,
      outcome: 'succeeded' | 'failed' | 'neutral',
      wasProbe = false,
      succeededBefore = false,
    ): Promise<BreakerState> {
      const keys = [key('breaker', endpointId), key('probe', endpointId), key('slots', endpointId)];
      if (outcome === 'neutral') {
        // Nothing was learnt about the endpoint (nothing sent, or refused by the SSRF guard):
        // free the slot, and the probe's turn if this was the probe.
        await (wasProbe ? redis.multi().zrem(keys[2], token).del(keys[1]).exec() : redis.zrem(keys[2], token));
        return this.state(endpointId);
      }
      const ttl = options.breakerCooldownMs * 10 + 86_400_000;
      const open = await scripts.trackwayFinish(
        ...keys,
        token,
        outcome === 'succeeded' ? 1 : 0,
        options.breakerThreshold,
        Date.now(),
        options.breakerCooldownMs,
        ttl,
        succeededBefore ? 1 : 0,
      );
      return open === 1 ? 'open' : 'closed';
    },

    async state(endpointId: string): Promise<BreakerState> {
      const openUntil = Number((await redis.hget(key('breaker', endpointId), 'open_until')) ?? 0);
      if (openUntil === 0) return 'closed';
      return Date.now() < openUntil ? 'open' : 'half_open';
    },

    /** Endpoints whose breaker is not closed (at most `limit`), for the metrics scrape. */
    async snapshot(limit: number): Promise<Array<{ endpoint: string; state: 'open' | 'half_open' }>> {
      const found: Array<{ endpoint: string; state: 'open' | 'half_open' }> = [];
      for (const shard of deliveryShardNames(shards)) {
        const pattern = `${queueKeyPrefix(options.prefix, shard)}:breaker:*`;
        for (const k of await scanKeys(redis, pattern)) {
          const openUntil = Number((await redis.hget(k, 'open_until')) ?? 0);
          if (openUntil === 0) continue;
          found.push({ endpoint: k.slice(pattern.length - 1), state: Date.now() < openUntil ? 'open' : 'half_open' });
          if (found.length >= limit) return found;
        }
      }
      return found;
    },
  };
}

export type Isolation = ReturnType<typeof createIsolation>;
