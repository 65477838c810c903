import { TEST_REDIS_URL, deleteRedisPrefix, freePort, ownRedis, randomSuffix, waitFor } from '@trackway/testing';
import { Worker } from 'bullmq';
import {
  DEFAULT_JOB_OPTIONS,
  JOB_SCHEMAS,
  QUEUE_NAMES,
  RedisUnavailableError,
  createProducerConnection,
  createQueue,
  createWorkerConnection,
  deliveryJobId,
  deliveryJobOptions,
  failFast,
  isRedisUnreachable,
  publishInvalidation,
  queueKeyPrefix,
  subscribeInvalidations,
  whenFirstTried,
  whenReady,
} from '../src';

describe('queues', () => {
  it('has one payload schema and one set of default options per queue', () => {
    expect(Object.keys(JOB_SCHEMAS).sort()).toEqual([...QUEUE_NAMES].sort());
    expect(Object.keys(DEFAULT_JOB_OPTIONS).sort()).toEqual([...QUEUE_NAMES].sort());
  });

  it('puts every key of a queue under a hash tag of its own (QUEUE_PREFIX {trackway} or trackway alike)', async () => {
    const base = `test-${randomSuffix()}`;
    const producer = createProducerConnection(TEST_REDIS_URL);
    const consumer = createWorkerConnection(TEST_REDIS_URL);
    await whenReady(producer);
    const queues = (['clicks', 'events'] as const).map((name) => createQueue(name, producer, `{${base}}`, () => undefined));
    const seen: string[] = [];
    const workers = queues.map(
      (queue) =>
        new Worker(queue.name, async (job) => void seen.push(`${queue.name}:${job.id}`), { connection: consumer, prefix: queueKeyPrefix(base, queue.name) }),
    );
    try {
      await queues[0].add('click', { clicks: [{ clickId: 'c', offerId: 1, affiliateId: 1, clickedAt: new Date().toISOString(), subs: {} }] }, { jobId: 'one' });
      await queues[1].add('events', { events: [] } as never, { jobId: 'two' });
      await waitFor(() => seen.length === 2, { what: 'both jobs processed' });
      expect(seen.sort()).toEqual(['clicks:one', 'events:two']);
      // A script touches keys of one slot only: every key of a queue has the queue's tag, and
      // the two queues have two tags (two slots, which a cluster may put on two masters).
      const keys = await producer.keys(`{${base}:*`);
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) expect(key).toMatch(new RegExp(`^\\{${base}:(clicks|events)\\}:\\1:`));
      expect(new Set(keys.map((key) => key.slice(0, key.indexOf('}') + 1)))).toEqual(new Set([`{${base}:clicks}`, `{${base}:events}`]));
    } finally {
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all(queues.map((q) => q.close()));
      producer.disconnect();
      consumer.disconnect();
      await deleteRedisPrefix(base);
    }
  });

  it('fails fast when the producer connection is not up, instead of waiting for it', async () => {
    const down = createProducerConnection('redis://127.0.0.1:1');
    down.on('error', () => undefined);
    const started = Date.now();
    await expect(failFast(down, () => new Promise(() => undefined))).rejects.toBeInstanceOf(RedisUnavailableError);
    expect(Date.now() - started).toBeLessThan(100);
    expect(await whenReady(down, 200)).toBe(false);
    down.disconnect();
    const up = createProducerConnection(TEST_REDIS_URL);
    expect(await whenReady(up)).toBe(true);
    // A command that never answers is cut off at the deadline.
    await expect(failFast(up, () => new Promise(() => undefined), 50)).rejects.toThrow(/no answer from redis in 50 ms/);
    expect(await failFast(up, () => up.ping())).toBe('PONG');
    up.disconnect();
  });

  it('tells, at the first refusal, that Redis did not answer: a server then listens without waiting longer', async () => {
    const down = createProducerConnection(`redis://127.0.0.1:${await freePort()}`);
    down.on('error', () => undefined);
    // ECONNREFUSED settles it, long before the test's own timeout or whenFirstTried's.
    expect(await whenFirstTried(down, 60_000)).toBe(false);
    down.disconnect();
    const up = createProducerConnection(TEST_REDIS_URL);
    expect(await whenFirstTried(up, 60_000)).toBe(true);
    up.disconnect();
  });

  it.each([
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), true],
    ['a connect timeout', Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }), true],
    ['failFast', new RedisUnavailableError('redis is reconnecting'), true],
    ['no offline queue', new Error("Stream isn't writeable and enableOfflineQueue options is false"), true],
    ['a closed connection', new Error('Connection is closed.'), true],
    ['retries spent', Object.assign(new Error('Reached the max retries per request limit (which is 1).'), { name: 'MaxRetriesPerRequestError' }), true],
    ['a full Redis', new Error("OOM command not allowed when used memory > 'maxmemory'."), false],
    ['a lost lock', new Error('Missing lock for job 1. moveToFinished'), false],
    ['not an error', 'ECONNREFUSED', false],
  ])('tells whether %s means Redis cannot be reached', (_what, error, unreachable) => {
    expect(isRedisUnreachable(error)).toBe(unreachable);
  });

  it('subscribes to invalidations without waiting for Redis, and again after Redis comes back', async () => {
    const redis = ownRedis(await freePort());
    const subscriber = createWorkerConnection(redis.url);
    const publisher = createProducerConnection(redis.url);
    for (const c of [subscriber, publisher]) c.on('error', () => undefined);
    const received: string[] = [];
    let confirmations = 0;
    try {
      // Redis is not there yet: the call returns at once, inactive.
      const subscription = subscribeInvalidations(subscriber, 'inv', (kind, id) => received.push(`${kind}:${id}`), {
        onSubscribed: () => void (confirmations += 1),
      });
      expect(subscription.active()).toBe(false);
      redis.start();
      await subscription.ready;
      expect({ active: subscription.active(), confirmations }).toEqual({ active: true, confirmations: 1 });
      await whenReady(publisher, 10_000);
      await publishInvalidation(publisher, 'inv', 'offer', 7);
      await waitFor(() => received.length === 1, { what: 'the first invalidation' });

      await redis.stop();
      await waitFor(() => !subscription.active(), { what: 'the subscription to be seen lost' });
      redis.start();
      // Confirmed again: the owner drops its caches then (what was published meanwhile is lost).
      await waitFor(() => subscription.active() && confirmations === 2, { timeoutMs: 15_000, what: 'the subscription to be made again' });
      await waitFor(() => publisher.status === 'ready', { timeoutMs: 15_000, what: 'the publisher to reconnect' });
      await publishInvalidation(publisher, 'inv', 'advertiser', 3);
      await waitFor(() => received.length === 2, { what: 'an invalidation after the restart' });
      expect(received).toEqual(['offer:7', 'advertiser:3']);
    } finally {
      subscriber.disconnect();
      publisher.disconnect();
      await redis.stop();
    }
  }, 40_000);

  it('gives a delivery one attempt per schedule entry and a stable job id', () => {
    expect(deliveryJobOptions([0, 50, 100], deliveryJobId('evt_1', 'ep_1'))).toEqual({
      jobId: 'evt_1-ep_1',
      attempts: 3,
      delay: 0,
      backoff: { type: 'webhook-schedule' },
    });
    expect(deliveryJobOptions([], 'x').attempts).toBe(1);
  });

  describe('payloads only widen: a job an earlier version enqueued still parses', () => {
    const postback = {
      postbackId: 'pb_01JD8Z6Q4Z2K9M1P5S3W7Y0B2D',
      advertiserId: 1,
      receivedAt: '2026-11-27T10:14:52.318Z',
      clickId: 'c',
      orderId: 'o',
      event: 'conversion',
      amount: '1',
      status: 'approved',
    };
    const click = { clickId: 'c', offerId: 1, affiliateId: 1, clickedAt: '2026-11-27T10:14:52.318Z', subs: {} };
    const event = { id: 'evt_01JD8Z6Q4Z2K9M1P5S3W7Y0B2D', type: 'conversion.created', timestamp: '2026-11-27T10:14:52.318Z', data: {} };
    it.each([
      ['postbacks', postback, { postbacks: [postback] }],
      ['postbacks', { postbacks: [postback, postback] }, { postbacks: [postback, postback] }],
      ['clicks', click, { clicks: [click] }],
      ['events', event, { events: [event] }],
      ['events', { events: [event] }, { events: [event] }],
    ] as const)('%s: %j', (queue, data, expected) => {
      expect(JOB_SCHEMAS[queue].parse(data)).toEqual(expected);
    });
    it('refuses more items than a job may carry, or none', () => {
      expect(JOB_SCHEMAS.postbacks.safeParse({ postbacks: Array(33).fill(postback) }).success).toBe(false);
      expect(JOB_SCHEMAS.events.safeParse({ events: [] }).success).toBe(false);
      expect(JOB_SCHEMAS.clicks.safeParse({ clicks: [{ ...click, offerId: 'x' }] }).success).toBe(false);
    });
  });
});
