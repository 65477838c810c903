// An attribution worker process for the benchmarks: the real createWorkers from
// services/attribution, on the schema and prefix a bench hands it, in a process of its own (as a
// deployment runs it); BENCH_REPORT_UPKEEP=0 runs it without report upkeep (only as the baseline
// of what that upkeep costs). IPC: sends {type:'ready'} once connected; on {type:'start'} starts its
// workers and answers {type:'started'}; on {type:'stop'} closes them and sends
// {type:'stopped', cpu} (its CPU time since start, ms), then exits.
import { createClickIdCodec } from '@trackway/clickid';
import { createDatabase } from '@trackway/db';
import { createQueue, createWorkerConnection, whenReady } from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { TEST_REDIS_URL } from '@trackway/testing';
import { type AttributionQueue, createWorkers } from '../services/attribution/src/workers';
import { silentLogger } from './lib';

async function main() {
  const env = process.env;
  const db = createDatabase(env.BENCH_DATABASE_URL!, { poolSize: 8 });
  const producer = createWorkerConnection(TEST_REDIS_URL);
  const eventsQueue = createQueue('events', producer, env.BENCH_PREFIX!, () => undefined);
  const clicksQueue = createQueue('clicks', producer, env.BENCH_PREFIX!, () => undefined);
  const connection = createWorkerConnection(TEST_REDIS_URL);
  let workers: ReturnType<typeof createWorkers> | undefined;
  let cpu = process.cpuUsage();
  process.on('message', async (m: { type?: string }) => {
    if (m?.type === 'start') {
      cpu = process.cpuUsage();
      workers = createWorkers(
        {
          prisma: db.prisma,
          pool: db.pool,
          clickIds: createClickIdCodec(env.BENCH_CLICK_SECRET!),
          eventsQueue,
          clicksQueue,
          connection,
          prefix: env.BENCH_PREFIX!,
          logger: silentLogger(),
          metrics: createMetrics('attribution'),
          concurrency: { postbacks: Number(env.BENCH_CONCURRENCY ?? 2000), clicks: 200 },
          relayGraceMs: 60_000,
          // BENCH_REPORT_UPKEEP=0: no report rows moved (the baseline of what their upkeep costs).
          reportUpkeep: env.BENCH_REPORT_UPKEEP !== '0',
        },
        (env.BENCH_QUEUES ?? 'postbacks').split(',') as AttributionQueue[],
      );
      process.send!({ type: 'started' });
    }
    if (m?.type === 'stop') {
      const used = process.cpuUsage(cpu);
      await Promise.all((workers ?? []).map((w) => w.close()));
      await workers?.drain();
      await Promise.all([eventsQueue.close(), clicksQueue.close()]);
      connection.disconnect();
      producer.disconnect();
      await db.prisma.$disconnect();
      process.send!({ type: 'stopped', cpu: (used.user + used.system) / 1000 }, () => process.exit(0));
    }
  });
  await Promise.all([producer, connection].map((c) => whenReady(c)));
  process.send!({ type: 'ready' });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
