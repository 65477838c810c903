// Fan-out in bulk, against real Postgres and Redis: the events of concurrent jobs become one
// multi-row insert, one read of pairs that existed, and one addBulk.
import { createEvent, newId } from '@trackway/domain';
import { deliveryJobId, deliveryJobOptions } from '@trackway/queues';
import { createFanOut } from '../src/fanout';
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
  for (const event of jobs.flat()) {
    for (const endpointId of endpoints) {
      const row = await h.db.prisma.delivery.findUniqueOrThrow({ where: { eventId_endpointId: { eventId: event.id, endpointId } } });
      expect(row).toMatchObject({ status: 'pending', eventType: event.type, attemptCount: 0 });
      const job = await jobOf(event.id, endpointId);
      expect(job?.data).toEqual({ deliveryId: row.id, endpointId, eventId: event.id });
      expect(job?.opts).toMatchObject({ attempts: 3, backoff: deliveryJobOptions(SCHEDULE, '').backoff });
    }
  }
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
  expect((await jobOf(stranded.id, endpointId))?.data.deliveryId).toBe(strandedRow.id);
  expect(await jobOf(fresh.id, endpointId)).toBeDefined();
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
  expect((await h.deliveries.getJobs(['waiting', 'delayed', 'prioritized'])).filter((j) => j.data.eventId === event.id)).toHaveLength(1);
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
  const orphan = createEvent('conversion.approved', {}); // never written to the outbox: a foreign-key violation
  const { fanOut } = fanOutWith();
  const [ok, bad] = await Promise.allSettled([fanOut([good]), fanOut([orphan])]);
  expect(ok).toEqual({ status: 'fulfilled', value: { deliveries: 1 } });
  expect(bad).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ code: '23503' }) });
  expect(await jobOf(good.id, endpointId)).toBeDefined();
  expect(await jobOf(orphan.id, endpointId)).toBeUndefined();
});

it('two processes fanning out the same events in opposite orders do not deadlock', async () => {
  await h.endpoint();
  await h.endpoint();
  for (let round = 0; round < 3; round++) {
    const events = await h.events(300);
    const [a, b] = [fanOutWith().fanOut, fanOutWith().fanOut];
    await expect(Promise.all([a(events), b([...events].reverse())])).resolves.toEqual([{ deliveries: 600 }, { deliveries: 600 }]);
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
