import { QUEUE, type QueueName } from './names';

// Where each queue's keys live. A Redis Cluster runs a script only on keys of one hash slot, and
// a slot lives on one master: every key of a queue (BullMQ's, and Trackway's own scripts' keys
// beside it) shares a hash tag, and each queue has its own tag, so queues spread over masters.
//
//   {<base>:<queue>}:<queue>:<BullMQ's suffix>      e.g. {trackway:postbacks}:postbacks:wait
//   {<base>:deliveries-3}:breaker:<endpoint id>      an endpoint's isolation keys, beside its shard
//
// <base> is QUEUE_PREFIX without its braces. Keys that belong to no queue (admin sessions,
// auth-failure counts, the invalidation channel) stay under QUEUE_PREFIX as before.

/** The most shards DELIVERY_QUEUE_SHARDS may ask for; a process looks this far for shards of an older count. */
export const DELIVERY_QUEUE_SHARDS_MAX = 64;

/** QUEUE_PREFIX without a hash tag's braces: `{trackway}` and `trackway` name the same deployment. */
export const keyBase = (queuePrefix: string) => queuePrefix.replace(/[{}]/g, '');

/** The BullMQ prefix of one queue (or delivery shard): a hash tag of its own. */
export const queueKeyPrefix = (queuePrefix: string, queueName: string) => `{${keyBase(queuePrefix)}:${queueName}}`;

/** The QUEUE_PREFIX (without braces) a queue's BullMQ prefix was made from: `{trackway:postbacks}` → `trackway`. */
export const basePrefixOf = (bullPrefix: string) => bullPrefix.replace(/^\{(.*):[^:]*\}$/, '$1');

/** Shard 0 keeps the name `deliveries`, so one shard (the default) is the queue it always was. */
export const deliveryShardName = (shard: number) => (shard === 0 ? QUEUE.deliveries : `${QUEUE.deliveries}-${shard}`);

export const deliveryShardNames = (shards: number) => Array.from({ length: shards }, (_, shard) => deliveryShardName(shard));

/** Whether a BullMQ queue name is one of the delivery shards (`deliveries`, `deliveries-1`, …). */
export const isDeliveryShard = (name: string) => name === QUEUE.deliveries || /^deliveries-[1-9]\d*$/.test(name);

/** The payload contract a queue (or delivery shard) carries. */
export const contractOf = (name: string): QueueName => (isDeliveryShard(name) ? QUEUE.deliveries : (name as QueueName));

/**
 * FNV-1a (32 bit) over the id's UTF-16 code units: stable across processes, versions and
 * platforms (no seed), and spreads ids that differ only at the end (ULIDs of one millisecond).
 */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The delivery shard an endpoint's jobs go to: always the same one for a given count. */
export function deliveryShardOf(endpointId: string, shards: number): number {
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards must be a whole number ≥ 1, not ${shards}`);
  return fnv1a(endpointId) % shards;
}

/** The key prefix of an endpoint's isolation state (breaker, probe, slots, rate limit): its shard's hash tag. */
export const endpointKeyPrefix = (queuePrefix: string, shards: number, endpointId: string) =>
  queueKeyPrefix(queuePrefix, deliveryShardName(deliveryShardOf(endpointId, shards)));
