// Fan-out in bulk, against real Postgres and Redis: the events of concurrent jobs become one
// multi-row insert, one read of pairs that existed, and one addBulk.
import { createEvent, idAt, newId } from '@trackway/domain';
import { waitFor } from '@trackway/testing';
import { type DeliveryBatchJob, type DeliveryJob, JOB_BATCH, deliveryJobId, deliveryJobOptions } from '@trackway/queues';
import { batchJobIds, createFanOut } from '../src/fanout';
import { type Harness, countingPool, startHarness } from './support';

const SCHEDULE = [0, 100, 200];
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());
afterEach(async () => {
  await h.db.prisma.webhookEndpoint.updateMany({ data: { enabled: false } });
  h.endpoints.clear();
});

function fanOutWith(pool = countingPool(h.db.pool)) {
  let addBulkCalls = 0;
  const deliveriesQueue = new Proxy(h.deliveries, {
    get: (target, prop, receiver) =>
      prop === 'addBulk'
        ? (...args: Parameters<typeof target.addBulk>) => {
            addBulkCalls += 1;
            return target.addBulk(...args);
          }
        : Reflect.get(target, prop, receiver),
  });
  const fanOut = createFanOut({ pool, endpoints: h.endpoints, deliveriesQueue, schedule: SCHEDULE });
  return { fanOut, pool, addBulkCalls: () => addBulkCalls };
}

/** A fan-out whose queue's add and addBulk go through `through`, given the real call. */
function fanOutEnqueuing(through: (enqueue: () => Promise<unknown>) => Promise<unknown>) {
  const deliveriesQueue = new Proxy(h.deliveries, {
    get: (target, prop, receiver) =>
      prop === 'add' || prop === 'addBulk'
        ? (...args: unknown[]) => through(() => (Reflect.get(target, prop, receiver) as (...a: unknown[]) => Promise<unknown>).apply(target, args))
        : Reflect.get(target, prop, receiver),
  });
  return createFanOut({ pool: h.db.pool, endpoints: h.endpoints, deliveriesQueue, schedule: SCHEDULE });
}

const jobOf = (eventId: string, endpointId: string) => h.deliveries.getJob(deliveryJobId(eventId, endpointId));

it('writes the events of concurrent jobs with one insert and one addBulk', async () => {
  const endpoints = [await h.endpoint(), await h.endpoint()];
  const jobs = [await h.events(4), await h.events(4), await h.events(4)];
  const { fanOut, pool, addBulkCalls } = fanOutWith();

  const results = await Promise.all(jobs.map((events) => fanOut(events)));

  expect(results).toEqual([{ deliveries: 8 }, { deliveries: 8 }, { deliveries: 8 }]);
  expect(pool.count('deliveries-fan-out')).toBe(1);
  expect(pool.count('deliveries-fan-out-pending')).toBe(0); // every pair was new
  expect(addBulkCalls()).toBe(1);
  // Each endpoint's twelve first attempts travel in one batch job, in event order.
  const events = jobs.flat().sort((a, b) => (a.id < b.id ? -1 : 1));
  for (const endpointId of endpoints) {
    const rows = await Promise.all(events.map((event) => h.db.prisma.delivery.findFirstOrThrow({ where: { eventId: event.id, endpointId } })));
    for (const [i, row] of rows.entries())
      expect(row).toMatchObject({ status: 'pending', eventType: events[i].type, attemptCount: 0, batchJobId: rows[0].batchJobId });
    // Named by a fresh id (not after a delivery: delivery ids are derived from their pair).
    expect(rows[0].batchJobId).toMatch(/^dlv_[0-9A-Z]{26}-batch$/);
    expect(rows.map((row) => row.id)).not.toContain(rows[0].batchJobId!.replace(/-batch$/, ''));
    const job = await h.deliveries.getJob(rows[0].batchJobId!);
    expect(job?.data).toEqual({ endpointId, deliveries: rows.map((row) => ({ deliveryId: row.id, eventId: row.eventId })) });
    expect(job?.opts).toMatchObject({ attempts: 3, backoff: deliveryJobOptions(SCHEDULE, '').backoff });
    for (const event of events) expect(await jobOf(event.id, endpointId)).toBeUndefined();
  }
  expect(await h.deliveries.shards[0].count()).toBe(2);
});

it('batches only what a batch may carry: one job per endpoint and JOB_BATCH.deliveries, a lone delivery and a rate-limited endpoint on their own', () => {
  const pair = (id: string, endpoint: string, rateLimitPerSecond: number | null = null) => ({ id, endpoint: { id: endpoint, rateLimitPerSecond } });
  const cases: Array<[string, Array<ReturnType<typeof pair>>, Array<string | null>]> = [
    ['nothing', [], []],
    ['a lone delivery', [pair('d1', 'a')], [null]],
    ['two of one endpoint', [pair('d1', 'a'), pair('d2', 'a')], ['d1-batch', 'd1-batch']],
    [
      'interleaved endpoints',
      [pair('d1', 'a'), pair('d2', 'b'), pair('d3', 'a'), pair('d4', 'b'), pair('d5', 'c')],
      ['d1-batch', 'd2-batch', 'd1-batch', 'd2-batch', null],
    ],
    ['a rate-limited endpoint', [pair('d1', 'a', 5), pair('d2', 'a', 5)], [null, null]],
  ];
  // Named by the caller's names (here: after the group's first pair; fresh ids in the fan-out).
  const after = (pairs: Array<{ id: string }>) => (first: number) => pairs[first].id;
  for (const [what, pairs, expected] of cases) expect([what, batchJobIds(pairs, after(pairs))]).toEqual([what, expected]);
  // JOB_BATCH.deliveries at most per job; a last lone one on its own.
  const many = Array.from({ length: JOB_BATCH.deliveries * 2 + 1 }, (_, i) => pair(`d${i}`, 'a'));
  const ids = batchJobIds(many, after(many));
  expect(new Set(ids.slice(0, JOB_BATCH.deliveries))).toEqual(new Set(['d0-batch']));
  expect(new Set(ids.slice(JOB_BATCH.deliveries, JOB_BATCH.deliveries * 2))).toEqual(new Set([`d${JOB_BATCH.deliveries}-batch`]));
  expect(ids.at(-1)).toBeNull();
});

it('queues a first attempt under one job id whoever queues it: a batch fanned out again is the same job, and comes back if it was lost', async () => {
  const endpointId = await h.endpoint();
  const [a, b, c] = await h.events(3);
  const { fanOut } = fanOutWith();
  await h.deliveries.shards[0].obliterate({ force: true });
  await fanOut([a, b, c]);
  const rows = await h.db.prisma.delivery.findMany({ where: { endpointId }, orderBy: { eventId: 'asc' } });
  const batch = { endpointId, deliveries: rows.map((r) => ({ deliveryId: r.id, eventId: r.eventId })) };
  expect((await h.deliveries.getJob(rows[0].batchJobId!))?.data).toEqual(batch);
  // Published again, in another order, by two processes at once: the same job, not a second one.
  await Promise.all([fanOut([c, b, a]), fanOutWith().fanOut([b, a, c])]);
  expect(await h.deliveries.shards[0].count()).toBe(1);
  // Lost (a Redis without persistence restarted, or the fan-out died before queueing it): its
  // rows move to a fresh batch, queued with them (never the lost id again: a fan-out knows only
  // its own events' rows).
  await h.deliveries.shards[0].obliterate({ force: true });
  expect(await fanOut([a, b, c])).toEqual({ deliveries: 3 });
  const batchOf = async () => {
    const now = await h.db.prisma.delivery.findMany({ where: { endpointId }, orderBy: { eventId: 'asc' } });
    expect(new Set(now.map((r) => r.batchJobId)).size).toBe(1);
    return now[0].batchJobId!;
  };
  const moved = await batchOf();
  expect(moved).not.toBe(rows[0].batchJobId);
  expect((await h.deliveries.getJob(moved))?.data).toEqual(batch);
  expect(await h.deliveries.getJob(rows[0].batchJobId!)).toBeUndefined();
  for (const event of [a, b, c]) expect(await jobOf(event.id, endpointId)).toBeUndefined();
  // A delivery attempted already (in a batch) is queued under its own id, as its retry: on what is
  // left of its schedule ([0, 50, 100]: two), when its next attempt is due.
  const due = Date.now() + 60_000;
  await h.db.prisma.delivery.update({ where: { id: rows[1].id }, data: { attemptCount: 1, nextAttemptAt: new Date(due) } });
  await h.deliveries.shards[0].obliterate({ force: true });
  await fanOut([a, b, c]);
  const again = (await h.db.prisma.delivery.findMany({ where: { endpointId, attemptCount: 0 } }))[0].batchJobId!;
  expect(again).not.toBe(moved);
  expect(((await h.deliveries.getJob(again))!.data as DeliveryBatchJob).deliveries).toEqual([batch.deliveries[0], batch.deliveries[2]]);
  const retry = (await jobOf(b.id, endpointId))!;
  expect(retry.data).toEqual({ deliveryId: rows[1].id, endpointId, eventId: b.id, priorAttempts: 1 });
  expect(retry.opts.attempts).toBe(2);
  expect(retry.timestamp + (retry.opts.delay ?? 0)).toBeGreaterThan(due - 5_000);
});

it('enqueues pairs that existed and are still pending (a crash between insert and enqueue), and only those', async () => {
  const endpointId = await h.endpoint();
  const [stranded, done, replaying, fresh] = await h.events(4);
  const row = (eventId: string, data: object = {}) =>
    h.db.prisma.delivery.create({ data: { id: newId('delivery'), eventId, endpointId, eventType: 'conversion.approved', ...data } });
  const strandedRow = await row(stranded.id);
  await row(done.id, { status: 'succeeded', attemptCount: 1 });
  await row(replaying.id, { replayCount: 1 }); // a replay in flight has its own job
  const { fanOut, pool } = fanOutWith();

  expect(await fanOut([stranded, done, replaying, fresh])).toEqual({ deliveries: 2 });

  expect(pool.count('deliveries-fan-out-pending')).toBe(1);
  expect(((await jobOf(stranded.id, endpointId))!.data as DeliveryJob).deliveryId).toBe(strandedRow.id);
  // The one new row of its batch: a batch job of one.
  const freshRow = await h.db.prisma.delivery.findFirstOrThrow({ where: { eventId: fresh.id, endpointId } });
  expect((await h.deliveries.getJob(freshRow.batchJobId!))?.data).toEqual({ endpointId, deliveries: [{ deliveryId: freshRow.id, eventId: fresh.id }] });
  expect(await jobOf(done.id, endpointId)).toBeUndefined();
  expect(await jobOf(replaying.id, endpointId)).toBeUndefined();
  expect(await h.db.prisma.delivery.count({ where: { endpointId } })).toBe(4);
});

it('fans an event out once, however often it is published, in one batch or in two', async () => {
  const endpointId = await h.endpoint();
  const [event] = await h.events(1);
  const { fanOut } = fanOutWith();
  await Promise.all([fanOut([event]), fanOut([event])]);
  await fanOut([event]);
  expect(await h.db.prisma.delivery.count({ where: { eventId: event.id } })).toBe(1);
  expect(
    (await h.deliveries.shards[0].getJobs(['waiting', 'delayed', 'prioritized'])).filter((j) => (j.data as DeliveryJob).eventId === event.id),
  ).toHaveLength(1);
  expect(await jobOf(event.id, endpointId)).toBeDefined();
});

it('sends webhook.test only to the endpoint it names, over the row the API wrote', async () => {
  const named = await h.endpoint();
  const other = await h.endpoint();
  const event = createEvent('webhook.test', { endpoint_id: named });
  await h.db.prisma.$transaction(async (tx) => {
    await tx.outboxEvent.create({ data: { id: event.id, type: event.type, payload: event as never } });
    await tx.delivery.create({ data: { id: newId('delivery'), eventId: event.id, endpointId: named, eventType: event.type } });
  });
  const { fanOut } = fanOutWith();
  expect(await fanOut([event])).toEqual({ deliveries: 1 });
  expect(await jobOf(event.id, named)).toBeDefined();
  expect(await jobOf(event.id, other)).toBeUndefined();
  expect(await h.db.prisma.delivery.count({ where: { eventId: event.id } })).toBe(1);
});

it('a bad event fails only its own job: its neighbours in the batch are written and queued', async () => {
  const endpointId = await h.endpoint();
  const [good] = await h.events(1);
  // Of a time no partition holds yet (400 days ahead): its delivery row cannot be written.
  const orphan = { ...createEvent('conversion.approved', {}), id: idAt('event', new Date(Date.now() + 400 * 86_400_000)) };
  const { fanOut } = fanOutWith();
  const [ok, bad] = await Promise.allSettled([fanOut([good]), fanOut([orphan])]);
  expect(ok).toEqual({ status: 'fulfilled', value: { deliveries: 1 } });
  expect(bad).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ code: '23514' }) });
  expect(await jobOf(good.id, endpointId)).toBeDefined();
  expect(await jobOf(orphan.id, endpointId)).toBeUndefined();
});

it('two processes fanning out the same events in opposite orders do not deadlock', async () => {
  await h.endpoint();
  await h.endpoint();
  for (let round = 0; round < 3; round++) {
    const events = await h.events(300);
    const [a, b] = [fanOutWith().fanOut, fanOutWith().fanOut];
    // Each pair is written by one of them, its batch queued by that one (and again by the other
    // if it looked before the writer had queued it: the same job).
    const [x, y] = await Promise.all([a(events), b([...events].reverse())]);
    expect(x.deliveries + y.deliveries).toBeGreaterThanOrEqual(600);
    expect(await h.db.prisma.delivery.count({ where: { eventId: { in: events.map((e) => e.id) } } })).toBe(600);
  }
});

it('loads an endpoint without the reserved headers a row may hold (stored before the api refused them): they never override the signature', async () => {
  const { sealHeaders } = await import('@trackway/domain');
  const { box } = await import('./support');
  const id = await h.endpoint();
  await h.db.prisma.webhookEndpoint.update({
    where: { id },
    data: { sealedHeaders: sealHeaders(box, { 'Content-Type': 'text/plain', 'Webhook-Signature': 'v1,forged', 'X-Team': 'growth' }) },
  });
  h.endpoints.clear();
  expect((await h.endpoints.get(id))?.headers).toEqual({ 'X-Team': 'growth' });
});

/** Whether a pending, never attempted row is carried by a job that will send it: the batch its row names, or its own. */
async function carried(row: { id: string; eventId: string; endpointId: string; batchJobId: string | null }) {
  const own = await jobOf(row.eventId, row.endpointId);
  if (own) return 'own job';
  const batch = row.batchJobId ? await h.deliveries.getJob(row.batchJobId) : undefined;
  return (batch?.data as DeliveryBatchJob | undefined)?.deliveries.some((d) => d.deliveryId === row.id) ? 'its batch' : 'nothing';
}

it("a batch whose addBulk failed, fanned out again by its events' jobs one by one: every row is carried by the job its row names", async () => {
  const endpointId = await h.endpoint();
  const [a, b, c, d] = await h.events(4);
  // Two events jobs fanned out together (one insert, one batch X for all four rows); Redis
  // refused the addBulk ("Stream isn't writeable"): both jobs fail, their rows stay, naming X.
  const refusing = fanOutEnqueuing(() => Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false")));
  const failed = await Promise.allSettled([refusing([a, b]), refusing([c, d])]);
  expect(failed.map((f) => f.status)).toEqual(['rejected', 'rejected']);
  const before = await h.db.prisma.delivery.findMany({ where: { endpointId }, orderBy: { eventId: 'asc' } });
  expect(new Set(before.map((row) => row.batchJobId))).toEqual(new Set([before[0].batchJobId]));
  // Each job retried on its own (its backoff, another worker): the first queues a batch for its
  // rows; the second must not leave its rows to a batch that does not carry them.
  const { fanOut } = fanOutWith();
  expect(await fanOut([a, b])).toEqual({ deliveries: 2 });
  expect(await fanOut([c, d])).toEqual({ deliveries: 2 });
  const rows = await h.db.prisma.delivery.findMany({ where: { endpointId }, orderBy: { eventId: 'asc' } });
  expect(await Promise.all(rows.map(carried))).toEqual(['its batch', 'its batch', 'its batch', 'its batch']);
  // Published again (the outbox relay): nothing more is queued, each row still carried once.
  await fanOut([a, b, c, d]);
  expect(await Promise.all(rows.map(carried))).toEqual(['its batch', 'its batch', 'its batch', 'its batch']);
  const queued = await h.deliveries.shards[0].getJobs(['waiting', 'delayed', 'prioritized']);
  expect(queued.filter((job) => job.data.endpointId === endpointId)).toHaveLength(2);
});

it('a fan-out that finds a batch not queued yet (its writer is between insert and addBulk) and queues its own rows: each row carried once', async () => {
  const endpointId = await h.endpoint();
  const [a, b, c, d] = await h.events(4);
  // The first fan-out (all four events) has written its rows and not queued its batch yet.
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const slow = fanOutEnqueuing(async (enqueue) => {
    await held;
    return enqueue();
  });
  const first = slow([a, b, c, d]);
  await waitFor(async () => (await h.db.prisma.delivery.count({ where: { endpointId } })) === 4 || null, { what: 'the rows' });
  // Another process fans out two of the events (published again): their batch is not queued yet.
  expect(await fanOutWith().fanOut([a, b])).toEqual({ deliveries: 2 });
  release();
  expect(await first).toEqual({ deliveries: 4 });
  const rows = await h.db.prisma.delivery.findMany({ where: { endpointId }, orderBy: { eventId: 'asc' } });
  expect(await Promise.all(rows.map(carried))).toEqual(['its batch', 'its batch', 'its batch', 'its batch']);
});
