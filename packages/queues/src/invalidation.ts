import type { Redis } from 'ioredis';

// Cache invalidation across processes: the API publishes what changed, every service that
// caches that kind of row clears its cache. Lost messages are bounded by the caches' TTLs.
export const INVALIDATION_KINDS = ['advertiser', 'affiliate', 'offer', 'endpoint'] as const;
export type InvalidationKind = (typeof INVALIDATION_KINDS)[number];

export const invalidationChannel = (prefix: string) => `${prefix}:invalidate`;

export async function publishInvalidation(redis: Redis, prefix: string, kind: InvalidationKind, id?: string | number) {
  await redis.publish(invalidationChannel(prefix), JSON.stringify({ kind, id: id === undefined ? null : String(id) }));
}

export interface InvalidationSubscription {
  /** Resolves once Redis has confirmed the subscription the first time. */
  ready: Promise<void>;
  /** Whether messages reach this process now: confirmed since the connection last came up. */
  active(): boolean;
}

/**
 * Subscribes on a dedicated connection (a subscribed ioredis client can run nothing else), and
 * again each time that connection comes back: it never waits for Redis, so a process can start
 * and serve while Redis is down. `onSubscribed` runs at each confirmation: what was published
 * while the subscription was not active is lost, so that is the moment to drop every cache.
 */
export function subscribeInvalidations(
  subscriber: Redis,
  prefix: string,
  onChange: (kind: InvalidationKind, id: string | null) => void,
  options: { onSubscribed?: () => void; onError?: (error: unknown) => void } = {},
): InvalidationSubscription {
  const channel = invalidationChannel(prefix);
  let active = false;
  subscriber.on('message', (received, message) => {
    if (received !== channel) return;
    try {
      const { kind, id } = JSON.parse(message) as { kind: InvalidationKind; id: string | null };
      onChange(kind, id);
    } catch {
      // A malformed message changes nothing; TTLs bound staleness anyway.
    }
  });
  const ready = new Promise<void>((resolve) => {
    // ioredis subscribes again by itself after a reconnect, but says nothing when that is done:
    // subscribing once more (harmless) tells us.
    const subscribe = () =>
      subscriber.subscribe(channel).then(
        () => {
          active = true;
          options.onSubscribed?.();
          resolve();
        },
        (error: unknown) => options.onError?.(error),
      );
    subscriber.on('ready', subscribe);
    subscriber.on('close', () => void (active = false));
    if (subscriber.status === 'ready') void subscribe();
  });
  return { ready, active: () => active };
}
