// The deliveries queue split by endpoint, and the queues of older layouts, on the real Redis.
import { TEST_REDIS_URL, deleteRedisPrefix, randomPrefix } from '@trackway/testing';
import type { Redis } from 'ioredis';
import {
  type DeliveryQueues,
  createDeliveryQueues,
  createOldLayoutQueue,
  createProducerConnection,
  createQueue,
  deliveryJobId,
  deliveryShardOf,
  findOldDeliveryQueues,
  findOldLayoutQueues,
  whenReady,
} from '../src';

const ignore = () => undefined;
let prefix: string;
let redis: Redis;
const opened: Array<{ close(): Promise<unknown> }> = [];
const open = <T extends { close(): Promise<unknown> }>(queue: T) => {
  opened.push(queue);
  return queue;
};
const deliveriesOf = (shards: number) => open(createDeliveryQueues(redis, prefix, ignore, shards));
const job = (endpointId: string, eventId = 'evt_1') => ({
  name: 'conversion.approved',
  data: { deliveryId: `dlv_${eventId}_${endpointId}`, endpointId, eventId },
  opts: { jobId: deliveryJobId(eventId, endpointId), delay: 60_000 },
});
// Endpoint ids on each of four shards, found once (deliveryShardOf is stable).
const endpointsOn = (shards: number) =>
  Array.from({ length: shards }, (_, k) => Array.from({ length: 200 }, (_, i) => `ep_${i}`).find((id) => deliveryShardOf(id, shards) === k)!);

beforeEach(async () => {
  prefix = randomPrefix();
  redis = createProducerConnection(TEST_REDIS_URL);
  await whenReady(redis);
});
afterEach(async () => {
  await Promise.all(opened.splice(0).map((q) => q.close()));
  redis.disconnect();
  await deleteRedisPrefix(prefix);
});

it("adds each endpoint's jobs to its shard, and finds them from any process with the same count", async () => {
  const deliveries = deliveriesOf(4);
  const endpoints = endpointsOn(4);
  await deliveries.addBulk(endpoints.map((ep) => job(ep)));
  await deliveries.add(job(endpoints[2], 'evt_2').name, job(endpoints[2], 'evt_2').data, job(endpoints[2], 'evt_2').opts);
  expect(await Promise.all(deliveries.shards.map((q) => q.getDelayedCount()))).toEqual([1, 1, 2, 1]);
  expect(deliveries.shards.map((q) => q.name)).toEqual(['deliveries', 'deliveries-1', 'deliveries-2', 'deliveries-3']);
  const other = deliveriesOf(4);
  for (const ep of endpoints) expect(await other.getJobState(deliveryJobId('evt_1', ep))).toBe('delayed');
  expect((await other.getJob(deliveryJobId('evt_2', endpoints[2])))?.queueName).toBe('deliveries-2');
  expect(await other.getJobState('nothing')).toBe('unknown');
  expect(await other.getJobCounts('delayed')).toEqual({ delayed: 5 });
  // Every shard has a hash tag of its own.
  const tags = new Set((await redis.keys(`{${prefix}:*`)).map((key) => key.slice(0, key.indexOf('}') + 1)));
  expect(tags).toEqual(new Set(deliveries.shards.map((q) => q.opts.prefix)));
});

it('after a change of count, queues no second job for a delivery whose job waits in its former shard', async () => {
  const before = deliveriesOf(2);
  // An endpoint that moves: shard 1 of 2, shard 2 of 3.
  const ep = Array.from({ length: 500 }, (_, i) => `ep_${i}`).find((id) => deliveryShardOf(id, 2) === 1 && deliveryShardOf(id, 3) === 2)!;
  await before.add(job(ep).name, job(ep).data, job(ep).opts);
  const after = deliveriesOf(3);
  expect(after.of(ep).name).toBe('deliveries-2');
  // Fan-out run again, the sweeper, a batch's retry: the same job id is found where it waits.
  await after.addBulk([job(ep), job(ep, 'evt_new')]);
  await after.add(job(ep).name, job(ep).data, job(ep).opts);
  expect(await Promise.all(after.shards.map((q) => q.getDelayedCount()))).toEqual([0, 1, 1]);
  expect((await after.getJob(deliveryJobId('evt_1', ep)))?.queueName).toBe('deliveries-1');
  expect((await after.getJob(deliveryJobId('evt_new', ep)))?.queueName).toBe('deliveries-2');
});

it('finds the shards of a higher count, and the deliveries queue of the layout before hash tags, while they hold jobs', async () => {
  const before = deliveriesOf(3);
  const endpoints = endpointsOn(3);
  await before.addBulk(endpoints.map((ep) => job(ep)));
  const old = open(createOldLayoutQueue('deliveries', redis, prefix, ignore));
  await old.add('conversion.approved', job('ep_old').data, { jobId: deliveryJobId('evt_1', 'ep_old'), delay: 60_000 });
  expect(await redis.exists(`${prefix}:deliveries:${deliveryJobId('evt_1', 'ep_old')}`)).toBe(1);

  const after: DeliveryQueues = deliveriesOf(2);
  expect(await after.getJobState(deliveryJobId('evt_1', endpoints[2]))).toBe('unknown');
  const found = await findOldDeliveryQueues(after, redis, ignore);
  opened.push(...found);
  expect(found.map((q) => `${q.opts.prefix}:${q.name}`).sort()).toEqual([`${prefix}:deliveries`, `{${prefix}:deliveries-2}:deliveries-2`]);
  expect(after.draining).toEqual(found);
  // Looked up, and no second job queued, wherever they wait.
  expect(await after.getJobState(deliveryJobId('evt_1', endpoints[2]))).toBe('delayed');
  expect(await after.getJobState(deliveryJobId('evt_1', 'ep_old'))).toBe('delayed');
  await after.add(job('ep_old').name, job('ep_old').data, job('ep_old').opts);
  expect(await after.of('ep_old').getJobState(deliveryJobId('evt_1', 'ep_old'))).toBe('unknown');
  // Looking again adds nothing twice; emptied queues are not found.
  expect(await findOldDeliveryQueues(after, redis, ignore)).toEqual([]);
  await old.obliterate({ force: true });
  const fresh = deliveriesOf(2);
  const again = await findOldDeliveryQueues(fresh, redis, ignore);
  opened.push(...again);
  expect(again.map((q) => q.name)).toEqual(['deliveries-2']);
});

it('finds the queues of the layout before hash tags that hold work, after removing their job schedulers', async () => {
  const postbacks = open(createOldLayoutQueue('postbacks', redis, prefix, ignore));
  const outbox = open(createOldLayoutQueue('outbox', redis, prefix, ignore));
  const clicks = open(createOldLayoutQueue('clicks', redis, prefix, ignore));
  await postbacks.add('postback', { postbacks: [] } as never, { jobId: 'pb-block' });
  await outbox.upsertJobScheduler('outbox-relay', { every: 5_000 }, { name: 'relay' });
  // The new layout's queues are not the old ones.
  const current = open(createQueue('clicks', redis, prefix, ignore));
  await current.add('click', { clicks: [] } as never);

  const found = await findOldLayoutQueues(redis, prefix, ['postbacks', 'clicks', 'outbox'], ignore);
  opened.push(...found.map(({ queue }) => queue));
  // The relay's tick already queued is drained once; no scheduler is left to queue more.
  expect(found.map(({ name }) => name)).toEqual(['postbacks', 'outbox']);
  expect(await outbox.getJobSchedulersCount()).toBe(0);
  expect(await outbox.getJobCounts('waiting', 'delayed')).toEqual({ waiting: 1, delayed: 0 });
  expect(await clicks.getWaitingCount()).toBe(0);
  await outbox.drain();
  const again = await findOldLayoutQueues(redis, prefix, ['postbacks', 'clicks', 'outbox'], ignore);
  opened.push(...again.map(({ queue }) => queue));
  expect(again.map(({ name }) => name)).toEqual(['postbacks']);
});
