import type { IncomingMessage } from 'node:http';
import { rateLimitWait } from '@trackway/domain';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import proxyAddr from 'proxy-addr';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/** TRUST_PROXY, parsed: Express's `trust proxy` values. */
export type TrustProxy = boolean | number | string;
type TrustFn = (address: string, hop: number) => boolean;

/** The same trust function Express compiles from a `trust proxy` value, for node:http paths. */
const TRUST_NONE: TrustFn = () => false;

export function compileTrust(value: TrustProxy): TrustFn {
  if (value === true) return () => true;
  if (value === false) return TRUST_NONE;
  if (typeof value === 'number') return (_address, hop) => hop < value;
  return proxyAddr.compile(
    value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

/** The client's address under TRUST_PROXY; undefined once the socket has gone. */
export function clientAddress(req: IncomingMessage, trust: TrustFn): string | undefined {
  if (!req.socket.remoteAddress) return undefined;
  // The default: the socket's address, without parsing X-Forwarded-For on every request.
  if (trust === TRUST_NONE) return req.socket.remoteAddress;
  return proxyAddr(req, trust) as string | undefined;
}

/** A matcher for an allowlist of addresses and CIDRs (IPv4-mapped IPv6 addresses match IPv4 entries). */
export function addressMatcher(list: readonly string[]): ((address: string | undefined) => boolean) | null {
  if (list.length === 0) return null;
  const matches = proxyAddr.compile([...list]);
  return (address) => address !== undefined && matches(address, 0);
}

const retrySeconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export interface AuthFailureGuard {
  /** Seconds this address must wait before it may try again, or 0. From memory: no Redis round trip. */
  blockedFor(address: string | undefined): number;
  /**
   * Counts a failed authentication from this address (in Redis, shared by every replica);
   * returns the seconds to wait once it is over AUTH_FAILURE_LIMIT, else 0.
   */
  fail(address: string | undefined): Promise<number>;
}

/**
 * AUTH_FAILURE_LIMIT: failed authentications per client address per minute, counted in Redis
 * across replicas (rate-limiter-flexible). An address over the limit is remembered in memory
 * until its minute ends: its failures are then answered 429 without a Redis round trip (and,
 * on ingest, an unknown key without a lookup), while credentials that check out still pass, so
 * an attacker sharing an address with an advertiser or an admin cannot lock them out. When
 * Redis cannot be reached, each process counts alone (the insurance limiter): never a 5xx.
 */
export function authFailureGuard(options: { redis: Redis; prefix: string; scope: 'postback' | 'admin'; perMinute: number }): AuthFailureGuard {
  const limits = { points: options.perMinute, duration: 60 };
  const limiter = new RateLimiterRedis({
    storeClient: options.redis,
    // Postback keys and admin credentials are counted apart: noise against one never blocks the other.
    keyPrefix: `${options.prefix}:auth-failures:${options.scope}`,
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory(limits),
    ...limits,
  });
  const blocked = new LRUCache<string, number>({ max: 100_000, ttlAutopurge: false, ttl: 60_000 });
  return {
    blockedFor(address) {
      const until = blocked.get(address ?? '');
      return until === undefined || until <= Date.now() ? 0 : retrySeconds(until - Date.now());
    },
    async fail(address) {
      const key = address ?? '';
      try {
        await limiter.consume(key);
        return 0;
      } catch (result) {
        if (!(result instanceof RateLimiterRes)) return 0;
        blocked.set(key, Date.now() + result.msBeforeNext, { ttl: Math.max(1, result.msBeforeNext) });
        return retrySeconds(result.msBeforeNext);
      }
    },
  };
}

export interface PostbackRateLimiter {
  /**
   * Takes one postback of this advertiser's `limit` per second: 0 when it fits (it is
   * counted), else the seconds to wait. Answered from this replica's view of the window.
   */
  take(advertiserId: number, limit: number): number;
  close(): void;
}

interface Window {
  /** What Redis said the window held at the last sync. */
  used: number;
  /** Taken here since the last sync. */
  pending: number;
  endsAt: number;
}

/**
 * POSTBACK_RATE_LIMIT across ingest replicas without a Redis round trip per postback: each
 * replica counts locally and adds its counts to the shared one-second window in Redis
 * (rate-limiter-flexible's `penalty`) every `syncMs`, learning from the answer what all
 * replicas used. A replica can overshoot by what it accepts within one sync interval after
 * the window filled elsewhere. Without Redis, each replica limits alone.
 */
export function postbackRateLimiter(options: { redis: Redis; prefix: string; syncMs?: number; onError?: (error: unknown) => void }): PostbackRateLimiter {
  const limiter = new RateLimiterRedis({
    storeClient: options.redis,
    keyPrefix: `${options.prefix}:postback-rate`,
    points: Number.MAX_SAFE_INTEGER,
    duration: 1,
    rejectIfRedisNotReady: true,
  });
  const windows = new Map<number, Window>();
  let timer: NodeJS.Timeout | undefined;

  const sync = () => {
    timer = undefined;
    for (const [id, window] of windows) {
      if (window.pending === 0) {
        if (window.endsAt < Date.now() - 5_000) windows.delete(id);
        continue;
      }
      const taken = window.pending;
      window.pending = 0;
      limiter.penalty(String(id), taken).then(
        (result) => {
          window.used = result.consumedPoints;
          window.endsAt = Date.now() + result.msBeforeNext;
        },
        (error: unknown) => {
          window.used += taken;
          options.onError?.(error);
        },
      );
    }
  };

  return {
    take(advertiserId, limit) {
      if (limit <= 0) return 0;
      const now = Date.now();
      let window = windows.get(advertiserId);
      // A window this replica has not counted in yet (a new advertiser, or a new second): it
      // starts from nothing known and learns the shared count at once.
      const fresh = window === undefined || now >= window.endsAt;
      if (window === undefined) windows.set(advertiserId, (window = { used: 0, pending: 0, endsAt: now + 1000 }));
      else if (fresh) Object.assign(window, { used: 0, endsAt: now + 1000 });
      const wait = rateLimitWait({ limit, used: window.used + window.pending, msLeft: window.endsAt - now });
      if (wait > 0) return wait;
      window.pending += 1;
      if (fresh) clearTimeout(timer);
      if (fresh || !timer) timer = setTimeout(sync, fresh ? 0 : (options.syncMs ?? 100)).unref();
      return 0;
    },
    close() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** Whether a string is an IP address or a CIDR that an allowlist (and TRUST_PROXY) can hold. */
export function isAddressOrCidr(value: string): boolean {
  if (value === '' || /[^0-9a-fA-F.:/]/.test(value)) return false;
  try {
    proxyAddr.compile(value);
    return true;
  } catch {
    return false;
  }
}
