// The in-process gate in front of the Redis admission: jobs wait their turn (bounded in time
// and in number) instead of bouncing through `delayed`. Redis is real.
import { createWorkerConnection } from '@trackway/queues';
import { TEST_REDIS_URL, deleteRedisPrefix, freePort, ownRedis, randomPrefix, waitFor } from '@trackway/testing';
import type { Redis } from 'ioredis';
import { EndpointGate, MAX_WAIT_MS, createGatedIsolation, worthWaiting } from '../src/gate';
import { createIsolation } from '../src/isolation';
import { parkUntil } from '../src/schedule';

describe('EndpointGate', () => {
  it('grants up to `permits` at once per endpoint, independently per endpoint', async () => {
    const gate = new EndpointGate({ permits: 2, maxWaiters: 0 });
    expect(await Promise.all([gate.acquire('a', 0), gate.acquire('a', 0), gate.acquire('a', 0), gate.acquire('b', 0)])).toEqual([true, true, false, true]);
    expect([gate.active('a'), gate.active('b')]).toEqual([2, 1]);
  });

  it('hands a released permit to the first waiter (FIFO)', async () => {
    const gate = new EndpointGate({ permits: 1, maxWaiters: 3 });
    await gate.acquire('a', 0);
    const order: string[] = [];
    const waiters = ['w1', 'w2', 'w3'].map((name) => gate.acquire('a', 10_000).then((granted) => order.push(`${name}:${granted}`)));
    expect(gate.waiting('a')).toBe(3);
    for (let i = 0; i < 3; i++) {
      gate.release('a');
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(waiters);
    expect(order).toEqual(['w1:true', 'w2:true', 'w3:true']);
    expect(gate.active('a')).toBe(1);
    gate.release('a');
    expect([gate.active('a'), gate.waiting('a')]).toEqual([0, 0]);
  });

  it('refuses at once beyond `maxWaiters`, and a waiter whose time ran out leaves the queue', async () => {
    const gate = new EndpointGate({ permits: 1, maxWaiters: 1 });
    await gate.acquire('a', 0);
    const first = gate.acquire('a', 50);
    expect(await gate.acquire('a', 10_000)).toBe(false); // the second waiter: refused without waiting
    expect(await first).toBe(false); // timed out
    expect(gate.waiting('a')).toBe(0);
    gate.release('a');
    expect(await gate.acquire('a', 0)).toBe(true); // nothing leaked
  });
});

describe('worthWaiting', () => {
  it.each([
    ['nothing known yet, nothing in flight long: wait (taken to be fast)', undefined, 0, 2, 1_000, 0, true],
    ['nothing known yet, an attempt out for 300 ms: park (it may be hanging)', undefined, 0, 2, 1_000, 300, false],
    ['fast endpoint, a few ahead', 5, 3, 2, 1_000, 10, true],
    ['fast endpoint whose oldest attempt is out 4× its usual time and 250 ms: park (it stopped answering)', 5, 0, 2, 1_000, 260, false],
    ['one round of 400 ms ahead', 400, 1, 2, 1_000, 400, true],
    ['two rounds of 400 ms ahead: more than half the budget', 400, 2, 2, 1_000, 0, false],
    ['an endpoint hanging until the timeout (= the budget)', 300, 0, 10, 300, 0, false],
    ['an endpoint hanging until a long timeout', 15_000, 0, 10, 1_000, 0, false],
  ] as const)('%s', (_name, typical, ahead, permits, budget, oldest, expected) => {
    expect(worthWaiting(typical, ahead, permits, budget, oldest)).toBe(expected);
  });
});

describe('parkUntil', () => {
  it.each([
    [5, 0, 15_000, 20], // at least 20 ms
    [100, 0, 15_000, 100],
    [100, 2, 15_000, 400], // doubling per time parked
    [100, 10, 15_000, 2_000], // at most 2 s
    [undefined, 0, 15_000, 1_000],
    [5_000, 0, 1_500, 1_500], // at most the attempt timeout
  ])('typical %p ms, parked %i times, timeout %i ms → %i ms (no jitter)', (typical, times, timeout, wait) => {
    expect(parkUntil(typical, times, timeout, 0, () => 0.5)).toBe(wait);
  });

  it.each([
    ['just stuck: the backoff', undefined, 0, 15_000, 300, 1_000],
    ['out 5 s: 5 s more', undefined, 3, 15_000, 5_000, 5_000],
    ['out 12 s of 15: until its deadline', 100, 10, 15_000, 12_000, 3_000],
    ['out 14.5 s of 15: the backoff, not less', 100, 10, 15_000, 14_500, 2_000],
  ])('a stuck endpoint, %s', (_name, typical, times, timeout, stuckFor, wait) => {
    expect(parkUntil(typical, times, timeout, 0, () => 0.5, stuckFor)).toBe(wait);
  });
});

describe('gated admission (Redis)', () => {
  let prefix: string;
  const connections: Redis[] = [];
  const connect = () => {
    const c = createWorkerConnection(TEST_REDIS_URL);
    connections.push(c);
    return c;
  };
  beforeEach(() => {
    prefix = randomPrefix();
  });
  afterAll(async () => {
    for (const c of connections) c.disconnect();
  });
  afterEach(() => deleteRedisPrefix(prefix));

  const gated = (redis: Redis, over: { endpointConcurrency?: number; workerConcurrency?: number; breakerThreshold?: number } = {}) => {
    const isolation = createIsolation(redis, {
      prefix,
      breakerThreshold: over.breakerThreshold ?? 5,
      breakerCooldownMs: 60_000,
      endpointConcurrency: over.endpointConcurrency ?? 1,
      attemptTimeoutMs: 5_000,
    });
    return {
      isolation,
      gated: createGatedIsolation(isolation, {
        endpointConcurrency: over.endpointConcurrency ?? 1,
        workerConcurrency: over.workerConcurrency ?? 8,
        attemptTimeoutMs: 5_000,
      }),
    };
  };

  it('a job finding the endpoint at its cap waits for the slot instead of parking', async () => {
    const { gated: g } = gated(connect());
    expect(await g.admit('ep_a', null, 't1', 5)).toEqual({ ok: true, probe: false });
    const second = g.admit('ep_a', null, 't2', 5);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await g.finish('ep_a', 't1', 'succeeded', false);
    expect(await second).toEqual({ ok: true, probe: false });
    await g.finish('ep_a', 't2', 'succeeded', false);
  });

  it('parks when the bounded wait runs out', async () => {
    // Attempts of 300 ms: worth waiting for (a turn within half the budget), and one in flight
    // counts as stuck only after 1.2 s, past the budget.
    const { gated: g } = gated(connect());
    await g.admit('ep_a', null, 't1', 300);
    const started = Date.now();
    expect(await g.admit('ep_a', null, 't2', 300)).toMatchObject({ ok: false, reason: 'concurrency' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(MAX_WAIT_MS - 20);
  });

  it('parks a waiting job as soon as the attempt ahead of it counts as stuck, not at the end of its budget', async () => {
    // Attempts usually take 5 ms; the one holding the permit never answers: at 250 ms it is stuck.
    const { gated: g } = gated(connect());
    await g.admit('ep_a', null, 't1', 5);
    const started = Date.now();
    expect(await g.admit('ep_a', null, 't2', 5)).toMatchObject({ ok: false, reason: 'concurrency' });
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(240);
    expect(waited).toBeLessThan(MAX_WAIT_MS - 200);
  });

  it('bounds the waiters per endpoint: beyond them a job parks at once, and other endpoints are unaffected', async () => {
    // Worker concurrency 2, endpoint cap 1: at most two waiters per endpoint (the job running
    // holds no slot while its request is out, so both slots may wait).
    const { gated: g } = gated(connect(), { workerConcurrency: 2 });
    await g.admit('ep_a', null, 't1', 5);
    const waiting = [g.admit('ep_a', null, 't2', 5), g.admit('ep_a', null, 't3', 5)];
    expect(await g.admit('ep_a', null, 't4', 5)).toMatchObject({ ok: false, reason: 'concurrency' });
    expect(await g.admit('ep_b', null, 't5', 5)).toEqual({ ok: true, probe: false });
    await g.finish('ep_a', 't1', 'succeeded', false);
    expect(await waiting[0]).toEqual({ ok: true, probe: false });
    await g.finish('ep_a', 't2', 'succeeded', false);
    expect(await waiting[1]).toEqual({ ok: true, probe: false });
  });

  it('does not wait for an endpoint whose attempts take longer than the budget', async () => {
    const { gated: g } = gated(connect());
    await g.admit('ep_slow', null, 't1', 15_000);
    const started = Date.now();
    expect(await g.admit('ep_slow', null, 't2', 15_000)).toMatchObject({ ok: false, reason: 'concurrency' });
    expect(Date.now() - started).toBeLessThan(MAX_WAIT_MS);
  });

  it('waits for an endpoint not seen yet, until one of its attempts is out far too long: then its waiters park', async () => {
    const { gated: g } = gated(connect());
    await g.admit('ep_new', null, 't1', undefined);
    // The one permit is taken; the next job waits for it rather than parking…
    const waiting = g.admit('ep_new', null, 't2', undefined);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // …until another job finds the first attempt out for 300 ms: the endpoint stopped answering.
    const started = Date.now();
    expect(await g.admit('ep_new', null, 't3', undefined)).toMatchObject({ ok: false, reason: 'concurrency' });
    expect(await waiting).toMatchObject({ ok: false, reason: 'concurrency' });
    expect(Date.now() - started).toBeLessThan(MAX_WAIT_MS);
  });

  it('says when a job must park before anything is read for it: only when every permit is taken and the oldest attempt is stuck', async () => {
    const { gated: g } = gated(connect(), { endpointConcurrency: 2 });
    await g.admit('ep_a', null, 't1', 5);
    expect(g.stuckUntil('ep_a', 5)).toBeNull(); // a permit is free
    await g.admit('ep_a', null, 't2', 5);
    expect(g.stuckUntil('ep_a', 5)).toBeNull(); // both taken, neither out long
    await new Promise((resolve) => setTimeout(resolve, 300));
    const now = Date.now();
    // Out 300 ms where 5 ms is usual: back in about as long again (±50 % jitter).
    expect(g.stuckUntil('ep_a', 5)).toBeGreaterThanOrEqual(now + 0.5 * 300 - 5);
    expect(g.stuckUntil('ep_a', 1_000)).toBeNull(); // for an endpoint whose attempts take 1 s, not stuck yet
    expect(g.stuckUntil('ep_b', 5)).toBeNull();
    await g.finish('ep_a', 't1', 'succeeded', false);
    expect(g.stuckUntil('ep_a', 5)).toBeNull();
  });

  it('parks at once when the breaker is open, and frees the permit', async () => {
    const { gated: g } = gated(connect(), { breakerThreshold: 1, endpointConcurrency: 2 });
    await g.admit('ep_a', null, 't1', 5);
    await g.finish('ep_a', 't1', 'failed', false);
    expect(await g.admit('ep_a', null, 't2', 5)).toMatchObject({ ok: false, reason: 'breaker_open' });
    expect(await g.admit('ep_a', null, 't3', 5)).toMatchObject({ ok: false, reason: 'breaker_open' });
  });

  it("counts a batch's turn that failed after successes as one failure, and never closes a breaker others opened", async () => {
    const { isolation } = gated(connect(), { breakerThreshold: 3 });
    const turn = async (outcome: 'succeeded' | 'failed', succeededBefore = false) => {
      await isolation.admit('ep_a', null, 't', 5);
      return isolation.finish('ep_a', 't', outcome, false, succeededBefore);
    };
    // Turns ending in a failure after successes: the count restarts at each, the breaker stays closed.
    for (let i = 0; i < 5; i++) expect(await turn('failed', true)).toBe('closed');
    // Failures alone count on from there up to the threshold (1, 2, 3).
    expect(await turn('failed')).toBe('closed');
    expect(await turn('failed')).toBe('open');
    // Open (by other attempts): a turn's successes before its failure do not close it.
    expect(await isolation.finish('ep_a', 'y', 'failed', false, true)).toBe('open');
    expect(await isolation.state('ep_a')).toBe('open');
  });

  it('holds the cap across processes: a second process waits for the slot the first one holds', async () => {
    const one = gated(connect()).gated;
    const two = gated(connect()).gated;
    await one.admit('ep_a', null, 't1', 5);
    const other = two.admit('ep_a', null, 't2', 5);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await one.finish('ep_a', 't1', 'succeeded', false);
    expect(await other).toEqual({ ok: true, probe: false });
  });

  it('parks at once, not after its budget, when the slot another process holds is stuck, until about as long again', async () => {
    const one = gated(connect()).gated;
    const two = gated(connect()).gated;
    await one.admit('ep_a', null, 't1', 5);
    // Attempts usually take 5 ms; the other process's one has been out 400 ms: stuck.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const started = Date.now();
    const admission = await two.admit('ep_a', null, 't2', 5);
    expect(admission).toMatchObject({ ok: false, reason: 'concurrency', oldestInFlightMs: expect.any(Number) });
    if (admission.ok) throw new Error('admitted');
    expect(admission.oldestInFlightMs).toBeGreaterThanOrEqual(400);
    expect(Date.now() - started).toBeLessThan(MAX_WAIT_MS - 200);
    // Back after about as long again as the stuck attempt has been out (±50 % jitter), not the 20 ms backoff.
    expect(admission.retryAt - started).toBeGreaterThanOrEqual(0.5 * 400 - 20);
    // Its permit went back: this process's other jobs for the endpoint are not held up by it.
    await one.finish('ep_a', 't1', 'succeeded', false);
    expect(await two.admit('ep_a', null, 't3', 5)).toEqual({ ok: true, probe: false });
  });

  it('runs its Lua scripts by SHA after their first use on a connection, not by sending them each time', async () => {
    // On a Redis of its own: MONITOR on the shared one also streams other test files' BullMQ
    // commands (msgpack bytes), which ioredis's monitor parser can choke on.
    const own = ownRedis(await freePort());
    own.start();
    const clients: Redis[] = [];
    try {
      const client = () => {
        const c = createWorkerConnection(own.url);
        c.on('error', () => undefined);
        clients.push(c);
        return c;
      };
      const probe = client();
      await waitFor(async () => (await probe.ping().catch(() => null)) === 'PONG', { what: 'its own redis-server' });
      const monitor = await probe.monitor();
      clients.push(monitor);
      const seen: string[] = [];
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (args.some((a) => typeof a === 'string' && a.startsWith(`{${prefix}:deliveries}:`))) seen.push(String(args[0]).toLowerCase());
      });
      const { gated: g } = gated(client());
      for (let i = 0; i < 3; i++) {
        await g.admit('ep_a', null, `t${i}`, 5);
        await g.finish('ep_a', `t${i}`, 'succeeded', false);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      // ioredis sends each script whole once per connection (EVAL, which caches it), then its SHA.
      expect(seen.filter((c) => c === 'eval')).toHaveLength(2);
      expect(seen.filter((c) => c === 'evalsha')).toHaveLength(4);
    } finally {
      for (const c of clients) c.disconnect();
      await own.stop();
    }
  });
});
