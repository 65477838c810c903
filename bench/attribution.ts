// Postback jobs through the attribution worker.
//
// Measures: jobs/s of the real postbacks worker (createWorkers from services/attribution at
// concurrency 16): each job is one Postgres transaction (offer read, conversion, commission,
// postback row, outbox events) followed by the events' publish to the events queue. Jobs are
// valid postbacks for one advertiser/offer, with distinct order ids and click ids minted with
// the stack's CLICK_SECRET, so every job creates a conversion. The queue is filled first and
// the clock runs from the worker's start until the last job completes (a drain).
// Baseline: a plain BullMQ worker with a no-op processor, same concurrency, same queue type
// (postbacks, same default job options and payloads) under its own prefix: the queue's own
// overhead. Also printed: per-job processing time (processedOn → finishedOn) p50/p95/p99.
// Verified: the conversion count equals the job count, and no job failed.
import { newId } from '@trackway/domain';
import { type PostbackJob, createQueue, createWorkerConnection } from '@trackway/queues';
import { TEST_REDIS_URL, createFixture, deleteRedisPrefix, randomPrefix } from '@trackway/testing';
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createWorkers } from '../services/attribution/src/workers';
import { startStack } from '../test/support/stack';
import { type LatencySummary, type SummaryRow, cleanupOnInterrupt, machineNote, once, ms, pct, rate, ratio, report, silentLogger, summarize, withDeadline } from './lib';

const N = Number(process.env.ATTRIBUTION_N ?? 2000);
const WARMUP = Number(process.env.ATTRIBUTION_WARMUP ?? 200);
const CONCURRENCY = Number(process.env.ATTRIBUTION_CONCURRENCY ?? 16);

interface DrainResult {
  jobs: number;
  durationMs: number;
  jobsPerSecond: number;
  completed: number;
  failed: number;
  processing: LatencySummary;
}

/** Starts a worker on a queue already holding `jobs` jobs and times it until all are done. */
async function drain(jobs: number, start: () => Worker[]): Promise<DrainResult> {
  let completed = 0;
  let failed = 0;
  const processing: number[] = [];
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const settle = () => completed + failed >= jobs && resolveDone();
  const started = performance.now();
  const workers = start();
  for (const worker of workers) {
    worker.on('completed', (job: Job) => {
      completed += 1;
      if (job.processedOn && job.finishedOn) processing.push(job.finishedOn - job.processedOn);
      settle();
    });
    worker.on('failed', (job, error) => {
      failed += 1;
      if (failed <= 3) console.error(`job ${job?.id} failed: ${error.message}`);
      settle();
    });
  }
  await withDeadline(`draining ${jobs} jobs`, 40_000, () => done);
  const durationMs = performance.now() - started;
  await Promise.all(workers.map((w) => w.close()));
  return { jobs, durationMs, jobsPerSecond: jobs / (durationMs / 1000), completed, failed, processing: summarize(processing) };
}

async function main() {
  const stack = await startStack();
  const basePrefix = randomPrefix();
  const connections: Redis[] = [];
  const connect = () => {
    const c = createWorkerConnection(TEST_REDIS_URL);
    connections.push(c);
    return c;
  };
  const baselineQueue = createQueue('postbacks', stack.producer, basePrefix, () => undefined);
  const cleanup = once(async () => {
    await baselineQueue.close();
    for (const c of connections) c.disconnect();
    await deleteRedisPrefix(basePrefix);
    await stack.close();
  });
  cleanupOnInterrupt(cleanup);
  try {
    await withDeadline('attribution bench', 55_000, async () => {
      console.log(machineNote());
      console.log(`attribution bench: ${WARMUP} warm-up + ${N} measured postback jobs, worker concurrency ${CONCURRENCY}, queue pre-filled then drained`);
      const fixture = await createFixture(stack.db.prisma);
      const payloads = (n: number, tag: string): PostbackJob[] =>
        Array.from({ length: n }, (_, i) => ({
          postbackId: newId('postback'),
          advertiserId: fixture.advertiserId,
          receivedAt: new Date().toISOString(),
          clickId: stack.clickIds.issue({ offerId: fixture.offerId, affiliateId: fixture.affiliateId }),
          orderId: `${tag}-${i}`,
          event: 'conversion',
          amount: '49.90',
          currency: 'USD',
          status: 'approved',
        }));
      const fill = async (queue: typeof baselineQueue, list: PostbackJob[]) => {
        for (let i = 0; i < list.length; i += 500) {
          await queue.addBulk(list.slice(i, i + 500).map((data) => ({ name: 'postback', data: { postbacks: [data] }, opts: { jobId: data.postbackId } })));
        }
      };

      const realWorker = () =>
        createWorkers(
          {
            prisma: stack.db.prisma,
            pool: stack.db.pool,
            clickIds: stack.clickIds,
            eventsQueue: stack.queues.events,
            connection: connect(),
            prefix: stack.prefix,
            logger: silent,
            metrics: stack.metrics,
            concurrency: { postbacks: CONCURRENCY, clicks: 1 },
            relayGraceMs: 0,
          },
          ['postbacks'],
        );
      const noopWorker = () => [new Worker('postbacks', async () => ({ status: 'ok' }), { connection: connect(), prefix: basePrefix, concurrency: CONCURRENCY })];

      const line = (label: string, r: DrainResult) =>
        console.log(
          `${label.padEnd(28)} ${rate(r.jobsPerSecond, 'jobs/s').padStart(13)}  ${r.jobs} jobs in ${ms(r.durationMs)}; completed ${r.completed}, failed ${r.failed}; ` +
            `per-job processing ${pct(r.processing)}`,
        );

      // Warm-up (JIT, Postgres pool and plans, Redis scripts), then the measured drains.
      await fill(baselineQueue, payloads(WARMUP, 'warm'));
      line('baseline warm-up', await drain(WARMUP, noopWorker));
      await fill(stack.queues.postbacks, payloads(WARMUP, 'warm'));
      line('attribution warm-up', await drain(WARMUP, realWorker));

      await fill(baselineQueue, payloads(N, 'base'));
      const baseline = await drain(N, noopWorker);
      line('baseline no-op worker', baseline);
      await fill(stack.queues.postbacks, payloads(N, 'run'));
      const real = await drain(N, realWorker);
      line('attribution worker', real);

      const conversions = await stack.db.prisma.conversion.count({ where: { orderId: { startsWith: 'run-' } } });
      // Postback rows keep their params: the measured ones are those with a run-* order id.
      const accepted = await stack.db.prisma.postback.count({ where: { status: 'accepted', params: { path: ['order_id'], string_starts_with: 'run-' } } });
      const eventsQueued = await stack.queues.events.count();
      const ok = conversions === N && real.failed === 0 && real.completed === N;
      console.log(`check: ${conversions} conversions and ${accepted} accepted postbacks for ${N} jobs (${real.failed} failed), ${eventsQueued} events waiting in the events queue → ${ok ? 'OK' : 'MISMATCH'}`);
      console.log(`ratio: attribution throughput = ${ratio(real.jobsPerSecond, baseline.jobsPerSecond)} the no-op worker's`);

      report('attribution', [
        { bench: 'attribution', metric: `postback jobs/s (c=${CONCURRENCY})`, measured: rate(real.jobsPerSecond, 'jobs/s'), baseline: `${rate(baseline.jobsPerSecond, 'jobs/s')} (no-op worker)`, ratio: ratio(real.jobsPerSecond, baseline.jobsPerSecond) },
        { bench: 'attribution', metric: 'per-job processing p50', measured: ms(real.processing.p50), baseline: ms(baseline.processing.p50), ratio: '-' },
        { bench: 'attribution', metric: 'per-job processing p95', measured: ms(real.processing.p95), baseline: ms(baseline.processing.p95), ratio: '-' },
        { bench: 'attribution', metric: 'conversions = jobs', measured: `${conversions}/${N}`, baseline: '-', ratio: ok ? 'OK' : 'MISMATCH' },
      ]);
      if (!ok) process.exitCode = 1;
    });
  } finally {
    await cleanup();
  }
}

const silent = silentLogger();

main().then(
  () => process.exit(),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
