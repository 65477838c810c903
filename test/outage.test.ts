// Invariant 9 under a real outage: the delivery workers reach Postgres through a TCP proxy that
// the test stops for longer than the whole retry schedule (0, 100 ms, 200 ms) while events keep
// flowing. Found in a fault run before this was fixed: database errors spent delivery attempts,
// the schedule ran out, jobs failed in BullMQ and their deliveries stayed `pending` in Postgres,
// never sent. Afterwards every event must be delivered, each delivery's attempt count must equal
// the requests its receiver got, and no delivery may be left pending or failed.
import { type ChildProcess, spawn } from 'node:child_process';
import { type Database, createDatabase } from '@trackway/db';
import { createEvent } from '@trackway/domain';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { createWorkerConnection } from '@trackway/queues';
import { startReceiver, waitFor } from '@trackway/testing';
import { type Stack, startStack } from './support/stack';
import { type TcpProxy, startTcpProxy } from './support/tcp-proxy';

let stack: Stack;
const receivers: Awaited<ReturnType<typeof startReceiver>>[] = [];
let proxy: TcpProxy;
let proxied: Database;
beforeAll(async () => {
  stack = await startStack();
  proxy = await startTcpProxy(Number(new URL(stack.db.url).port || 5432));
  const url = new URL(stack.db.url);
  url.port = String(proxy.port);
  proxied = createDatabase(url.toString(), { poolSize: 20 });
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await stack.stopWorkers();
  await proxied.prisma.$disconnect();
  await proxy.stop();
  await stack.close();
});

const deferredCount = async () =>
  (await stack.metrics.deliveries.get()).values.filter((v) => v.labels.result === 'deferred').reduce((sum, v) => sum + v.value, 0);
// The outage reached the delivery path: a job put back, or an attempt waiting to be logged.
const outageCount = async () =>
  (await stack.metrics.deliveries.get()).values
    .filter((v) => v.labels.result === 'deferred' || v.labels.result === 'record_retried')
    .reduce((sum, v) => sum + v.value, 0);

it('delivers every event after a Postgres outage longer than the retry schedule, spending no attempt on it', async () => {
  await stack.startDelivery({ schedule: [0, 100, 200], endpointConcurrency: 4 }, { database: proxied });
  const receiver = await startReceiver(() => ({ status: 200, delayMs: 30 }));
  const ep = await stack.subscribe(receiver.url, ['conversion.approved']);

  // Events written and published by the rest of the system (which still reaches Postgres): a
  // burst that leaves delivery jobs queued behind the endpoint's concurrency cap, then one every
  // 50 ms. The delivery service loses its database for 4 s once the first deliveries arrived.
  const events: string[] = [];
  const emit = async (count: number) => {
    const list = Array.from({ length: count }, (_, i) => createEvent('conversion.approved', { conversion: { id: `cnv_${events.length + i}` } }));
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, list));
    await publishEvents(stack.db.pool, stack.queues.events, list);
    events.push(...list.map((e) => e.id));
  };
  await emit(150);
  let flowing = true;
  const trickle = (async () => {
    while (flowing) {
      await emit(1);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  await waitFor(() => receiver.requests.length >= 20, { what: 'the first deliveries' });
  await proxy.stop();
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  await proxy.start();
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  flowing = false;
  await trickle;

  const where = { endpointId: ep.id };
  await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { ...where, status: 'succeeded' } })) === events.length, {
    timeoutMs: 60_000,
    intervalMs: 200,
    what: `all ${events.length} deliveries to succeed`,
  });

  // The outage reached the delivery path, and cost it no attempt.
  expect(await outageCount()).toBeGreaterThan(0);
  expect(new Set(receiver.requests.map((r) => r.headers['webhook-id']))).toEqual(new Set(events));
  const sent = new Map<string, number>();
  for (const r of receiver.requests) sent.set(String(r.headers['webhook-id']), (sent.get(String(r.headers['webhook-id'])) ?? 0) + 1);
  const deliveries = await stack.db.prisma.delivery.findMany({ where, include: { _count: { select: { attempts: true } } } });
  expect(deliveries).toHaveLength(events.length);
  for (const d of deliveries)
    expect({ event: d.eventId, attempts: d.attemptCount, logged: d._count.attempts }).toEqual({
      event: d.eventId,
      attempts: sent.get(d.eventId),
      logged: sent.get(d.eventId),
    });
  expect(await stack.db.prisma.delivery.count({ where: { ...where, status: { not: 'succeeded' } } })).toBe(0);
  const counts = () => stack.queues.deliveries.getJobCounts('failed', 'waiting', 'delayed', 'active');
  await waitFor(async () => Object.values(await counts()).every((n) => n === 0), { what: 'the deliveries queue to drain' }).catch(() => undefined);
  expect(await counts()).toEqual({ failed: 0, waiting: 0, delayed: 0, active: 0 });
  await receiver.close();
}, 120_000);

/** A redis-server of this test's own, on a spare port, that the test stops and starts again. */
function ownRedis(port: number) {
  let server: ChildProcess | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    start() {
      server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    },
    async stop() {
      const exited = new Promise((resolve) => server?.once('exit', resolve));
      server?.kill('SIGKILL');
      await exited;
    },
  };
}

it('delivers every event after its Redis for the breaker and slots went away, spending no attempt on it', async () => {
  await stack.stopWorkers();
  await stack.db.prisma.webhookEndpoint.updateMany({ data: { enabled: false } });
  const redis = ownRedis(19_000 + Math.floor(Math.random() * 2_000));
  redis.start();
  // Fails fast while that Redis is down, so the admission itself errs (not only waits).
  const isolationRedis = createWorkerConnection(redis.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
  await waitFor(() => isolationRedis.status === 'ready', { what: 'its own redis' });
  try {
    await stack.startDelivery({ schedule: [0, 100, 200], endpointConcurrency: 4 }, { isolationRedis });
    const receiver = await startReceiver(() => ({ status: 200, delayMs: 30 }));
    receivers.push(receiver);
    const ep = await stack.subscribe(receiver.url, ['conversion.approved']);
    const deferredBefore = await deferredCount();
    const events = Array.from({ length: 100 }, (_, i) => createEvent('conversion.approved', { conversion: { id: `cnv_r${i}` } }));
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, events));
    await publishEvents(stack.db.pool, stack.queues.events, events);
    await waitFor(() => receiver.requests.length >= 10, { what: 'the first deliveries' });
    await redis.stop();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    redis.start();

    await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { endpointId: ep.id, status: 'succeeded' } })) === events.length, {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'all 100 deliveries to succeed',
    });
    expect(await deferredCount()).toBeGreaterThan(deferredBefore);
    const sent = new Map<string, number>();
    for (const r of receiver.requests) sent.set(String(r.headers['webhook-id']), (sent.get(String(r.headers['webhook-id'])) ?? 0) + 1);
    expect([...sent.keys()].sort()).toEqual(events.map((e) => e.id).sort());
    const deliveries = await stack.db.prisma.delivery.findMany({ where: { endpointId: ep.id } });
    for (const d of deliveries) expect({ event: d.eventId, attempts: d.attemptCount }).toEqual({ event: d.eventId, attempts: sent.get(d.eventId) });
    expect(await stack.queues.deliveries.getJobCounts('failed')).toEqual({ failed: 0 });
  } finally {
    isolationRedis.disconnect();
    await redis.stop();
  }
}, 120_000);
