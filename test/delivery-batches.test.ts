// Batches: the first attempts of several deliveries to one endpoint travel in one job
// (deliveryBatchJobId), sent on lanes and recorded a turn at a time. Each delivery keeps every
// rule of its own: one attempt logged per request, a failed one retried on its own schedule by a
// job of its own, nothing sent twice by a run again, a result that could not be recorded carried
// with the job and recorded (not sent) on its next run.
import { type EventEnvelope, createEvent } from '@trackway/domain';
import { createLogger } from '@trackway/logger';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { type DeliveryBatchJob, type DeliveryJob, deliveryBatchJobId, deliveryJobId } from '@trackway/queues';
import { type Receiver, startReceiver, waitFor } from '@trackway/testing';
import type { Worker } from 'bullmq';
import { createSweeper } from '../services/delivery/src/housekeeping';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let receivers: Receiver[] = [];
let workers: Worker[] = [];

beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());
afterEach(async () => {
  await stack.db.prisma.webhookEndpoint.updateMany({ data: { enabled: false } });
  await stack.stopWorkers(workers);
  workers = [];
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
});

async function receiver(reply?: Receiver['reply']) {
  const r = await startReceiver(reply);
  receivers.push(r);
  return r;
}

/** Events written and published together, as one attribution batch does. */
async function emit(n: number): Promise<EventEnvelope[]> {
  const events = Array.from({ length: n }, (_, i) => createEvent('conversion.approved', { conversion: { id: `cnv_${i}` } }));
  await stack.db.prisma.$transaction((tx) => writeEvents(tx, events));
  await publishEvents(stack.db.pool, stack.queues.events, events);
  return events;
}

const rowsOf = (endpointId: string) =>
  stack.db.prisma.delivery.findMany({ where: { endpointId }, orderBy: { eventId: 'asc' }, include: { attempts: { orderBy: { number: 'asc' } } } });
const allSettled = (endpointId: string, n: number) =>
  waitFor(
    async () => {
      const rows = await rowsOf(endpointId);
      return rows.length === n && rows.every((r) => r.status !== 'pending') ? rows : null;
    },
    { timeoutMs: 15_000, what: `${n} deliveries settled` },
  );

/**
 * An endpoint and `n` events fanned out to it with no worker for deliveries yet: its batch waits
 * in the queue. Returns the endpoint, its receiver, the events and their delivery rows.
 */
async function fannedOut(n: number) {
  const r = await receiver();
  const ep = await stack.subscribe(r.url);
  const events = await emit(n);
  const fanOut = await stack.startDelivery({}, { queues: ['events'] });
  const rows = await waitFor(async () => ((await rowsOf(ep.id)).length === n ? rowsOf(ep.id) : null), { what: `${n} delivery rows` });
  await stack.stopWorkers(fanOut);
  return { r, ep, events, rows };
}

/** The stack's deliveries queue, but for a retry's add, which `retry` answers instead (a worker dying there, a Redis refusing it). */
const retriesThrough = (retry: () => Promise<void>) =>
  new Proxy(stack.queues.deliveries, {
    get: (target, prop, receiver) =>
      prop === 'add' ? (...args: Parameters<typeof target.add>) => (args[0] === 'retry' ? retry() : target.add(...args)) : Reflect.get(target, prop, receiver),
  });

it("sends an endpoint's deliveries of one fan-out in one job, in event order, each attempt logged on its own", async () => {
  workers = await stack.startDelivery();
  const [a, b] = [await receiver(), await receiver()];
  const epA = await stack.subscribe(a.url);
  const epB = await stack.subscribe(b.url);
  const events = await emit(5);
  for (const [r, ep] of [
    [a, epA],
    [b, epB],
  ] as const) {
    const rows = await allSettled(ep.id, 5);
    expect(rows.map((row) => row.status)).toEqual(Array(5).fill('succeeded'));
    expect(rows.map((row) => row.attempts.map((x) => [x.number, x.statusCode]))).toEqual(Array(5).fill([[1, 200]]));
    // One batch per endpoint (named by a fresh id), written on every row.
    expect(new Set(rows.map((row) => row.batchJobId))).toEqual(new Set([rows[0].batchJobId]));
    expect(rows[0].batchJobId).toEqual(deliveryBatchJobId(rows[0].batchJobId!.replace(/-batch$/, '')));
    expect(await stack.queues.deliveries.getJobState(rows[0].batchJobId!)).toBe('completed');
    expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual(events.map((e) => e.id));
  }
});

it('retries a failed first attempt on its own schedule, by a job of its own; the rest of the batch is sent once', async () => {
  workers = await stack.startDelivery();
  // The second request fails: it ends its turn, and the batch goes on with the next.
  const r = await receiver((_req, n) => (n === 2 ? { status: 503, body: 'busy' } : { status: 200, body: 'ok' }));
  const ep = await stack.subscribe(r.url);
  const events = await emit(4);
  const rows = await allSettled(ep.id, 4);
  expect(rows.map((row) => row.attempts.map((x) => [x.number, x.statusCode]))).toEqual([
    [[1, 200]],
    [
      [1, 503],
      [2, 200],
    ],
    [[1, 200]],
    [[1, 200]],
  ]);
  expect(r.requests).toHaveLength(5);
  expect(r.requests.filter((q) => q.headers['webhook-id'] === events[1].id)).toHaveLength(2);
  const retry = await stack.queues.deliveries.getJob(deliveryJobId(events[1].id, ep.id));
  expect(retry?.data).toEqual({ deliveryId: rows[1].id, endpointId: ep.id, eventId: events[1].id, priorAttempts: 1 });
  // Its schedule goes on from the attempt made: [0, 50, 100] has two left.
  expect(retry?.opts.attempts).toBe(2);
  expect(retry?.finishedOn).toBeDefined();
});

it('a batch run again sends nothing already attempted, and records (never sends) an attempt it carried', async () => {
  const { r, ep, events, rows } = await fannedOut(3);
  const batchId = rows[0].batchJobId!;
  const batch = (await stack.queues.deliveries.getJob(batchId))!;
  // A run that sent the first delivery and could not record it (Postgres down): the result
  // travels with the job.
  const carried = {
    key: `${batchId}:1:1:${rows[0].id}`,
    at: new Date().toISOString(),
    durationMs: 3,
    statusCode: 200,
    error: null,
    responseBody: 'ok',
    retryAfterMs: null,
  };
  const data = batch.data as DeliveryBatchJob;
  await batch.updateData({ ...data, deliveries: data.deliveries.map((d, i) => (i === 0 ? { ...d, unrecorded: carried } : d)) } as never);
  workers = await stack.startDelivery();
  const settled = await allSettled(ep.id, 3);
  expect(settled.map((row) => row.attempts.map((x) => [x.number, x.statusCode, x.attemptKey]))).toEqual([
    [[1, 200, carried.key]],
    [[1, 200, expect.any(String)]],
    [[1, 200, expect.any(String)]],
  ]);
  expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual([events[1].id, events[2].id]);
  expect(((await stack.queues.deliveries.getJob(batchId))!.data as DeliveryBatchJob).deliveries.some((d) => d.unrecorded)).toBe(false);
  // The same batch run again (a worker killed after its requests): nothing is sent twice.
  await stack.queues.deliveries.add('batch', data, { jobId: `${batchId}-again` });
  await waitFor(async () => (await stack.queues.deliveries.getJob(`${batchId}-again`))?.finishedOn, { what: 'the batch run again' });
  expect(r.requests).toHaveLength(2);
});

it("fails a batch's deliveries never attempted when its endpoint is disabled", async () => {
  const { r, ep } = await fannedOut(3);
  await stack.db.prisma.webhookEndpoint.update({ where: { id: ep.id }, data: { enabled: false } });
  workers = await stack.startDelivery();
  const rows = await allSettled(ep.id, 3);
  expect(rows.map((row) => [row.status, row.attemptCount])).toEqual(Array(3).fill(['failed', 0]));
  expect(r.requests).toHaveLength(0);
});

it('records each turn as it ends, and on shutdown stops after the request in flight: the rest goes back, nothing is sent twice', async () => {
  // One request at a time (cap 1), each answered after 300 ms: every turn is one request.
  const settings = { endpointConcurrency: 1 };
  const { r, ep, events } = await fannedOut(8);
  r.reply = () => ({ status: 200, delayMs: 300 });
  workers = await stack.startDelivery(settings);
  await waitFor(() => r.requests.length >= 2, { what: 'two requests' });
  // The first is logged while the batch goes on.
  await waitFor(async () => (await stack.db.prisma.deliveryAttempt.count({ where: { delivery: { endpointId: ep.id } } })) >= 1, {
    what: 'the first attempt logged mid-batch',
  });
  const closing = performance.now();
  await stack.stopWorkers(workers);
  // The close waits for the request in flight only (300 ms at most), not for the batch's other
  // requests (at least 5 × 300 ms).
  expect(performance.now() - closing).toBeLessThan(3 * 300);
  const sent = r.requests.length;
  expect(sent).toBeLessThan(8);
  workers = await stack.startDelivery(settings);
  const rows = await allSettled(ep.id, 8);
  expect(rows.map((row) => row.attempts.length)).toEqual(Array(8).fill(1));
  expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual(events.map((e) => e.id));
});

it('a run that lost its job (its lock lapsed, another run took it) sends nothing more: each delivery is sent once', async () => {
  const settings = { endpointConcurrency: 1 };
  const lock = { workerOptions: { lockDuration: 1_000, stalledInterval: 500 } };
  const { r, ep, rows } = await fannedOut(12);
  r.reply = () => ({ status: 200, delayMs: 200 });
  // Earlier tests' workers (stalledInterval 30 s) left BullMQ's guard on the stalled check: gone,
  // these workers look every 500 ms.
  await stack.producer.del(stack.queues.deliveries.shards[0].toKey('stalled-check'));
  workers = [...(await stack.startDelivery(settings, lock)), ...(await stack.startDelivery(settings, lock))];
  await waitFor(() => r.requests.length >= 1, { what: 'the first request' });
  // The lock gone (as when a Redis restart stopped BullMQ's renewals): the job stalls and another
  // run takes it, while this one is mid-batch.
  await stack.producer.del(stack.queues.deliveries.shards[0].toKey(`${rows[0].batchJobId}:lock`));
  const settled = await allSettled(ep.id, 12);
  expect(settled.map((row) => row.attempts.length)).toEqual(Array(12).fill(1));
  const ids = r.requests.map((q) => String(q.headers['webhook-id']));
  expect(ids.length).toBe(new Set(ids).size);
});

it('a batch run again after its worker died between logging a failed attempt and queueing its retry queues that retry', async () => {
  // One lane: the first request (the first event's) fails, and ends its turn.
  const settings = { endpointConcurrency: 1 };
  const lock = { workerOptions: { lockDuration: 1_000, stalledInterval: 500 } };
  const { r, ep, events, rows } = await fannedOut(3);
  r.reply = (_req, n) => (n === 1 ? { status: 500, body: 'boom' } : { status: 200, body: 'ok' });
  const retryId = deliveryJobId(events[0].id, ep.id);
  // The worker dies once the failed attempt is logged, before its retry is queued: the add never
  // happens (as when a kill -9 came while the records of its turn waited out a Postgres outage).
  let dying = false;
  const deliveriesQueue = retriesThrough(() => {
    dying = true;
    return new Promise<void>(() => undefined);
  });
  await stack.producer.del(stack.queues.deliveries.shards[0].toKey('stalled-check'));
  const dead = await stack.startDelivery(settings, { ...lock, queues: ['deliveries'], deliveriesQueue });
  await waitFor(() => dying, { what: 'the retry being queued' });
  // Killed: its lock is not renewed any more, and it takes no other job.
  await Promise.all(dead.map((w) => w.close(true)));
  expect(await stack.db.prisma.delivery.findUniqueOrThrow({ where: { id: rows[0].id } })).toMatchObject({ status: 'pending', attemptCount: 1 });
  expect(await stack.queues.deliveries.getJobState(retryId)).toBe('unknown');

  // The batch stalls, and its next run queues the retry (not the sweeper, minutes later).
  workers = await stack.startDelivery(settings, lock);
  const settled = await allSettled(ep.id, 3);
  expect(settled.map((row) => row.status)).toEqual(Array(3).fill('succeeded'));
  expect(settled[0].attempts.map((x) => [x.number, x.statusCode])).toEqual([
    [1, 500],
    [2, 200],
  ]);
  // Its first attempt and its retry, once.
  expect(r.requests.filter((q) => q.headers['webhook-id'] === events[0].id)).toHaveLength(2);
  expect((await stack.queues.deliveries.getJob(retryId))?.data).toEqual({ deliveryId: rows[0].id, endpointId: ep.id, eventId: events[0].id, priorAttempts: 1 });
});

it('a batch whose worker closes before it could queue a retry goes back, and its next run queues that retry', async () => {
  const settings = { endpointConcurrency: 1 };
  const { r, ep, events, rows } = await fannedOut(3);
  r.reply = (_req, n) => (n === 1 ? { status: 500, body: 'boom' } : { status: 200, body: 'ok' });
  const retryId = deliveryJobId(events[0].id, ep.id);
  // Redis refuses the retry (as in an outage) until the worker closes.
  let refused = 0;
  const deliveriesQueue = retriesThrough(() => {
    refused += 1;
    return Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false"));
  });
  const closing = await stack.startDelivery(settings, { queues: ['deliveries'], deliveriesQueue });
  // Everything sent, the first delivery's retry refused: the batch waits, holding its job.
  await waitFor(() => r.requests.length === 3 && refused > 0, { what: 'three requests and a refused retry' });
  await stack.stopWorkers(closing);
  expect(await stack.db.prisma.delivery.findUniqueOrThrow({ where: { id: rows[0].id } })).toMatchObject({ status: 'pending', attemptCount: 1 });
  expect(await stack.queues.deliveries.getJobState(retryId)).toBe('unknown');
  // Not completed (which would leave the delivery to no job until the sweeper): put back.
  expect(await stack.queues.deliveries.getJobState(rows[0].batchJobId!)).toBe('delayed');

  workers = await stack.startDelivery(settings);
  const settled = await allSettled(ep.id, 3);
  expect(settled.map((row) => row.attempts.map((x) => [x.number, x.statusCode]))).toEqual([
    [
      [1, 500],
      [2, 200],
    ],
    [[1, 200]],
    [[1, 200]],
  ]);
  expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual([events[0].id, events[1].id, events[2].id, events[0].id]);
});

it("a batch's first run queues no retry: only a run after an earlier one can owe one", async () => {
  const { r, ep, events, rows } = await fannedOut(2);
  // A row this batch names, attempted and pending, as only an earlier run of the batch leaves it.
  await stack.db.prisma.delivery.update({ where: { id: rows[0].id }, data: { attemptCount: 1, nextAttemptAt: new Date(Date.now() + 60_000) } });
  const batchId = rows[0].batchJobId!;
  let retries = 0;
  const deliveriesQueue = retriesThrough(async () => {
    retries += 1;
  });
  try {
    workers = await stack.startDelivery({}, { queues: ['deliveries'], deliveriesQueue });
    await waitFor(async () => (await stack.queues.deliveries.getJob(batchId))?.finishedOn, { what: 'the batch run' });
    expect((await stack.queues.deliveries.getJob(batchId))!.attemptsStarted).toBe(1);
    expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual([events[1].id]);
    expect(retries).toBe(0);
    expect(await stack.queues.deliveries.getJobState(deliveryJobId(events[0].id, ep.id))).toBe('unknown');
  } finally {
    // Not left for the sweeper tests below to find.
    await stack.db.prisma.delivery.update({ where: { id: rows[0].id }, data: { status: 'failed', nextAttemptAt: null } });
  }
});

it("keeps an endpoint's rate limit set after its batch was queued: one request per admission", async () => {
  const { r, ep } = await fannedOut(6);
  await stack.db.prisma.webhookEndpoint.update({ where: { id: ep.id }, data: { rateLimitPerSecond: 3 } });
  workers = await stack.startDelivery();
  await allSettled(ep.id, 6);
  const times = r.requests.map((q) => q.at).sort((a, b) => a - b);
  // 6 requests at 3 per second: a second window at least (window edges jitter a little).
  expect(times[5] - times[0]).toBeGreaterThanOrEqual(700);
  for (let i = 3; i < times.length; i++) expect(times[i] - times[i - 3]).toBeGreaterThanOrEqual(700);
});

it('a row its batch ran without (queued first by a fan-out that knew only some rows) gets a job of its own when fanned out again', async () => {
  const { r, ep, events, rows } = await fannedOut(2);
  const batchId = rows[0].batchJobId!;
  await stack.queues.deliveries.remove(batchId);
  await stack.queues.deliveries.add('batch', { endpointId: ep.id, deliveries: [{ deliveryId: rows[0].id, eventId: rows[0].eventId }] }, { jobId: batchId });
  workers = await stack.startDelivery();
  await waitFor(async () => (await stack.queues.deliveries.getJobState(batchId)) === 'completed', { what: 'the batch' });
  expect(r.requests).toHaveLength(1);
  // Published again (the outbox relay): the second row is not left to a batch that will not run again.
  await publishEvents(stack.db.pool, stack.queues.events, events);
  const settled = await allSettled(ep.id, 2);
  expect(settled.map((row) => row.attempts.length)).toEqual([1, 1]);
  expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual(events.map((e) => e.id));
});

it("a batch sends only the rows that name it: one moved to another batch (its fan-out found this one not queued yet) is that batch's to send", async () => {
  const { r, ep, rows } = await fannedOut(3);
  const batchId = rows[0].batchJobId!;
  const other = deliveryBatchJobId('dlv_moved');
  await stack.db.prisma.delivery.update({ where: { id: rows[1].id }, data: { batchJobId: other } });
  workers = await stack.startDelivery();
  await waitFor(async () => (await stack.queues.deliveries.getJobState(batchId)) === 'completed', { what: 'the batch' });
  expect(r.requests).toHaveLength(2);
  expect(await stack.db.prisma.delivery.findUniqueOrThrow({ where: { id: rows[1].id } })).toMatchObject({ status: 'pending', attemptCount: 0 });
  // Its own batch sends it.
  await stack.queues.deliveries.add('batch', { endpointId: ep.id, deliveries: [{ deliveryId: rows[1].id, eventId: rows[1].eventId }] }, { jobId: other });
  const settled = await allSettled(ep.id, 3);
  expect(settled.map((row) => row.attempts.length)).toEqual([1, 1, 1]);
  expect(r.requests).toHaveLength(3);
});

it('the sweeper counts a queued batch as the live job of its deliveries', async () => {
  const { ep, rows } = await fannedOut(2);
  const sweep = createSweeper({
    pool: stack.db.pool,
    deliveriesQueue: stack.queues.deliveries,
    schedule: [0],
    logger: createLogger({ service: 'test', level: 'silent' }),
  });
  // Long overdue, with the batch still queued: nothing to put back.
  expect(await sweep(new Date(Date.now() + 3_600_000))).toEqual({ checked: 2, requeued: 0 });
  // The batch lost: each delivery gets a job of its own.
  await stack.queues.deliveries.remove(rows[0].batchJobId!);
  expect(await sweep(new Date(Date.now() + 3_600_000))).toEqual({ checked: 2, requeued: 2 });
  for (const row of rows) expect(((await stack.queues.deliveries.getJob(deliveryJobId(row.eventId, ep.id)))!.data as DeliveryJob).deliveryId).toBe(row.id);
});

it('the sweeper puts back a retry a batch could not queue on what is left of its schedule, whatever its batch', async () => {
  const { ep, rows } = await fannedOut(2);
  // The first attempt made (in the batch, still queued) and recorded, its retry never queued
  // (Redis refused it, or the process died first).
  await stack.db.prisma.delivery.update({ where: { id: rows[0].id }, data: { attemptCount: 1, nextAttemptAt: new Date(Date.now() - 1_000) } });
  const sweep = createSweeper({
    pool: stack.db.pool,
    deliveriesQueue: stack.queues.deliveries,
    schedule: [0, 50, 100],
    logger: createLogger({ service: 'test', level: 'silent' }),
  });
  // The batch never sends an attempted delivery again: it is not the retry's live job.
  expect(await sweep(new Date(Date.now() + 3_600_000))).toMatchObject({ requeued: 1 });
  const retry = (await stack.queues.deliveries.getJob(deliveryJobId(rows[0].eventId, ep.id)))!;
  expect(retry.data).toEqual({ deliveryId: rows[0].id, endpointId: ep.id, eventId: rows[0].eventId, priorAttempts: 1 });
  expect(retry.opts.attempts).toBe(2);
});
