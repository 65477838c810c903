import type { Redis } from 'ioredis';

// Cache invalidation across processes: the API publishes what changed, every service that
// caches that kind of row clears its cache. Lost messages are bounded by the caches' TTLs.
export type InvalidationKind = 'advertiser' | 'affiliate' | 'offer' | 'endpoint';

export const invalidationChannel = (prefix: string) => `${prefix}:invalidate`;

export async function publishInvalidation(redis: Redis, prefix: string, kind: InvalidationKind, id?: string | number) {
  await redis.publish(invalidationChannel(prefix), JSON.stringify({ kind, id: id === undefined ? null : String(id) }));
}

/** Subscribes on a dedicated connection (a subscribed ioredis client can run nothing else). */
export async function subscribeInvalidations(subscriber: Redis, prefix: string, onChange: (kind: InvalidationKind, id: string | null) => void): Promise<void> {
  const channel = invalidationChannel(prefix);
  subscriber.on('message', (received, message) => {
    if (received !== channel) return;
    try {
      const { kind, id } = JSON.parse(message) as { kind: InvalidationKind; id: string | null };
      onChange(kind, id);
    } catch {
      // A malformed message changes nothing; TTLs bound staleness anyway.
    }
  });
  await subscriber.subscribe(channel);
}
