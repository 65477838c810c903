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
  // Only values found enter this cache: a key is inserted once its load found it, so a load
  // that finds nothing never takes (or evicts) a known key's place.
  const found = new LRUCache<string, V>({ max: options.max ?? 10_000, ttl: options.ttlMs, allowStale: false, noDeleteOnStaleGet: true });
  // Concurrent callers of one key share its load.
  const loading = new Map<string, Promise<V | null>>();
  const refresh = async (k: string): Promise<V | null> => {
    let value: V | null;
    try {
      value = await load(k);
    } catch (error) {
      // Nothing known about this key: the caller says so (503), never a guess.
      const stale = found.get(k, { allowStale: true });
      if (stale === undefined || !options.staleOnError) throw error;
      // The last value read, tried again in a second.
      found.set(k, stale, { ttl: Math.min(options.ttlMs, STALE_RETRY_MS) });
      return stale;
    }
    if (value === null) {
      found.delete(k);
      misses.set(k, true);
    } else found.set(k, value);
    return value;
  };
  return {
    async get(key) {
      const k = String(key);
      if (misses.has(k)) return null;
      const hit = found.get(k);
      if (hit !== undefined) return hit;
      let pending = loading.get(k);
      if (!pending) {
        pending = refresh(k).finally(() => loading.delete(k));
        loading.set(k, pending);
      }
      return pending;
    },
    peek(key) {
      const k = String(key);
      if (misses.has(k)) return null;
      return found.get(k, { allowStale: true });
    },
    clear() {
      found.clear();
      misses.clear();
    },
  };
}
