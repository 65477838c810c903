import { LRUCache } from 'lru-cache';

export interface CachedLookup<V> {
  get(key: string | number): Promise<V | null>;
  clear(): void;
}

/**
 * Read-through cache for hot-path lookups (offers, affiliates, advertiser keys, endpoints):
 * concurrent misses share one load, misses are cached briefly too, and `clear()` is called
 * when another process announces a change (see @trackway/queues invalidation). With
 * `staleOnError`, a refresh that fails (Postgres down) serves the last value read, tried again
 * every second until a refresh succeeds: ingest keeps answering through an outage with what it
 * knew (a change announced meanwhile still clears it).
 */
const STALE_RETRY_MS = 1_000;

export function cachedLookup<V extends object>(
  load: (key: string) => Promise<V | null>,
  options: { ttlMs: number; missTtlMs?: number; max?: number; staleOnError?: boolean },
): CachedLookup<V> {
  const missTtl = options.missTtlMs ?? Math.min(options.ttlMs, 2_000);
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
      if (value === null) fetchOptions.ttl = missTtl;
      return { value };
    },
  });
  return {
    async get(key) {
      const entry = await cache.fetch(String(key));
      return entry?.value ?? null;
    },
    clear() {
      cache.clear();
    },
  };
}
