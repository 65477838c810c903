// Endpoint policies: disabled after failing for DELIVERY_DISABLE_AFTER, rate_limit_per_second,
// and the delivery log's retention.
import { createEvent, newId } from '@trackway/domain';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { type Receiver, TEST_REDIS_URL, startReceiver, waitFor } from '@trackway/testing';
import type { Worker } from 'bullmq';
import request from 'supertest';
import { createLogger } from '@trackway/logger';
import { createWorkerConnection, deliveryJobId } from '@trackway/queues';
import { Worker as BullWorker, QueueEvents } from 'bullmq';
import { HOUSEKEEPING, createSweeper, scheduleHousekeeping } from '../services/delivery/src/housekeeping';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let workers: Worker[] = [];
const receivers: Receiver[] = [];
beforeAll(async () => {
  stack = await startStack();
});
afterEach(async () => {
  await stack.db.prisma.webhookEndpoint.updateMany({ data: { enabled: false } });
  await stack.stopWorkers(workers);
  workers = [];
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});
afterAll(() => stack.close());

const createEndpoint = async (url: string, body: Record<string, unknown> = {}) => stack.subscribe(url, ['conversion.approved'], body);

async function emit(count = 1) {
  const events = Array.from({ length: count }, () => createEvent('conversion.approved', { conversion: { id: 'cnv_x' } }));
  await stack.db.prisma.$transaction((tx) => writeEvents(tx, events));
  await publishEvents(stack.db.pool, stack.queues.events, events);
  return events;
}

it('disables an endpoint whose every attempt failed for DELIVERY_DISABLE_AFTER, and emits endpoint.disabled', async () => {
  workers = await stack.startDelivery({ disableAfterMs: 400, schedule: [0, 250, 250, 250, 250, 250] });
  const failing = await startReceiver(() => ({ status: 500 }));
  const watcher = await startReceiver();
  receivers.push(failing, watcher);
  const ep = await createEndpoint(failing.url);
  await createEndpoint(watcher.url, { event_types: ['endpoint.disabled'] });
  await emit();
  const disabled = await waitFor(
    async () => {
      const row = await stack.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: ep.id } });
      return row.enabled ? null : row;
    },
    { what: 'the endpoint to be disabled' },
  );
  expect(disabled.disabledReason).toMatch(/^Every attempt failed since /);
  // Disabled after ~400 ms of failures: the third attempt (at ~500 ms), not the last one.
  expect(failing.requests.length).toBeGreaterThanOrEqual(2);
  expect(failing.requests.length).toBeLessThan(6);
  await waitFor(() => watcher.requests.length === 1, { what: 'endpoint.disabled at the watcher' });
  expect(JSON.parse(watcher.requests[0].body)).toMatchObject({ type: 'endpoint.disabled', data: { endpoint: { id: ep.id, enabled: false } } });
});

it('a success clears the failing clock, so intermittent failures never disable an endpoint', async () => {
  workers = await stack.startDelivery({ disableAfterMs: 300, schedule: [0, 200, 200] });
  let n = 0;
  const flaky = await startReceiver(() => ({ status: ++n % 2 === 0 ? 200 : 500 }));
  receivers.push(flaky);
  const ep = await createEndpoint(flaky.url);
  for (let i = 0; i < 3; i++) {
    const [event] = await emit();
    await waitFor(async () => (await stack.db.prisma.delivery.findFirst({ where: { eventId: event.id, status: 'succeeded' } })) !== null, { what: 'delivery' });
  }
  const row = await stack.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: ep.id } });
  expect(row).toMatchObject({ enabled: true, failingSince: null });
});

it('spreads deliveries to an endpoint with rate_limit_per_second, without spending attempts', async () => {
  workers = await stack.startDelivery({ endpointConcurrency: 10 }, { concurrency: 20 });
  const r = await startReceiver();
  receivers.push(r);
  const ep = await createEndpoint(r.url, { rate_limit_per_second: 4 });
  const events = await emit(12);
  await waitFor(() => r.requests.length === 12, { timeoutMs: 15_000, what: '12 deliveries' });
  const times = r.requests.map((q) => q.at).sort((a, b) => a - b);
  // 12 requests at 4 per second need two more one-second windows after the first (receipt
  // times jitter by a few tens of milliseconds around the window edges).
  expect(times[11] - times[0]).toBeGreaterThanOrEqual(1_700);
  for (let i = 4; i < times.length; i++) expect(times[i] - times[i - 4]).toBeGreaterThanOrEqual(800);
  const where = { endpointId: ep.id, eventId: { in: events.map((e) => e.id) } };
  await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { ...where, status: 'succeeded' } })) === 12, { what: 'the log to settle' });
  const deliveries = await stack.db.prisma.delivery.findMany({ where });
  expect(deliveries.map((d) => d.attemptCount)).toEqual(Array(12).fill(1));
});

it('delivers a burst to an endpoint at its concurrency cap without parking a job, the cap holding across two workers', async () => {
  // Each worker runs 4 jobs at once, twice the endpoint's cap: the others wait their turn in-process.
  const r = await startReceiver(() => ({ status: 200, delayMs: 20 }));
  receivers.push(r);
  const ep = await createEndpoint(r.url);
  // A worker lets jobs wait for an endpoint once it has seen how long its attempts take (until
  // then they could be waiting behind a hanging one): each worker delivers a first event alone.
  const warm = async () => {
    const started = await stack.startDelivery({ endpointConcurrency: 2 }, { concurrency: 4 });
    const before = r.requests.length;
    await emit(2);
    await waitFor(() => r.requests.length === before + 2, { what: 'warm-up deliveries' });
    return started;
  };
  const first = await warm();
  const firstDeliveries = first.find((w) => w.name === 'deliveries')!;
  await firstDeliveries.pause();
  const second = await warm();
  firstDeliveries.resume();
  workers = [...first, ...second];
  r.requests.length = 0;
  r.maxActive = 0;
  const connection = createWorkerConnection(TEST_REDIS_URL);
  const queueEvents = new QueueEvents('deliveries', { connection, prefix: stack.queues.deliveries.shards[0].opts.prefix });
  await queueEvents.waitUntilReady();
  let parked = 0;
  queueEvents.on('delayed', () => {
    parked += 1;
  });
  try {
    const events = await emit(40);
    await waitFor(() => r.requests.length === 40, { timeoutMs: 20_000, what: '40 deliveries' });
    const where = { endpointId: ep.id, eventId: { in: events.map((e) => e.id) } };
    await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { ...where, status: 'succeeded' } })) === 40, { what: 'the log to settle' });
    expect(r.maxActive).toBeLessThanOrEqual(2);
    expect(parked).toBe(0);
    expect((await stack.db.prisma.delivery.findMany({ where })).map((d) => d.attemptCount)).toEqual(Array(40).fill(1));
  } finally {
    await queueEvents.close();
    connection.disconnect();
  }
});

describe('deliveries never stay pending with nothing left to run them', () => {
  it('keeps an attempt it cannot record yet, and records it once the database accepts it, without sending it twice', async () => {
    workers = await stack.startDelivery({ schedule: [0] });
    const r = await startReceiver();
    receivers.push(r);
    const ep = await createEndpoint(r.url);
    // A real database error while recording the attempt.
    await stack.db.prisma.$executeRawUnsafe(
      `CREATE FUNCTION refuse_attempts() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql`,
    );
    await stack.db.prisma.$executeRawUnsafe(
      'CREATE TRIGGER refuse_attempts BEFORE INSERT ON delivery_attempts FOR EACH ROW EXECUTE FUNCTION refuse_attempts()',
    );
    try {
      const [event] = await emit();
      await waitFor(() => r.requests.length === 1, { what: 'the attempt' });
      // While the database refuses the record, the delivery stays pending and nothing is re-sent.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const where = { eventId: event.id, endpointId: ep.id };
      expect(await stack.db.prisma.delivery.findFirstOrThrow({ where })).toMatchObject({ status: 'pending', attemptCount: 0 });
      expect(r.requests).toHaveLength(1);
      // A trigger on a partitioned table is dropped from every partition: it can deadlock with the
      // worker's attempt records (taking the partitions in another order); it is simply tried again.
      await waitFor(() =>
        stack.db.pool.query('DROP TRIGGER refuse_attempts ON delivery_attempts').then(
          () => true,
          (error: { code?: string }) => {
            if (error.code === '40P01') return false;
            throw error;
          },
        ),
      );
      const delivered = await waitFor(() => stack.db.prisma.delivery.findFirst({ where: { ...where, status: 'succeeded' }, include: { attempts: true } }), {
        what: 'the attempt recorded',
      });
      expect(delivered.attempts.map((a) => [a.number, a.statusCode])).toEqual([[1, 200]]);
      expect(r.requests).toHaveLength(1);
    } finally {
      await stack.db.prisma.$executeRawUnsafe('DROP TRIGGER IF EXISTS refuse_attempts ON delivery_attempts');
      await stack.db.prisma.$executeRawUnsafe('DROP FUNCTION IF EXISTS refuse_attempts()');
    }
  });

  it('replays a delivery left pending with no job (its worker died past the stall limit)', async () => {
    workers = await stack.startDelivery();
    const r = await startReceiver();
    receivers.push(r);
    const ep = await createEndpoint(r.url);
    const orphan = createEvent('conversion.approved', { conversion: { id: 'cnv_orphan' } });
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, [orphan]));
    const stuck = await stack.db.prisma.delivery.create({
      data: { id: newId('delivery'), eventId: orphan.id, endpointId: ep.id, eventType: orphan.type, status: 'pending' },
    });
    await request(stack.api).post(`/v1/deliveries/${stuck.id}/retry`).set(stack.auth).expect(202);
    await waitFor(async () => (await stack.db.prisma.delivery.findUniqueOrThrow({ where: { id: stuck.id } })).status === 'succeeded', { what: 'the replay' });
    expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual([orphan.id]);
  });

  it('lets only one of two simultaneous retries replay a delivery', async () => {
    workers = await stack.startDelivery({ schedule: [0] });
    let healthy = false;
    const r = await startReceiver(() => ({ status: healthy ? 200 : 500 }));
    receivers.push(r);
    const ep = await createEndpoint(r.url);
    const [event] = await emit();
    const dead = await waitFor(() => stack.db.prisma.delivery.findFirst({ where: { eventId: event.id, endpointId: ep.id, status: 'failed' } }), {
      what: 'the dead letter',
    });
    healthy = true;
    const answers = await Promise.all([1, 2].map(() => request(stack.api).post(`/v1/deliveries/${dead.id}/retry`).set(stack.auth)));
    expect(answers.map((a) => a.status).sort()).toEqual([202, 409]);
    await waitFor(async () => (await stack.db.prisma.delivery.findUniqueOrThrow({ where: { id: dead.id } })).status === 'succeeded', { what: 'the replay' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(r.requests).toHaveLength(2); // the failed first send, and one replay
  });

  it('the sweeper puts back a pending delivery whose job failed (outage errors spent its attempts) or is gone, and leaves live jobs alone', async () => {
    // Out of the way: a pending delivery without a job that the pruning test left behind.
    await stack.db.prisma.delivery.updateMany({ where: { status: 'pending' }, data: { status: 'failed' } });
    const r = await startReceiver();
    receivers.push(r);
    const ep = await createEndpoint(r.url);
    // Written to the outbox (not published): the deliveries below are all these events have.
    const [failedEvent, missingEvent, liveEvent] = [1, 2, 3].map(() => createEvent('conversion.approved', { conversion: { id: 'cnv_swept' } }));
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, [failedEvent, missingEvent, liveEvent]));
    const row = (eventId: string) =>
      stack.db.prisma.delivery.create({ data: { id: newId('delivery'), eventId, endpointId: ep.id, eventType: 'conversion.approved' } });
    const [failed, missing, live] = [await row(failedEvent.id), await row(missingEvent.id), await row(liveEvent.id)];
    const data = (d: { id: string; eventId: string }) => ({ deliveryId: d.id, endpointId: ep.id, eventId: d.eventId });
    // As in the fault run: every attempt of the job died on a database error, the job failed.
    await stack.queues.deliveries.add('conversion.approved', data(failed), { jobId: deliveryJobId(failedEvent.id, ep.id), attempts: 2 });
    const connection = createWorkerConnection(TEST_REDIS_URL);
    const broken = new BullWorker(
      'deliveries',
      async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      },
      { connection, prefix: stack.queues.deliveries.shards[0].opts.prefix },
    );
    await waitFor(async () => (await stack.queues.deliveries.getJobState(deliveryJobId(failedEvent.id, ep.id))) === 'failed', { what: 'the job to fail' });
    await broken.close();
    connection.disconnect();
    await stack.queues.deliveries.add('conversion.approved', data(live), { jobId: deliveryJobId(liveEvent.id, ep.id), delay: 3_600_000 });

    workers = await stack.startDelivery();
    const sweep = createSweeper({
      pool: stack.db.pool,
      deliveriesQueue: stack.queues.deliveries,
      schedule: [0, 50, 100],
      logger: createLogger({ service: 'test', level: 'silent' }),
    });
    expect(await sweep(new Date(Date.now() + 1_000), 0)).toEqual({ checked: 3, requeued: 2 });
    for (const d of [failed, missing]) {
      await waitFor(async () => (await stack.db.prisma.delivery.findUniqueOrThrow({ where: { id: d.id } })).status === 'succeeded', {
        what: `${d.id} delivered`,
      });
    }
    expect(new Set(r.requests.map((q) => q.headers['webhook-id']))).toEqual(new Set([failedEvent.id, missingEvent.id]));
    expect(await stack.db.prisma.delivery.findUniqueOrThrow({ where: { id: live.id } })).toMatchObject({ status: 'pending', attemptCount: 0 });
    expect(await stack.queues.deliveries.getJobState(deliveryJobId(liveEvent.id, ep.id))).toBe('delayed');
    // Nothing left to put back: a second pass only checks.
    expect(await sweep(new Date(Date.now() + 1_000), 0)).toEqual({ checked: 1, requeued: 0 });
    await stack.queues.deliveries.remove(deliveryJobId(liveEvent.id, ep.id));
  });

  it('runs the sweeper every minute and the pruning every hour as housekeeping job schedulers', async () => {
    await scheduleHousekeeping(stack.queues.housekeeping);
    const schedulers = await stack.queues.housekeeping.getJobSchedulers();
    expect(schedulers.map((j) => [j.key, j.name, Number(j.every)]).sort()).toEqual([
      [HOUSEKEEPING.prune.scheduler, 'prune', 3_600_000],
      [HOUSEKEEPING.sweep.scheduler, 'sweep', 60_000],
    ]);
    for (const { scheduler } of Object.values(HOUSEKEEPING)) await stack.queues.housekeeping.removeJobScheduler(scheduler);
    await stack.queues.housekeeping.obliterate({ force: true });
    workers = await stack.startDelivery({}, { queues: ['housekeeping'] });
    const job = await stack.queues.housekeeping.add('sweep', {});
    await waitFor(async () => (await stack.queues.housekeeping.getJob(job.id!))?.finishedOn, { what: 'the sweep' });
    expect((await stack.queues.housekeeping.getJob(job.id!))?.returnvalue).toEqual({ checked: expect.any(Number), requeued: 0 });
  });

  it('records an attempt whose response body holds a NUL byte', async () => {
    workers = await stack.startDelivery();
    const r = await startReceiver(() => ({ status: 200, body: 'accepted\u0000' }));
    receivers.push(r);
    const ep = await createEndpoint(r.url);
    const [event] = await emit();
    const delivery = await waitFor(
      () => stack.db.prisma.delivery.findFirst({ where: { eventId: event.id, endpointId: ep.id, status: 'succeeded' }, include: { attempts: true } }),
      { what: 'the delivery' },
    );
    expect(delivery.attempts.map((a) => a.responseBody)).toEqual(['accepted\uFFFD']);
    expect(r.requests).toHaveLength(1);
  });
});
