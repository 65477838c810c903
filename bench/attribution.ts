// Postbacks through the attribution worker, against BullMQ's own cost.
//
// The stream: N postbacks (50,000; quick 5,000) for one advertiser and offer — 85 % new orders
// (70 % approved, 30 % pending), 10 % duplicates (an earlier postback sent again), 5 % status
// changes (pending → approved, approved → rejected) — every repeat at least a wave after its
// original, so its place in the queue follows it. Fresh, valid click ids.
// Baseline: a plain BullMQ worker with a no-op processor at the real worker's concurrency,
// draining N one-postback jobs (same queue options, payloads) under its own prefix.
// Measured: the real worker (createWorkers from services/attribution, defaults: concurrency
// 2000, batches of up to 500) in a process of its own (bench/worker-child.ts), draining
//   a) the stream as ingest enqueues it: sent over HTTP through the ingest handler at 32
//      connections (ingest puts the postbacks of one event-loop turn into one job);
//   b) the stream one postback per job (what ingest does when requests arrive one per turn);
//   c) (b) again with two worker processes (scaling), sharing the same concurrency (1,000 each):
//      more jobs in flight than a wave would let a repeat overtake its original across processes.
// (a) and (b) run twice each with report upkeep (as deployed: a conversion's report rows move in
// its transaction) and twice without it (the worker's reportUpkeep: false, BENCH_REPORT_UPKEEP=0:
// the baseline of what that upkeep costs), alternating with, without, without, with (a drift of
// the machine over the runs falls on both sides alike); the means are compared (target ≥ 0.90×).
// Quick: one pair each.
// The clock runs from the workers' start until the last outcome row is written. Verified:
// conversions = distinct orders, and the accepted / duplicate counts the stream implies.
import { newId } from '@trackway/domain';
import { type PostbackJob, chunk, createQueue, createWorkerConnection } from '@trackway/queues';
import { type Fixture, TEST_REDIS_URL, createFixture, deleteRedisPrefix, randomPrefix } from '@trackway/testing';
import { type Job, Worker } from 'bullmq';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import type { Redis } from 'ioredis';
import { STACK_SECRET, type Stack, startStack } from '../test/support/stack';
import { runHttpLoadInChild } from './http-load';
import {
  type Row,
  alternating,
  cleanupOnInterrupt,
  forkTs,
  machineNote,
  ms,
  nextMessage,
  once,
  rate,
  ratio,
  report,
  row,
  runBench,
  size,
  sleep,
  withDeadline,
} from './lib';

const N = size(Number(process.env.ATTRIBUTION_N ?? 50_000), 5_000);
const CONCURRENCY = Number(process.env.ATTRIBUTION_BENCH_CONCURRENCY ?? 2000);
// A repeat comes at least this many jobs after its original: more than are in flight at once.
const WAVE = Math.max(2_000, CONCURRENCY);
/** With and without report upkeep, alternating: this many pairs of each workload. */
const UPKEEP_PAIRS = size(2, 1);

interface Drained {
  perSecond: number;
  ok: boolean;
}

interface Stream {
  postbacks: PostbackJob[];
  orders: number;
  accepted: number;
  duplicates: number;
}

/** The postback mix, in queue order (see the header). */
function stream(stack: Stack, fx: Fixture, n: number, tag: string): Stream {
  const clickId = () => stack.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) });
  const base = (i: number, status: PostbackJob['status']): PostbackJob => ({
    postbackId: newId('postback'),
    advertiserId: fx.advertiserId,
    receivedAt: new Date().toISOString(),
    clickId: clickId(),
    orderId: `${tag}-${i}`,
    event: 'conversion',
    amount: '49.90',
    currency: 'USD',
    status,
  });
  const orders: PostbackJob[] = [];
  // Each order's status now, and where in the stream it was last sent: a repeat comes at least
  // a wave after the order was last sent, so no two postbacks of one order are near each other
  // (HTTP concurrency reorders neighbours).
  const status: PostbackJob['status'][] = [];
  const lastSent: number[] = [];
  const out: PostbackJob[] = [];
  let duplicates = 0;
  let changes = 0;
  const newOrders = Math.round(n * 0.85);
  const repeatable = (k: number) => k >= 0 && k < orders.length && out.length - lastSent[k] >= WAVE;
  for (let i = 0; out.length < n; i++) {
    if (i < newOrders) {
      const order = base(i, i % 10 < 7 ? 'approved' : 'pending');
      orders.push(order);
      status.push(order.status);
      lastSent.push(out.length);
      out.push(order);
    }
    const pool = orders.length - WAVE;
    if (pool <= 0) continue;
    const dup = (i * 7919) % pool;
    if (out.length < n && (i % 20 < 2 || i >= newOrders) && repeatable(dup)) {
      lastSent[dup] = out.length;
      out.push({ ...orders[dup], status: status[dup], postbackId: newId('postback') });
      duplicates += 1;
    }
    const change = (i * 104_729) % pool;
    if (out.length < n && (i % 20 === 5 || i >= newOrders) && changes < n * 0.05 && status[change] !== 'rejected' && repeatable(change)) {
      status[change] = status[change] === 'pending' ? 'approved' : 'rejected';
      lastSent[change] = out.length;
      out.push({ ...orders[change], status: status[change], postbackId: newId('postback') });
      changes += 1;
    }
    if (i > n * 10) throw new Error('could not build the postback stream');
  }
  return { postbacks: out, orders: orders.length, accepted: orders.length + changes, duplicates };
}

async function main() {
  const stack = await startStack();
  const basePrefix = randomPrefix();
  const connections: Redis[] = [];
  const children: ChildProcess[] = [];
  const baselineQueue = createQueue('postbacks', stack.producer, basePrefix, () => undefined);
  const cleanup = once(async () => {
    for (const c of children) c.kill('SIGKILL');
    await baselineQueue.close();
    for (const c of connections) c.disconnect();
    await deleteRedisPrefix(basePrefix);
    await stack.close();
  });
  cleanupOnInterrupt(cleanup);
  const rows: Row[] = [];
  let problems = 0;
  try {
    await withDeadline('attribution bench', size(480_000, 120_000), async () => {
      console.log(machineNote());
      console.log(`attribution bench: ${N} postbacks (85 % new orders, 10 % duplicates, 5 % status changes), worker concurrency ${CONCURRENCY}`);
      const addOnePerJob = async (queue: typeof baselineQueue, list: PostbackJob[]) => {
        for (const part of chunk(list, 1000))
          await queue.addBulk(part.map((p) => ({ name: 'postback', data: { postbacks: [p] }, opts: { jobId: p.postbackId } })));
      };

      // --- baseline: a no-op worker draining one-postback jobs -----------------------------
      const fx0 = await createFixture(stack.db.prisma);
      await addOnePerJob(baselineQueue, stream(stack, fx0, N, 'base').postbacks);
      const connection = createWorkerConnection(TEST_REDIS_URL);
      connections.push(connection);
      let done = 0;
      let resolveDone!: () => void;
      const finished = new Promise<void>((resolve) => (resolveDone = resolve));
      const started = performance.now();
      const noop = new Worker('postbacks', async () => ({ ok: true }), { connection, prefix: baselineQueue.opts.prefix, concurrency: CONCURRENCY });
      noop.on('completed', (_job: Job) => ++done >= N && resolveDone());
      await finished;
      const baselineRate = N / ((performance.now() - started) / 1000);
      await noop.close();
      console.log(`baseline no-op worker          ${rate(baselineRate, 'jobs/s')}`);

      // --- the real worker, in its own process(es) -----------------------------------------
      const drain = async (label: string, fx: Fixture, expected: Stream, processes: number, upkeep = true) => {
        const workers = Array.from({ length: processes }, () =>
          forkTs('bench/worker-child.ts', {
            BENCH_DATABASE_URL: stack.db.url,
            BENCH_PREFIX: stack.prefix,
            BENCH_CLICK_SECRET: STACK_SECRET,
            BENCH_QUEUES: 'postbacks',
            // The same jobs in flight in all, however many processes: never more than a wave.
            BENCH_CONCURRENCY: String(Math.ceil(CONCURRENCY / processes)),
            BENCH_REPORT_UPKEEP: upkeep ? '1' : '0',
          }),
        );
        children.push(...workers);
        await Promise.all(workers.map((w) => nextMessage(w, 'ready')));
        const t0 = performance.now();
        for (const w of workers) w.send({ type: 'start' });
        const total = expected.postbacks.length;
        let outcomes = 0;
        while (outcomes < total && performance.now() - t0 < size(120_000, 30_000)) {
          await sleep(25);
          outcomes = await stack.db.prisma.postback.count({ where: { advertiserId: fx.advertiserId } });
        }
        const elapsed = performance.now() - t0;
        const cpu = await Promise.all(
          workers.map(async (w) => {
            w.send({ type: 'stop' });
            return (await nextMessage<{ cpu: number }>(w, 'stopped')).cpu;
          }),
        );
        const perSecond = total / (elapsed / 1000);
        const conversions = await stack.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId } });
        const byStatus = await stack.db.prisma.postback.groupBy({ by: ['status'], where: { advertiserId: fx.advertiserId }, _count: true });
        const count = (s: string) => byStatus.find((b) => b.status === s)?._count ?? 0;
        const ok =
          outcomes === total && conversions === expected.orders && count('accepted') === expected.accepted && count('duplicate') === expected.duplicates;
        if (!ok) problems += 1;
        console.log(
          `${label.padEnd(44)} ${rate(perSecond, 'postbacks/s').padStart(18)}  ${total} in ${ms(elapsed)}; worker CPU ${(cpu.reduce((a, b) => a + b, 0) / elapsed).toFixed(2)} core; ` +
            `outcomes ${outcomes}, conversions ${conversions}/${expected.orders}, accepted ${count('accepted')}/${expected.accepted}, duplicate ${count('duplicate')}/${expected.duplicates} → ${ok ? 'OK' : 'MISMATCH'}`,
        );
        return { perSecond, ok };
      };

      // a) as ingest enqueues it: over HTTP through the ingest handler.
      const viaIngest = async (label: string, upkeep: boolean) => {
        const fx = await createFixture(stack.db.prisma);
        const s = stream(stack, fx, N, 'http');
        const server = http.createServer(stack.ingest).listen(0, '127.0.0.1');
        await new Promise((resolve) => server.once('listening', resolve));
        const paths = s.postbacks.map(
          (p) => `/postback?key=${fx.postbackKey}&click_id=${p.clickId}&order_id=${p.orderId}&amount=${p.amount}&currency=USD&status=${p.status}`,
        );
        const sent = await runHttpLoadInChild({ port: (server.address() as AddressInfo).port, warmup: [], paths, concurrency: 32 });
        server.close();
        const jobs = await stack.queues.postbacks.count();
        console.log(`filled through ingest: ${sent.statuses['202'] ?? 0} × 202 in ${jobs} jobs (${(N / jobs).toFixed(1)} postbacks per job)`);
        if ((sent.statuses['202'] ?? 0) !== N) problems += 1;
        return { ...(await drain(label, fx, s, 1, upkeep)), jobs };
      };
      // b) one postback per job.
      const onePerJobRun = async (label: string, upkeep: boolean) => {
        const fx = await createFixture(stack.db.prisma);
        const s = stream(stack, fx, N, 'one');
        await addOnePerJob(stack.queues.postbacks, s.postbacks);
        return drain(label, fx, s, 1, upkeep);
      };
      // Each with report upkeep (as deployed) and without it (reportUpkeep: false, the baseline of
      // what recording a conversion's report rows costs).
      // Alternating with and without (bench/lib.ts).
      const label = (what: string, upkeep: boolean, pair: number) => (upkeep ? `real worker, ${what} [${pair}]` : `  the same without report upkeep [${pair}]`);
      const ingestRuns = await alternating(UPKEEP_PAIRS, (upkeep, pair) => viaIngest(label('as ingest enqueues', upkeep, pair), upkeep));
      const oneRuns = await alternating(UPKEEP_PAIRS, (upkeep, pair) => onePerJobRun(label('1 postback per job', upkeep, pair), upkeep));
      const coalesced = ingestRuns.with[0];
      const onePerJob = oneRuns.with[0];
      const jobs = coalesced.jobs;

      // c) one postback per job, two worker processes.
      const fxC = await createFixture(stack.db.prisma);
      const c = stream(stack, fxC, N, 'two');
      await addOnePerJob(stack.queues.postbacks, c.postbacks);
      const twoProcesses = await drain('two worker processes, 1 per job', fxC, c, 2);

      const baseline = `${rate(baselineRate, 'jobs/s')} no-op worker, 1 postback per job`;
      const all = [...ingestRuns.with, ...ingestRuns.without, ...oneRuns.with, ...oneRuns.without, twoProcesses];
      const mean = (list: Drained[]) => list.reduce((sum, r) => sum + r.perSecond, 0) / list.length;
      const upkeepRow = (workload: string, runs: { with: Drained[]; without: Drained[] }) => {
        const [a, b] = [mean(runs.with), mean(runs.without)];
        const list = (l: Drained[]) => l.map((r) => Math.round(r.perSecond).toLocaleString('en-US')).join(', ');
        console.log(`report upkeep, ${workload}: with ${list(runs.with)}; without ${list(runs.without)} postbacks/s → ${ratio(a, b)} (means)`);
        return row('attribution', `with report upkeep vs without, ${workload}`, {
          measured: `${rate(a, 'postbacks/s')} (${list(runs.with)})`,
          baseline: `${rate(b, 'postbacks/s')} without (${list(runs.without)})`,
          ratio: ratio(a, b),
          target: '≥ 0.90×',
          met: a >= 0.9 * b,
          values: {
            measured: a,
            baseline: b,
            ...Object.fromEntries(runs.with.map((r, i) => [`with_${i + 1}`, r.perSecond])),
            ...Object.fromEntries(runs.without.map((r, i) => [`without_${i + 1}`, r.perSecond])),
          },
        });
      };
      rows.push(
        row('attribution', `postbacks/s as ingest enqueues them (${(N / jobs).toFixed(1)} per job)`, {
          measured: rate(coalesced.perSecond, 'postbacks/s'),
          baseline,
          ratio: ratio(coalesced.perSecond, baselineRate),
          target: '≥ 0.35× (stretch 0.5×)',
          met: coalesced.perSecond >= 0.35 * baselineRate,
          values: { measured: coalesced.perSecond, baseline: baselineRate, per_job: N / jobs },
        }),
        row('attribution', 'postbacks/s, 1 postback per job', {
          measured: rate(onePerJob.perSecond, 'postbacks/s'),
          baseline,
          ratio: ratio(onePerJob.perSecond, baselineRate),
          target: '≥ 0.35×',
          met: onePerJob.perSecond >= 0.35 * baselineRate,
          values: { measured: onePerJob.perSecond, baseline: baselineRate },
        }),
        row('attribution', 'postbacks/s, 2 processes, 1 per job', {
          measured: rate(twoProcesses.perSecond, 'postbacks/s'),
          baseline: `${rate(onePerJob.perSecond, 'postbacks/s')} with 1 process`,
          ratio: ratio(twoProcesses.perSecond, onePerJob.perSecond),
          values: { measured: twoProcesses.perSecond, baseline: onePerJob.perSecond },
        }),
        upkeepRow('as ingest enqueues', ingestRuns),
        upkeepRow('1 postback per job', oneRuns),
        row('attribution', 'outcomes = stream (conversions, duplicates)', {
          measured: all.every((r) => r.ok) ? `all ${all.length} runs` : 'MISMATCH',
          met: all.every((r) => r.ok),
        }),
      );
      report('attribution', rows);
      if (problems > 0) process.exitCode = 1;
    });
  } finally {
    await cleanup();
  }
}

runBench(main);
