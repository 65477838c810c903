// Postback ingest over HTTP.
//
// Measures: GET /postback against the real ingest app (createApp from services/ingest, wired
// as test/support/stack.ts wires it: real Redis/BullMQ postbacks queue, cached advertiser-key
// lookup backed by a fixture advertiser in an isolated Postgres schema), listening on
// 127.0.0.1:0. Each request is a valid postback (fresh click id, distinct order id) that the
// app validates, enqueues and answers 202.
// Baseline: a bare Express 5 app (the same express copy the ingest service uses) answering the
// same GET /postback with a fixed 202 JSON body and no enqueue: HTTP + framework cost alone.
// Load: a separate process (bench/http-load.ts) sends 500 warm-up then 5000 measured requests
// at concurrency 32 over keep-alive connections; two alternating rounds, best round reported. Printed: req/s, p50/p95/p99, the ratio
// (ingest throughput as a fraction of the baseline), and a check that every 202 left a job in
// Redis. A supplementary run repeats the ingest with info-level request logging to /dev/null
// (the production default level) instead of the stack's silent logger.
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createLogger } from '@trackway/logger';
import { createFixture } from '@trackway/testing';
import { createApp as createIngest } from '../services/ingest/src/app';
import { createLookups } from '../services/ingest/src/lookups';
import { startStack } from '../test/support/stack';
import { type LoadResult, runHttpLoadInChild } from './http-load';
import { ROOT, type SummaryRow, cleanupOnInterrupt, machineNote, once, ms, pct, rate, ratio, report, withDeadline } from './lib';

const N = Number(process.env.INGEST_N ?? 5000);
const WARMUP = Number(process.env.INGEST_WARMUP ?? 500);
const CONCURRENCY = Number(process.env.INGEST_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.INGEST_ROUNDS ?? 2);
const WITH_LOGS = process.env.INGEST_WITH_LOGS !== '0';

type App = ReturnType<typeof createIngest>;
interface ExpressLike extends App {
  disable(name: string): void;
  get(path: string, handler: (req: unknown, res: { status(code: number): { json(body: unknown): void } }) => void): void;
}
// express is a dependency of services/ingest, not of the root: load that very copy.
const express = createRequire(path.join(ROOT, 'services/ingest/package.json'))('express') as () => ExpressLike;
const pino = createRequire(path.join(ROOT, 'packages/logger/package.json'))('pino') as {
  destination(o: { dest: string; sync: boolean }): NonNullable<Parameters<typeof createLogger>[0]['destination']> & { end(): void };
};

function baselineApp(): App {
  const app = express();
  app.disable('x-powered-by');
  const body = { postback_id: 'pb_01J00000000000000000000000', status: 'queued' };
  app.get('/postback', (_req, res) => {
    res.status(202).json(body);
  });
  return app;
}

async function listen(app: App): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function main() {
  const stack = await startStack();
  const servers: { close(): Promise<void> }[] = [];
  let devNull: { end(): void } | undefined;
  const cleanup = once(async () => {
    await Promise.all(servers.map((s) => s.close().catch(() => undefined)));
    devNull?.end();
    await stack.close();
  });
  cleanupOnInterrupt(cleanup);
  try {
    await withDeadline('ingest bench', 50_000, async () => {
    const fixture = await createFixture(stack.db.prisma);
    let order = 0;
    const paths = (n: number) =>
      Array.from({ length: n }, () => {
        const clickId = stack.clickIds.issue({ offerId: fixture.offerId, affiliateId: fixture.affiliateId });
        order += 1;
        return `/postback?key=${fixture.postbackKey}&click_id=${clickId}&order_id=bench-${order}&amount=49.90&currency=USD&status=approved`;
      });

    const run = async (label: string, app: App) => {
      const server = await listen(app);
      servers.push(server);
      const result = await runHttpLoadInChild({ port: server.port, warmup: paths(WARMUP), paths: paths(N), concurrency: CONCURRENCY });
      await server.close();
      const statuses = Object.entries(result.statuses).map(([s, c]) => `${s}×${c}`).join(' ');
      console.log(
        `${label.padEnd(34)} ${rate(result.rps, 'req/s').padStart(12)}  ${pct(result.latency)}  (mean ${ms(result.latency.mean)}, max ${ms(result.latency.max)}; ` +
          `${result.requests} req in ${ms(result.durationMs)}; status ${statuses}; errors ${result.errors}; ${result.connections} connections; ` +
          `CPU: server ${result.serverCpu.toFixed(2)} core, load generator ${result.clientCpu.toFixed(2)} core)`,
      );
      return result;
    };

    console.log(machineNote());
    console.log(`ingest bench: ${WARMUP} warm-up + ${N} measured GET /postback at concurrency ${CONCURRENCY}, keep-alive, load generator in its own process`);
    // Alternating rounds (baseline, ingest, baseline, ingest...): the best round of each is
    // reported, which damps one-off interference on a small machine; every round is printed.
    const baselines: LoadResult[] = [];
    const ingests: LoadResult[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      baselines.push(await run(`[${round}] baseline express 202`, baselineApp()));
      ingests.push(await run(`[${round}] ingest (real queue)`, stack.ingest));
    }
    const best = (list: LoadResult[]) => list.reduce((a, b) => (b.rps > a.rps ? b : a));
    const baseline = best(baselines);
    const ingest = best(ingests);
    let logged: LoadResult | undefined;
    if (WITH_LOGS) {
      const dest = pino.destination({ dest: '/dev/null', sync: true });
      devNull = dest;
      const app = createIngest({
        queues: stack.queues,
        redis: stack.producer,
        lookups: createLookups(stack.db.prisma),
        clickIds: stack.clickIds,
        logger: createLogger({ service: 'ingest', level: 'info', destination: dest }),
        metrics: stack.metrics,
        health: { accepting: true, checks: {} },
      });
      logged = await run('ingest + info logs → /dev/null', app);
      ingests.push(logged);
    }

    // Every 202 must have left a job: nothing consumes the queue here, so they are all waiting.
    const accepted = ingests.reduce((sum, r) => sum + (r.statuses['202'] ?? 0) + (r.warmupStatuses['202'] ?? 0), 0);
    const counts = await stack.queues.postbacks.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
    const jobs = Object.values(counts).reduce((a, b) => a + b, 0);
    const sent = (WARMUP + N) * ingests.length;
    const jobsOk = jobs === accepted && accepted === sent;
    console.log(`queue check: ${accepted} × 202 from the ingest runs (of ${sent} sent), ${jobs} jobs in the postbacks queue (${JSON.stringify(counts)}) → ${jobsOk ? 'OK' : 'MISMATCH'}`);
    console.log(`best of ${ROUNDS}: baseline ${rate(baseline.rps, 'req/s')}, ingest ${rate(ingest.rps, 'req/s')}`);
    console.log(`ratio: ingest throughput = ${ratio(ingest.rps, baseline.rps)} the bare-Express baseline; p50 ${ratio(ingest.latency.p50, baseline.latency.p50)}, p99 ${ratio(ingest.latency.p99, baseline.latency.p99)} its latency`);

    const rows: SummaryRow[] = [
      { bench: 'ingest', metric: `GET /postback req/s (c=${CONCURRENCY})`, measured: rate(ingest.rps, 'req/s'), baseline: `${rate(baseline.rps, 'req/s')} (bare express)`, ratio: ratio(ingest.rps, baseline.rps) },
      { bench: 'ingest', metric: 'latency p50', measured: ms(ingest.latency.p50), baseline: ms(baseline.latency.p50), ratio: ratio(ingest.latency.p50, baseline.latency.p50) },
      { bench: 'ingest', metric: 'latency p95', measured: ms(ingest.latency.p95), baseline: ms(baseline.latency.p95), ratio: ratio(ingest.latency.p95, baseline.latency.p95) },
      { bench: 'ingest', metric: 'latency p99', measured: ms(ingest.latency.p99), baseline: ms(baseline.latency.p99), ratio: ratio(ingest.latency.p99, baseline.latency.p99) },
    ];
    if (logged) {
      rows.push({ bench: 'ingest', metric: 'req/s with info logs', measured: rate(logged.rps, 'req/s'), baseline: rate(baseline.rps, 'req/s'), ratio: ratio(logged.rps, baseline.rps) });
    }
    rows.push({ bench: 'ingest', metric: '202s with a job in Redis', measured: `${jobs}/${accepted}`, baseline: '-', ratio: jobsOk ? 'OK' : 'MISMATCH' });
    report('ingest', rows);
    if (!jobsOk) process.exitCode = 1;
    });
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
