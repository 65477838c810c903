import { LRUCache } from 'lru-cache';

export interface CachedLookup<V> {
  get(key: string | number): Promise<V | null>;
  /** What the cache holds for a key, without loading it: the value, null for a known miss, undefined when it holds nothing. */
  peek(key: string | number): V | null | undefined;
  clear(): void;
}

const STALE_RETRY_MS = 1_000;

/**
 * Read-through cache for hot-path lookups (offers, affiliates, advertiser keys, endpoints):
 * concurrent misses share one load, misses are cached briefly too — in a cache of their own, so
 * a stream of unknown keys never pushes known ones out — and `clear()` is called when another
 * process announces a change (see @trackway/queues invalidation). With `staleOnError`, a refresh
 * that fails (Postgres down) serves the last value read, tried again every second until a
 * refresh succeeds: ingest keeps answering through an outage with what it knew (a change
 * announced meanwhile still clears it).
 */
export function cachedLookup<V extends object>(
  load: (key: string) => Promise<V | null>,
  options: { ttlMs: number; missTtlMs?: number; max?: number; staleOnError?: boolean },
): CachedLookup<V> {
  const missTtl = options.missTtlMs ?? Math.min(options.ttlMs, 2_000);
  const misses = new LRUCache<string, true>({ max: options.max ?? 10_000, ttl: missTtl });
  const cache = new LRUCache<string, { value: V | null }>({
    max: options.max ?? 10_000,
    ttl: options.ttlMs,
    fetchMethod: async (key, stale, { options: fetchOptions }) => {
      let value: V | null;
      try {
        value = await load(key);
      } catch (error) {
        // Nothing known about this key: the caller says so (503), never a guess.
        if (stale === undefined || !options.staleOnError) throw error;
        // The last value read, tried again in a second.
        fetchOptions.ttl = Math.min(options.ttlMs, STALE_RETRY_MS);
        return stale;
      }
      // A miss lives in `misses`; here only as long as concurrent callers share the load.
      if (value === null) fetchOptions.ttl = 1;
      return { value };
    },
  });
  return {
    async get(key) {
      const k = String(key);
      if (misses.has(k)) return null;
      const entry = await cache.fetch(k);
      const value = entry?.value ?? null;
      if (value === null) {
        cache.delete(k);
        misses.set(k, true);
      }
      return value;
    },
    peek(key) {
      const k = String(key);
      if (misses.has(k)) return null;
      return cache.get(k, { allowStale: true })?.value ?? undefined;
    },
    clear() {
      cache.clear();
      misses.clear();
    },
  };
}
