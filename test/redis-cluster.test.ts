// The queues on a real Redis Cluster started here (redis-server --cluster-enabled, spare ports):
// three masters, each with a replica. Each queue (and each delivery shard) has a hash tag of its
// own, so the pipeline's keys land on every master; a master killed mid-run is replaced by its
// replica, the pipeline goes on, and what the failover may lose (docs/operations.md, "Redis
// Cluster") is all it loses: with REDIS_WAIT_REPLICAS=1 no postback answered 202 is lost, and
// nothing is attributed or delivered twice.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  createProducerConnection,
  createQueue,
  createWorkerConnection,
  deliveryShardOf,
  publishInvalidation,
  queueKeyPrefix,
  subscribeInvalidations,
  whenReady,
} from '@trackway/queues';
import { type Receiver, startReceiver, waitFor } from '@trackway/testing';
import { Worker } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import request from 'supertest';
import { createSweeper } from '../services/delivery/src/housekeeping';
import { createIsolation } from '../services/delivery/src/isolation';
import { createProgram } from './support/program';
import { type Stack, startStack } from './support/stack';

const base = 17_000 + Math.floor(Math.random() * 2_000);
const ports = Array.from({ length: 6 }, (_, i) => base + i);
const dir = mkdtempSync(path.join(os.tmpdir(), 'cluster-'));
const nodes = new Map<number, ChildProcess>();
const connections: Redis[] = [];
const seeds = ports.map((p) => `redis://127.0.0.1:${p}`).join(',');
const SHARDS = 3;

const cli = (port: number, ...args: string[]) =>
  execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
const alive = (port: number) => {
  try {
    return cli(port, 'ping').trim() === 'PONG';
  } catch {
    return false;
  }
};
/** The cluster as a live node sees it: each master's port, slot ranges and replica ports. */
function topology() {
  const from = ports.find((p) => nodes.get(p)?.exitCode === null && alive(p))!;
  const lines = cli(from, 'cluster', 'nodes')
    .trim()
    .split('\n')
    .map((line) => line.split(' '));
  const portOf = (address: string) => Number(address.split('@')[0].split(':')[1]);
  const masters = lines.filter((l) => l[2].includes('master') && !l[2].includes('fail'));
  return masters.map((m) => ({
    port: portOf(m[1]),
    ranges: m.slice(8).map((r) => r.split('-').map(Number)) as number[][],
    replicas: lines.filter((l) => l[3] === m[0] && !l[2].includes('fail')).map((l) => portOf(l[1])),
  }));
}
const masterOf = (slot: number) => topology().find((m) => m.ranges.some(([from, to = from]) => slot >= from && slot <= to))!.port;
const slotOf = (key: string) => Number(cli(ports[0], 'cluster', 'keyslot', key).trim());

// Queues the pipeline writes to: the run's keys are on every master only if their tags are.
const PIPELINE_QUEUES = ['postbacks', 'clicks', 'events', 'deliveries', 'deliveries-1', 'deliveries-2'];
/**
 * A QUEUE_PREFIX whose queues cover the three masters, and whose postbacks queue (the one
 * killed) shares its master with neither the events queue nor a delivery shard: a failover there
 * tests the loss of acknowledged postbacks alone (what it does to events: docs/operations.md).
 */
function choosePrefix() {
  for (let i = 0; ; i++) {
    const prefix = `tw${base}-${i}`;
    const masters = new Map(PIPELINE_QUEUES.map((q) => [q, masterOf(slotOf(queueKeyPrefix(prefix, q)))]));
    const postbacks = masters.get('postbacks');
    const apart = ['events', 'deliveries', 'deliveries-1', 'deliveries-2'].every((q) => masters.get(q) !== postbacks);
    if (new Set(masters.values()).size === 3 && apart) return { prefix, postbacksMaster: postbacks! };
  }
}

/** A node (again, after a kill: its nodes.conf makes it rejoin, as a replica of whoever took its slots). */
const startNode = (port: number) =>
  nodes.set(
    port,
    spawn(
      'redis-server',
      [
        ...['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes'],
        ...['--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--dir', dir, '--dbfilename', `dump-${port}.rdb`],
        // A master unreachable for 1 s is failed over (the default is 15 s).
        ...['--cluster-node-timeout', '1000', '--save', '', '--appendonly', 'no'],
      ],
      { stdio: 'ignore' },
    ),
  );

beforeAll(async () => {
  for (const port of ports) startNode(port);
  await waitFor(() => ports.every(alive), { what: 'six redis nodes' });
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], {
    encoding: 'utf8',
  });
  await waitFor(
    () =>
      ports.every((p) => cli(p, 'cluster', 'info').includes('cluster_state:ok')) &&
      topology().every((m) => m.replicas.length === 1 && cli(m.replicas[0], 'info', 'replication').includes('master_link_status:up')),
    { timeoutMs: 20_000, what: 'the cluster to be ok, each master with a replica in sync' },
  );
}, 60_000);

afterAll(() => {
  for (const c of connections) c.disconnect();
  for (const n of nodes.values()) n.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const connect = (kind: 'producer' | 'worker') => {
  const c = kind === 'producer' ? createProducerConnection(seeds, { cluster: true }) : createWorkerConnection(seeds, { cluster: true });
  c.on('error', () => undefined);
  connections.push(c);
  return c;
};

it('runs a queue, a worker, the isolation scripts (keys beside their shard) and invalidation on the cluster', async () => {
  const prefix = `{tw-${base}}`;
  const producer = connect('producer');
  expect(await whenReady(producer, 10_000)).toBe(true);
  const queue = createQueue('postbacks', producer, prefix, () => undefined);
  const seen: string[] = [];
  const worker = new Worker('postbacks', async (job) => void seen.push(job.id!), {
    connection: connect('worker'),
    prefix: queueKeyPrefix(prefix, 'postbacks'),
  });
  try {
    for (let i = 0; i < 5; i++) await queue.add('postback', { n: i } as never, { jobId: `job-${i}` });
    await waitFor(() => seen.length === 5, { what: 'five jobs processed on the cluster' });
    expect(seen.sort()).toEqual(['job-0', 'job-1', 'job-2', 'job-3', 'job-4']);

    // The breaker/slot scripts touch three keys: legal only because they share their shard's tag.
    const isolation = createIsolation(connect('worker'), {
      prefix,
      shards: SHARDS,
      breakerThreshold: 1,
      breakerCooldownMs: 60_000,
      endpointConcurrency: 1,
      attemptTimeoutMs: 1_000,
    });
    // Two endpoints on each shard.
    const endpoints = Array.from({ length: SHARDS }, (_, k) =>
      Array.from({ length: 100 }, (_, i) => `ep_${i}`)
        .filter((id) => deliveryShardOf(id, SHARDS) === k)
        .slice(0, 2),
    )
      .flat()
      .sort();
    for (const [i, ep] of endpoints.entries()) {
      expect(await isolation.admit(ep, null, `t${i}`)).toEqual({ ok: true, probe: false });
      expect(await isolation.admit(ep, 2, `u${i}`)).toMatchObject({ ok: false, reason: 'concurrency' });
      expect(await isolation.finish(ep, `t${i}`, 'failed')).toBe('open');
    }
    expect(new Set(endpoints.map((ep) => deliveryShardOf(ep, SHARDS))).size).toBe(SHARDS);
    expect((await isolation.snapshot(10)).sort((a, b) => (a.endpoint < b.endpoint ? -1 : 1))).toEqual(
      endpoints.map((endpoint) => ({ endpoint, state: 'open' })),
    );

    const received: string[] = [];
    await subscribeInvalidations(connect('worker'), prefix, (kind, id) => received.push(`${kind}:${id}`)).ready;
    await publishInvalidation(producer, prefix, 'offer', 7);
    await waitFor(() => received.length === 1, { what: 'the invalidation' });
    expect(received).toEqual(['offer:7']);
  } finally {
    await worker.close();
    await queue.close();
  }
}, 60_000);

describe('the pipeline on the cluster', () => {
  let stack: Stack;
  let receiver: Receiver;
  let chosen: ReturnType<typeof choosePrefix>;
  const endpoints: Array<{ id: string; path: string }> = [];

  beforeAll(async () => {
    chosen = choosePrefix();
    stack = await startStack({ redis: { url: seeds, cluster: true }, prefix: chosen.prefix, deliveryShards: SHARDS, replicas: 1 });
    receiver = await startReceiver();
    // Endpoints until each delivery shard has one.
    for (let i = 0; new Set(endpoints.map((e) => deliveryShardOf(e.id, SHARDS))).size < SHARDS; i++) {
      const created = await stack.subscribe(`${receiver.url}/ep-${i}`, ['conversion.created']);
      endpoints.push({ id: created.id, path: `/hooks/ep-${i}` });
    }
    stack.startAttribution();
    await stack.startDelivery();
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  /** Each endpoint's deliveries as received: event id per webhook-id, every one counted. */
  const receivedBy = (endpointPath: string) => receiver.requests.filter((r) => r.path === endpointPath).map((r) => JSON.parse(r.body).id as string);

  it('attributes and delivers, with keys on every master and every delivery shard in use', async () => {
    const program = await createProgram(stack);
    const outcome = await program.postback({ order_id: 'first', amount: '10.00' });
    expect(outcome.status).toBe('accepted');
    await waitFor(() => endpoints.every((e) => receivedBy(e.path).length === 1), { what: 'the conversion delivered to every endpoint' });

    const cluster = stack.producer as unknown as Cluster;
    const masters = cluster.nodes('master');
    expect(masters).toHaveLength(3);
    for (const master of masters) {
      const [, keys] = await master.scan('0', 'MATCH', `{${chosen.prefix}:*`, 'COUNT', 10_000);
      expect(keys.length).toBeGreaterThan(0);
    }
    // A job completes after its attempt is recorded, a moment after the receiver has the request.
    const completed = async () => Promise.all(stack.queues.deliveries.shards.map(async (shard) => (await shard.getJobCounts('completed')).completed));
    await waitFor(async () => (await completed()).every((n) => n > 0), { what: 'a completed job on every delivery shard' });
    for (const n of await completed()) expect(n).toBeGreaterThan(0);
  }, 60_000);

  it('goes on after a master is killed mid-run (its replica promoted); no postback answered 202 is lost, nothing is done twice', async () => {
    const program = await createProgram(stack);
    const send = async (order: string) => {
      const res = await request(stack.ingest).get('/postback').query({ key: program.advertiser.postback_key, click_id: program.clickId, order_id: order });
      return { order, status: res.status, id: res.body.postback_id as string | undefined };
    };
    const killed = chosen.postbacksMaster;
    const replica = topology().find((m) => m.port === killed)!.replicas[0];
    const answers: Array<Awaited<ReturnType<typeof send>>> = [];
    // Four advertisers' servers at once, the master killed after the first 12 answers.
    let next = 0;
    const ORDERS = 48;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < ORDERS) {
          const order = `order-${next++}`;
          answers.push(await send(order));
          if (answers.length === 12) nodes.get(killed)!.kill('SIGKILL');
        }
      }),
    );
    await waitFor(() => topology().find((m) => m.port === replica), { timeoutMs: 20_000, what: 'the replica promoted to master' });
    await waitFor(() => cli(replica, 'cluster', 'info').includes('cluster_state:ok'), { timeoutMs: 20_000, what: 'the cluster ok again' });
    // Ingest waits for a replica (REDIS_WAIT_REPLICAS=1): until the failed node is back, as the
    // new master's replica, postbacks on that master are refused (503), not acknowledged unsafely.
    startNode(killed);
    await waitFor(() => alive(killed) && cli(killed, 'info', 'replication').includes('master_link_status:up'), {
      timeoutMs: 20_000,
      what: 'the killed node back as a replica',
    });
    // An advertiser retries what was not answered 202, until it is: a postback of the failover
    // whose job survived makes the retry a duplicate, never a second conversion.
    const refused = answers.filter((a) => a.status !== 202);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((a) => a.status === 503)).toBe(true);
    for (const a of refused)
      answers.push(
        await waitFor(
          async () => {
            const retried = await send(a.order);
            return retried.status === 202 ? retried : null;
          },
          { timeoutMs: 20_000, intervalMs: 200, what: `a 202 for ${a.order}` },
        ),
      );

    // Every postback answered 202 has its outcome: none was lost with its master.
    const accepted = answers.filter((a) => a.status === 202);
    await waitFor(async () => (await stack.db.prisma.postback.count({ where: { id: { in: accepted.map((a) => a.id!) } } })) === accepted.length, {
      timeoutMs: 30_000,
      what: 'an outcome for every postback answered 202',
    });
    // One conversion per order, whatever the retries.
    const conversions = await stack.db.prisma.conversion.groupBy({ by: ['orderId'], where: { advertiserId: program.advertiser.id }, _count: true });
    expect(conversions.map((c) => c._count)).toEqual(Array(ORDERS).fill(1));
    // The sweeper's tick (due any time): a delivery without a job would be put back.
    const sweep = createSweeper({
      pool: stack.db.pool,
      deliveriesQueue: stack.queues.deliveries,
      schedule: [0, 50, 100],
      logger: { warn: () => undefined } as never,
    });
    await sweep(new Date(), 0);
    // Every conversion delivered to every endpoint, once.
    const events = await stack.db.prisma.outboxEvent.findMany({ where: { type: 'conversion.created' }, select: { id: true } });
    expect(events).toHaveLength(ORDERS + 1);
    await waitFor(() => endpoints.every((e) => receivedBy(e.path).length >= events.length), { timeoutMs: 30_000, what: 'every conversion delivered' });
    for (const e of endpoints) expect(receivedBy(e.path).sort()).toEqual(events.map((ev) => ev.id).sort());
  }, 90_000);
});
