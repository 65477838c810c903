// QUEUE_PREFIX as a Redis Cluster hash tag, against a real three-node cluster started here
// (redis-server --cluster-enabled), through the project's own connection factories.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createQueue, createProducerConnection, createWorkerConnection, publishInvalidation, subscribeInvalidations, whenReady } from '@trackway/queues';
import { waitFor } from '@trackway/testing';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createIsolation } from '../services/delivery/src/isolation';

const base = 17_000 + Math.floor(Math.random() * 2_000);
const ports = [base, base + 1, base + 2];
const dir = mkdtempSync(path.join(os.tmpdir(), 'cluster-'));
const nodes: ChildProcess[] = [];
const connections: Redis[] = [];
const PREFIX = `{tw-${base}}`;
const seeds = ports.map((p) => `redis://127.0.0.1:${p}`).join(',');

beforeAll(async () => {
  for (const port of ports) {
    nodes.push(
      spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          path.join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: 'ignore' },
      ),
    );
  }
  const cli = (...args: string[]) => execFileSync('redis-cli', args, { encoding: 'utf8' });
  await waitFor(
    () =>
      ports.every((p) => {
        try {
          return cli('-p', String(p), 'ping').trim() === 'PONG';
        } catch {
          return false;
        }
      }),
    { what: 'three redis nodes' },
  );
  cli('--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes');
  await waitFor(() => ports.every((p) => cli('-p', String(p), 'cluster', 'info').includes('cluster_state:ok')), {
    timeoutMs: 20_000,
    what: 'the cluster to be ok',
  });
}, 60_000);

afterAll(() => {
  for (const c of connections) c.disconnect();
  for (const n of nodes) n.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const connect = (kind: 'producer' | 'worker') => {
  const c = kind === 'producer' ? createProducerConnection(seeds, { cluster: true }) : createWorkerConnection(seeds, { cluster: true });
  connections.push(c);
  return c;
};

it('runs queues, a worker, the isolation scripts and invalidation on a cluster with a hash-tag prefix', async () => {
  const producer = connect('producer');
  expect(await whenReady(producer, 10_000)).toBe(true);
  const queue = createQueue('postbacks', producer, PREFIX, () => undefined);
  const seen: string[] = [];
  const worker = new Worker('postbacks', async (job) => void seen.push(job.id!), { connection: connect('worker'), prefix: PREFIX });
  try {
    for (let i = 0; i < 5; i++) await queue.add('postback', { n: i } as never, { jobId: `job-${i}` });
    await waitFor(() => seen.length === 5, { what: 'five jobs processed on the cluster' });
    expect(seen.sort()).toEqual(['job-0', 'job-1', 'job-2', 'job-3', 'job-4']);

    // The breaker/slot scripts touch three keys: legal only because they share the hash tag.
    const isolation = createIsolation(connect('worker'), {
      prefix: PREFIX,
      breakerThreshold: 1,
      breakerCooldownMs: 60_000,
      endpointConcurrency: 1,
      attemptTimeoutMs: 1_000,
    });
    expect(await isolation.admit('ep_1', null, 't1')).toEqual({ ok: true, probe: false });
    expect(await isolation.admit('ep_1', 2, 't2')).toMatchObject({ ok: false, reason: 'concurrency' });
    expect(await isolation.finish('ep_1', 't1', 'failed')).toBe('open');
    expect(await isolation.snapshot(10)).toEqual([{ endpoint: 'ep_1', state: 'open' }]);

    const received: string[] = [];
    await subscribeInvalidations(connect('worker'), PREFIX, (kind, id) => received.push(`${kind}:${id}`)).ready;
    await publishInvalidation(producer, PREFIX, 'offer', 7);
    await waitFor(() => received.length === 1, { what: 'the invalidation' });
    expect(received).toEqual(['offer:7']);
  } finally {
    await worker.close();
    await queue.close();
  }
}, 60_000);
