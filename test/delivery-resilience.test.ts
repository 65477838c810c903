// The delivery path through faults a review reproduced: a commit whose answer is lost, a shutdown
// during a Postgres outage, a job that stalled out, the isolation Redis going away.
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { type Database, createDatabase } from '@trackway/db';
import { createEvent } from '@trackway/domain';
import { createLogger } from '@trackway/logger';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { createProducerConnection, createWorkerConnection, deliveryJobId } from '@trackway/queues';
import { type Receiver, TEST_REDIS_URL, startReceiver, waitFor } from '@trackway/testing';
import { UnrecoverableError, Worker as BullWorker } from 'bullmq';
import { createSweeper } from '../services/delivery/src/housekeeping';
import request from 'supertest';
import { type Stack, startStack } from './support/stack';
import { type TcpProxy, startTcpProxy } from './support/tcp-proxy';

let stack: Stack;
const receivers: Receiver[] = [];
beforeAll(async () => {
  stack = await startStack();
});
afterEach(async () => {
  await stack.stopWorkers();
  await stack.db.prisma.webhookEndpoint.updateMany({ data: { enabled: false } });
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});
afterAll(() => stack.close());

const receiver = async (reply?: Receiver['reply']) => {
  const r = await startReceiver(reply);
  receivers.push(r);
  return r;
};
const endpoint = async (url: string) => stack.subscribe(url, ['conversion.approved']);
async function emit(count = 1) {
  const events = Array.from({ length: count }, (_, i) => createEvent('conversion.approved', { conversion: { id: `cnv_${i}` } }));
  await stack.db.prisma.$transaction((tx) => writeEvents(tx, events));
  await publishEvents(stack.db.pool, stack.queues.events, events);
  return events;
}
/** The port of the PostgreSQL under the test's database (TEST_DATABASE_URL's: not always 5432). */
const postgresPort = () => Number(new URL(stack.db.url).port || 5432);
const deliveryOf = (endpointId: string) => stack.db.prisma.delivery.findFirst({ where: { endpointId }, include: { attempts: true } });

it('logs one HTTP attempt once when the answer to its commit was lost', async () => {
  // A proxy in front of Postgres that drops the connection right after Postgres answered the
  // first attempt record: the commit happened, the worker does not know it.
  let armed = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(postgresPort(), '127.0.0.1');
    let recording = false;
    client.on('data', (chunk) => {
      if (armed && chunk.includes('attempts-record')) recording = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (recording) {
        armed = false;
        recording = false;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = new URL(stack.db.url);
  url.port = String((server.address() as net.AddressInfo).port);
  const proxied = createDatabase(url.toString(), { poolSize: 5 });
  try {
    await stack.startDelivery({}, { database: proxied });
    const r = await receiver();
    const ep = await endpoint(r.url);
    armed = true;
    await emit();
    await waitFor(async () => (await deliveryOf(ep.id))?.status === 'succeeded', { timeoutMs: 15_000, what: 'the delivery to succeed' });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const d = (await deliveryOf(ep.id))!;
    expect(armed).toBe(false); // the answer was dropped once
    expect(r.requests).toHaveLength(1);
    expect(d.attemptCount).toBe(1);
    expect(d.attempts.map((a) => [a.number, a.statusCode])).toEqual([[1, 200]]);
  } finally {
    await stack.stopWorkers();
    await proxied.prisma.$disconnect();
    server.close();
  }
}, 60_000);

it.each([
  ['', false],
  [', even when its endpoint was disabled meanwhile', true],
])(
  'records, after a shutdown during a Postgres outage, the 2xx it got, instead of sending again%s',
  async (_title, disable) => {
    const proxy: TcpProxy = await startTcpProxy(postgresPort());
    const url = new URL(stack.db.url);
    url.port = String(proxy.port);
    const proxied: Database = createDatabase(url.toString(), { poolSize: 5 });
    try {
      let workers = await stack.startDelivery({}, { database: proxied });
      let cutOnNext = true;
      const r = await receiver(() => {
        // Postgres goes away while the request is being answered: the attempt cannot be recorded.
        if (cutOnNext) {
          cutOnNext = false;
          void proxy.stop();
        }
        return { status: 200, delayMs: 100 };
      });
      const ep = await endpoint(r.url);
      const [event] = await emit();
      await waitFor(() => r.requests.length === 1, { what: 'the request' });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      // SIGTERM while the record is being retried: the job goes back carrying the result.
      await stack.stopWorkers(workers);
      expect(await stack.queues.deliveries.getJobState(deliveryJobId(event.id, ep.id))).toBe('delayed');
      // Every attempt is logged: one made before its endpoint was disabled too.
      if (disable) await request(stack.api).post(`/v1/webhook-endpoints/${ep.id}/disable`).set(stack.auth).expect(200);
      await proxy.start();
      workers = await stack.startDelivery({}, { database: proxied });
      const d = await waitFor(
        async () => {
          const row = await deliveryOf(ep.id);
          return row?.status === 'succeeded' ? row : null;
        },
        { timeoutMs: 20_000, what: 'the delivery to succeed' },
      );
      expect(r.requests).toHaveLength(1);
      expect(d.attempts.map((a) => [a.number, a.statusCode])).toEqual([[1, 200]]);
      await stack.stopWorkers(workers);
    } finally {
      await proxied.prisma.$disconnect();
      await proxy.stop();
    }
  },
  60_000,
);

it('sweeps a job that stalled out back with what is left of its schedule, not a new one', async () => {
  const schedule = [0, 50, 5_000];
  const workers = await stack.startDelivery({ schedule });
  const r = await receiver(() => ({ status: 500 }));
  const ep = await endpoint(r.url);
  const [event] = await emit();
  await waitFor(async () => (await deliveryOf(ep.id))?.attemptCount === 2, { what: 'two attempts' });
  await stack.stopWorkers(workers);
  // The job then fails as BullMQ fails a job found stalled more often than maxStalledCount.
  const jobId = deliveryJobId(event.id, ep.id);
  await (await stack.queues.deliveries.getJob(jobId))!.promote();
  const connection = createWorkerConnection(TEST_REDIS_URL);
  const stalling = new BullWorker(
    'deliveries',
    async () => {
      throw new UnrecoverableError('job stalled more than allowable limit');
    },
    { connection, prefix: stack.queues.deliveries.shards[0].opts.prefix },
  );
  await waitFor(async () => (await stack.queues.deliveries.getJobState(jobId)) === 'failed', { what: 'the job to fail' });
  await stalling.close();
  connection.disconnect();
  expect((await deliveryOf(ep.id))?.status).toBe('pending');
  const sweep = createSweeper({
    pool: stack.db.pool,
    deliveriesQueue: stack.queues.deliveries,
    schedule,
    logger: createLogger({ service: 'test', level: 'silent' }),
  });
  expect((await sweep(new Date(Date.now() + 60_000), 0)).requeued).toBe(1);
  await stack.startDelivery({ schedule: [0, 50, 100] });
  const d = await waitFor(
    async () => {
      const row = await deliveryOf(ep.id);
      return row?.status === 'failed' ? row : null;
    },
    { timeoutMs: 20_000, what: 'the dead letter' },
  );
  expect(d.attemptCount).toBe(schedule.length);
  expect(r.requests).toHaveLength(schedule.length);
}, 60_000);

it('puts jobs back when the isolation Redis goes away, with the fail-fast connection main.ts uses', async () => {
  const port = 16391;
  let server: ChildProcess | undefined;
  const start = () => {
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  };
  const stop = async () => {
    const exited = new Promise((resolve) => server?.once('exit', resolve));
    server?.kill('SIGKILL');
    await exited;
  };
  start();
  const isolationRedis = createProducerConnection(`redis://127.0.0.1:${port}`);
  isolationRedis.on('error', () => undefined);
  await waitFor(() => isolationRedis.status === 'ready', { what: 'the isolation Redis' });
  const deferred = async () => (await stack.metrics.deliveries.get()).values.filter((v) => v.labels.result === 'deferred').reduce((sum, v) => sum + v.value, 0);
  try {
    await stack.startDelivery({ endpointConcurrency: 4 }, { isolationRedis });
    const r = await receiver(() => ({ status: 200, delayMs: 30 }));
    const ep = await endpoint(r.url);
    await emit(100);
    await waitFor(() => r.requests.length >= 10, { what: 'the first deliveries' });
    const before = await deferred();
    await stop();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    // Nothing hangs on the missing Redis: the jobs went back without spending an attempt.
    expect((await deferred()) - before).toBeGreaterThan(0);
    expect((await stack.queues.deliveries.getJobCounts('active')).active).toBeLessThan(4);
    start();
    await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { endpointId: ep.id, status: 'succeeded' } })) === 100, {
      timeoutMs: 40_000,
      what: 'every delivery',
    });
    const attempts = await stack.db.prisma.deliveryAttempt.count({ where: { delivery: { endpointId: ep.id } } });
    expect(attempts).toBe(r.requests.length);
  } finally {
    await stack.stopWorkers();
    isolationRedis.disconnect();
    await stop();
  }
}, 90_000);
