import { LRUCache } from 'lru-cache';

export interface CachedLookup<V> {
  get(key: string | number): Promise<V | null>;
  clear(): void;
}

/**
 * Read-through cache for hot-path lookups (offers, affiliates, advertiser keys, endpoints):
 * concurrent misses share one load, misses are cached briefly too, and `clear()` is called
 * when another process announces a change (see @trackway/queues invalidation).
 */
export function cachedLookup<V extends object>(
  load: (key: string) => Promise<V | null>,
  options: { ttlMs: number; missTtlMs?: number; max?: number },
): CachedLookup<V> {
  const missTtl = options.missTtlMs ?? Math.min(options.ttlMs, 2_000);
  const cache = new LRUCache<string, { value: V | null }>({
    max: options.max ?? 10_000,
    ttl: options.ttlMs,
    fetchMethod: async (key, _stale, { options: fetchOptions }) => {
      const value = await load(key);
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
