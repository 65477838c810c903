// The HTTP edge: postbacks and clicks through the real ingest handler, against bare servers
// answering the same thing, a naive synchronous design, and Redis bytes per queued item.
//
// ingest  GET /postback (valid postbacks: fresh click ids, distinct orders) through createApp
//         from services/ingest (real BullMQ queue, cached key lookup over an isolated schema),
//         vs a bare Express 5 app answering 202 with the same body, and vs bare node:http doing
//         the same. Load: bench/http-load.ts in its own process, keep-alive, 32 connections;
//         rounds alternate (baseline, node, ingest, ...), the best of each is reported. Also:
//         the postbacks per job (one event-loop turn is one job), a run with info-level request
//         logs to /dev/null, and a check that every 202 left its postback in Redis. (The ingest
//         process's RSS under load is measured by bench/pipeline.ts, on the real process.)
// clicks  GET /click through ingest vs a bare Express 5 app answering the same 302; then again
//         with the attribution clicks worker running in its own process, writing click rows
//         while they arrive: rows written per second vs clicks answered, and how long the
//         backlog takes to drain once the load stops (≈ 0 = no growing backlog). Clicks as
//         partners send them: sub1 a click id of theirs (unique), sub2 one of 50 campaign labels.
//         Report upkeep (each click row records its transaction, report_xid, and the worker's
//         folder adds the clicks to the report rows a second later, many at once) against the
//         same worker without it (reportUpkeep: false, BENCH_REPORT_UPKEEP=0: no report_xid, no
//         folder; reports would miss those clicks), alternating
//         with, without, without, with: /click req/s with the worker running, and the worker's
//         own rate, click rows per second from a backlog of 50,000 (targets ≥ 0.95×).
// naive   what a team would build without a queue: an Express handler that looks the key up
//         and writes the conversion with Prisma before answering. Its req/s and p99 beside
//         ingest's (same load).
// redis   bytes of Redis memory per queued postback and per queued click: a private
//         redis-server (spare port, no persistence) holding nothing else; N items sent through
//         ingest over HTTP with no consumer; (used_memory after − before) / N.
import { type ChildProcess, spawn } from 'node:child_process';
import http, { type RequestListener } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createClickIdCodec } from '@trackway/clickid';
import { hashPostbackKey } from '@trackway/domain';
import { createLogger } from '@trackway/logger';
import { JOB_SCHEMAS, createProducerConnection, createQueue, whenReady } from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { type Fixture, createFixture } from '@trackway/testing';
import { Redis } from 'ioredis';
import { createApp as createIngest } from '../services/ingest/src/app';
import { createLookups } from '../services/ingest/src/lookups';
import { STACK_SECRET, type Stack, startStack } from '../test/support/stack';
import { type LoadResult, runHttpLoadInChild } from './http-load';
import {
  ROOT,
  type Row,
  alternating,
  bytes,
  cleanupOnInterrupt,
  forkTs,
  machineNote,
  ms,
  nextMessage,
  once,
  pct,
  rate,
  ratio,
  report,
  row,
  runBench,
  size,
  sleep,
  withDeadline,
} from './lib';

const N = size(Number(process.env.INGEST_N ?? 20_000), 2_000);
const WARMUP = size(2_000, 300);
const CONCURRENCY = 32;
const ROUNDS = size(2, 1);
const BYTES_N = size(20_000, 2_000);
/** Clicks in the backlog the clicks worker drains (with and without report upkeep). */
const DRAIN_N = size(50_000, 3_000);
/** With and without report upkeep, alternating: this many pairs. */
const UPKEEP_PAIRS = size(2, 1);

interface ExpressLike extends RequestListener {
  disable(name: string): void;
  get(path: string, handler: (req: { query: Record<string, unknown> }, res: ExpressResponse) => unknown): void;
}
interface ExpressResponse {
  status(code: number): ExpressResponse;
  json(body: unknown): void;
  redirect(status: number, url: string): void;
}
// express and @prisma-backed code are dependencies of the services, not of the root: load those copies.
const express = createRequire(path.join(ROOT, 'services/ingest/package.json'))('express') as () => ExpressLike;
const pino = createRequire(path.join(ROOT, 'packages/logger/package.json'))('pino') as {
  destination(o: { dest: string; sync: boolean }): NonNullable<Parameters<typeof createLogger>[0]['destination']> & { end(): void };
};

const ACCEPTED = JSON.stringify({ postback_id: 'pb_01J00000000000000000000000', status: 'queued' });
const LANDING = 'https://shop.example/land?click_id=AQAAAAEAAAAHZ0k2AJx1n3Qd8fV0m2Yc5Jk3a1Rw';

function bareExpress202(): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  const body = JSON.parse(ACCEPTED);
  app.get('/postback', (_req, res) => res.status(202).json(body));
  return app;
}

function bareNode202(): RequestListener {
  return (_req, res) => {
    res.writeHead(202, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(ACCEPTED) });
    res.end(ACCEPTED);
  };
}

function bareExpress302(): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.get('/click', (_req, res) => res.redirect(302, LANDING));
  return app;
}

/** The naive design: look the key up and write the conversion with Prisma before answering. */
function naiveApp(stack: Stack): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  const clickIds = createClickIdCodec(STACK_SECRET);
  app.get('/postback', async (req, res) => {
    const q = req.query as Record<string, string>;
    const advertiser = await stack.db.prisma.advertiser.findUnique({ where: { postbackKeyHash: hashPostbackKey(q.key ?? '') } });
    if (!advertiser) return res.status(401).json({ error: { code: 'unauthorized' } });
    const click = clickIds.verify(q.click_id ?? '');
    const offer = click ? await stack.db.prisma.offer.findUnique({ where: { id: click.offerId } }) : null;
    if (!click || !offer) return res.status(200).json({ status: 'rejected' });
    const created = await stack.db.prisma.conversion.createMany({
      data: [
        {
          id: `cnv_${q.order_id}`.slice(0, 40),
          advertiserId: advertiser.id,
          offerId: offer.id,
          affiliateId: click.affiliateId,
          clickId: q.click_id,
          orderId: q.order_id,
          event: 'conversion',
          status: 'approved',
          amount: q.amount ?? '0',
          currency: offer.currency,
          payout: offer.payoutAmount ?? 0,
          payoutCurrency: offer.currency,
          clickedAt: click.clickedAt,
          updatedAt: new Date(),
        },
      ],
      skipDuplicates: true,
    });
    return res.status(200).json({ status: created.count === 1 ? 'accepted' : 'duplicate' });
  });
  return app;
}

async function listen(app: RequestListener): Promise<{ port: number; close(): Promise<void> }> {
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

async function startPrivateRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await new Promise<number>((resolve) => {
    const probe = http.createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address() as AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    const up = await probe.connect().then(
      () => true,
      () => false,
    );
    probe.disconnect();
    if (up) break;
    if (i > 50) throw new Error('redis-server did not start');
    await sleep(100);
  }
  return {
    url,
    stop: async () => {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

async function main() {
  const stack = await startStack();
  const servers: { close(): Promise<void> }[] = [];
  const children: ChildProcess[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = once(async () => {
    await Promise.all(servers.map((s) => s.close().catch(() => undefined)));
    for (const c of children) c.kill('SIGKILL');
    for (const fn of cleanups) await fn().catch(() => undefined);
    await stack.close();
  });
  cleanupOnInterrupt(cleanup);
  const rows: Row[] = [];
  let problems = 0;
  try {
    await withDeadline('ingest bench', size(300_000, 150_000), async () => {
      console.log(machineNote());
      const fixture = await createFixture(stack.db.prisma);
      let order = 0;
      const postbacks = (n: number, fx: Fixture = fixture) =>
        Array.from({ length: n }, () => {
          const clickId = stack.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
          order += 1;
          return `/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=bench-${order}&amount=49.90&currency=USD&status=approved`;
        });
      const clicks = (n: number, fx: Fixture = fixture) =>
        Array.from({ length: n }, (_, i) => `/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}&sub1=s${i}`);
      // As a partner sends them: sub1 its own click id (unique), sub2 a campaign label (one of 50, a few used most).
      let partnerClick = 0;
      const subClicks = (n: number, fx: Fixture = fixture) =>
        Array.from({ length: n }, () => {
          partnerClick += 1;
          const label = Math.floor(50 * Math.random() ** 2);
          return `/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}&sub1=pc-${partnerClick.toString(36)}-${(partnerClick * 2_654_435_761) % 4_294_967_296}&sub2=campaign-${label}`;
        });

      const run = async (label: string, app: RequestListener, paths: string[], warmup: string[]) => {
        const server = await listen(app);
        servers.push(server);
        const result = await runHttpLoadInChild({ port: server.port, warmup, paths, concurrency: CONCURRENCY });
        await server.close();
        const statuses = Object.entries(result.statuses)
          .map(([s, c]) => `${s}×${c}`)
          .join(' ');
        console.log(
          `${label.padEnd(36)} ${rate(result.rps, 'req/s').padStart(12)}  ${pct(result.latency)}  (${result.requests} req in ${ms(result.durationMs)}; ` +
            `status ${statuses}; errors ${result.errors}; CPU: server ${result.serverCpu.toFixed(2)} core, load generator ${result.clientCpu.toFixed(2)} core)`,
        );
        return result;
      };
      const best = (list: LoadResult[]) => list.reduce((a, b) => (b.rps > a.rps ? b : a));

      // --- ingest ---------------------------------------------------------------------------
      console.log(`\ningest: ${WARMUP} warm-up + ${N} measured GET /postback, ${CONCURRENCY} keep-alive connections, ${ROUNDS} alternating round(s)`);
      const express202: LoadResult[] = [];
      const node202: LoadResult[] = [];
      const ingest: LoadResult[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        express202.push(await run(`[${round}] bare express 202`, bareExpress202(), postbacks(N), postbacks(WARMUP)));
        node202.push(await run(`[${round}] bare node:http 202`, bareNode202(), postbacks(N), postbacks(WARMUP)));
        ingest.push(await run(`[${round}] ingest (real queue)`, stack.ingest, postbacks(N), postbacks(WARMUP)));
      }
      const dest = pino.destination({ dest: '/dev/null', sync: false });
      cleanups.push(async () => dest.end());
      const logged = await run(
        'ingest + info logs → /dev/null',
        createIngest({
          queues: stack.queues,
          redis: stack.producer,
          lookups: createLookups(stack.db.prisma),
          clickIds: stack.clickIds,
          logger: createLogger({ service: 'ingest', level: 'info', destination: dest }),
          metrics: createMetrics('ingest'),
          health: { accepting: true, checks: {} },
        }),
        postbacks(N),
        postbacks(WARMUP),
      );
      // With a per-advertiser rate limit set (high enough never to refuse): what counting each
      // postback and syncing the counts with Redis in the background costs.
      const limited = await run(
        'ingest, POSTBACK_RATE_LIMIT set',
        createIngest({
          queues: stack.queues,
          redis: stack.producer,
          lookups: createLookups(stack.db.prisma),
          clickIds: stack.clickIds,
          logger: createLogger({ service: 'ingest', level: 'silent' }),
          metrics: createMetrics('ingest'),
          health: { accepting: true, checks: {} },
          frontDoor: { postbackRateLimit: 1_000_000 },
        }),
        postbacks(N),
        postbacks(WARMUP),
      );
      // Every 202 must have left its postback in Redis: nothing consumes the queue here.
      const accepted = [...ingest, logged, limited].reduce((sum, r) => sum + (r.statuses['202'] ?? 0) + (r.warmupStatuses['202'] ?? 0), 0);
      const jobs = await stack.queues.postbacks.getJobs(['waiting']);
      const queued = jobs.reduce((sum, job) => sum + (JOB_SCHEMAS.postbacks.safeParse(job.data).data?.postbacks.length ?? 0), 0);
      const sent = (N + WARMUP) * (ROUNDS + 2);
      const jobsOk = queued === accepted && accepted === sent;
      if (!jobsOk) problems += 1;
      const [e, nd, i] = [best(express202), best(node202), best(ingest)];
      rows.push(
        row('ingest', 'GET /postback req/s, 32 connections', {
          measured: rate(i.rps, 'req/s'),
          baseline: `${rate(e.rps, 'req/s')} bare Express 202`,
          ratio: ratio(i.rps, e.rps),
          target: '≥ 1.0×',
          met: i.rps >= e.rps,
          values: { measured: i.rps, baseline: e.rps },
        }),
        row('ingest', 'GET /postback p99, 32 connections', {
          measured: ms(i.latency.p99),
          baseline: ms(e.latency.p99),
          ratio: ratio(i.latency.p99, e.latency.p99),
          target: '≤ 20 ms',
          met: i.latency.p99 <= 20,
          values: { measured: i.latency.p99, baseline: e.latency.p99 },
        }),
        row('ingest', 'GET /postback req/s vs bare node:http', {
          measured: rate(i.rps, 'req/s'),
          baseline: `${rate(nd.rps, 'req/s')} bare node:http 202`,
          ratio: ratio(i.rps, nd.rps),
          values: { measured: i.rps, baseline: nd.rps },
        }),
        row('ingest', 'req/s with POSTBACK_RATE_LIMIT set', {
          measured: rate(limited.rps, 'req/s'),
          baseline: `${rate(e.rps, 'req/s')} bare Express 202`,
          ratio: ratio(limited.rps, e.rps),
          values: { measured: limited.rps, baseline: e.rps },
        }),
        row('ingest', 'req/s with info request logs', {
          measured: rate(logged.rps, 'req/s'),
          baseline: `${rate(e.rps, 'req/s')} bare Express 202`,
          ratio: ratio(logged.rps, e.rps),
          values: { measured: logged.rps, baseline: e.rps },
        }),
        row('ingest', 'postbacks per job (one per event-loop turn)', {
          measured: (queued / Math.max(1, jobs.length)).toFixed(1),
          values: { measured: queued / Math.max(1, jobs.length) },
        }),
        row('ingest', 'every 202 has its postback in Redis', {
          measured: `${queued}/${accepted}`,
          baseline: `${sent} sent`,
          met: jobsOk,
          values: { measured: queued, baseline: accepted },
        }),
      );

      // --- clicks ---------------------------------------------------------------------------
      console.log(`\nclicks: ${WARMUP} warm-up + ${N} measured GET /click (sub1 unique, sub2 one of 50 labels), ${CONCURRENCY} connections`);
      const express302: LoadResult[] = [];
      const ingestClicks: LoadResult[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        express302.push(await run(`[${round}] bare express 302`, bareExpress302(), subClicks(N), subClicks(WARMUP)));
        ingestClicks.push(await run(`[${round}] ingest /click`, stack.ingest, subClicks(N), subClicks(WARMUP)));
      }
      const startClicksWorker = async (upkeep: boolean) => {
        const worker = forkTs('bench/worker-child.ts', {
          BENCH_DATABASE_URL: stack.db.url,
          BENCH_PREFIX: stack.prefix,
          BENCH_CLICK_SECRET: STACK_SECRET,
          BENCH_QUEUES: 'clicks',
          BENCH_REPORT_UPKEEP: upkeep ? '1' : '0',
        });
        children.push(worker);
        await nextMessage(worker, 'ready');
        return worker;
      };
      const stopClicksWorker = async (worker: ChildProcess) => {
        worker.send({ type: 'stop' });
        return (await nextMessage<{ cpu: number }>(worker, 'stopped')).cpu;
      };
      const clickRows = (fx: Fixture) => stack.db.prisma.click.count({ where: { offerId: fx.offerId } });
      // /click with the clicks worker writing the rows as they arrive.
      const withWorkerRun = async (label: string, upkeep: boolean) => {
        // Clicks of the runs before wait in the queue: start from an empty one.
        await stack.queues.clicks.obliterate({ force: true });
        const worker = await startClicksWorker(upkeep);
        worker.send({ type: 'start' });
        await nextMessage(worker, 'started');
        const fx = await createFixture(stack.db.prisma);
        const load = await run(label, stack.ingest, subClicks(N, fx), subClicks(WARMUP, fx));
        const loadEnded = performance.now();
        const written = await clickRows(fx);
        const redirected = (load.statuses['302'] ?? 0) + (load.warmupStatuses['302'] ?? 0);
        let drained = written;
        while (drained < redirected && performance.now() - loadEnded < 20_000) {
          await sleep(50);
          drained = await clickRows(fx);
        }
        const drainMs = performance.now() - loadEnded;
        await stopClicksWorker(worker);
        if (drained !== redirected) problems += 1;
        console.log(
          `${''.padEnd(36)} rows written during the load: ${written}/${redirected} (${rate(written / ((load.durationMs + 0.001) / 1000), 'rows/s')}); the rest in ${ms(drainMs)}`,
        );
        return { load, written, redirected, drained, drainMs, keptUp: drained === redirected && drainMs < 2_000 };
      };
      // The worker's own rate: a backlog of DRAIN_N clicks (sent through ingest, nothing consuming),
      // then the worker started, timed until the last row is written.
      const backlogRun = async (label: string, upkeep: boolean) => {
        await stack.queues.clicks.obliterate({ force: true });
        const fx = await createFixture(stack.db.prisma);
        const server = await listen(stack.ingest);
        servers.push(server);
        const fill = await runHttpLoadInChild({ port: server.port, warmup: [], paths: subClicks(DRAIN_N, fx), concurrency: CONCURRENCY });
        await server.close();
        const sent = fill.statuses['302'] ?? 0;
        const worker = await startClicksWorker(upkeep);
        const t0 = performance.now();
        worker.send({ type: 'start' });
        let written = 0;
        while (written < sent && performance.now() - t0 < size(60_000, 20_000)) {
          await sleep(25);
          written = await clickRows(fx);
        }
        const elapsed = performance.now() - t0;
        const cpu = await stopClicksWorker(worker);
        if (written !== sent || sent !== DRAIN_N) problems += 1;
        const perSecond = written / (elapsed / 1000);
        console.log(
          `${label.padEnd(36)} ${rate(perSecond, 'rows/s').padStart(12)}  ${written}/${sent} click rows from a backlog in ${ms(elapsed)}; worker CPU ${(cpu / elapsed).toFixed(2)} core`,
        );
        return { perSecond, ok: written === sent };
      };
      // With report upkeep (as deployed: report_xid on each row, the folder running in the worker)
      // and without (reportUpkeep: false, BENCH_REPORT_UPKEEP=0), alternating (bench/lib.ts).
      const runs = await alternating(UPKEEP_PAIRS, async (on, pair) => ({
        load: await withWorkerRun(on ? `[${pair}] ingest /click, clicks worker` : `[${pair}]   … worker without report upkeep`, on),
        backlog: await backlogRun(on ? `[${pair}] clicks worker, ${DRAIN_N} backlog` : `[${pair}]   … without report upkeep`, on),
      }));
      const loads = { with: runs.with.map((r) => r.load), without: runs.without.map((r) => r.load) };
      const backlogs = { with: runs.with.map((r) => r.backlog), without: runs.without.map((r) => r.backlog) };
      const withWorker = loads.with[0].load;
      const { written, redirected, drainMs } = loads.with[0];
      const [e3, c] = [best(express302), best(ingestClicks)];
      const keptUp = [...loads.with, ...loads.without].every((l) => l.keptUp);
      const mean = (list: number[]) => list.reduce((a, b) => a + b, 0) / list.length;
      const [rpsWith, rpsWithout] = [mean(loads.with.map((l) => l.load.rps)), mean(loads.without.map((l) => l.load.rps))];
      const [rowsWith, rowsWithout] = [mean(backlogs.with.map((b) => b.perSecond)), mean(backlogs.without.map((b) => b.perSecond))];
      const list = (values: number[]) => values.map((v) => Math.round(v).toLocaleString('en-US')).join(', ');
      console.log(
        `report upkeep: /click with the worker ${list(loads.with.map((l) => l.load.rps))} vs ${list(loads.without.map((l) => l.load.rps))} req/s without (${ratio(rpsWith, rpsWithout)}); ` +
          `backlog ${list(backlogs.with.map((b) => b.perSecond))} vs ${list(backlogs.without.map((b) => b.perSecond))} rows/s without (${ratio(rowsWith, rowsWithout)})`,
      );
      rows.push(
        row('clicks', 'GET /click req/s, 32 connections', {
          measured: rate(c.rps, 'req/s'),
          baseline: `${rate(e3.rps, 'req/s')} bare Express 302`,
          ratio: ratio(c.rps, e3.rps),
          target: '≥ 1.0×',
          met: c.rps >= e3.rps,
          values: { measured: c.rps, baseline: e3.rps },
        }),
        row('clicks', 'GET /click req/s, clicks worker running', {
          measured: `${rate(withWorker.rps, 'req/s')} (p99 ${ms(withWorker.latency.p99)})`,
          baseline: `${rate(e3.rps, 'req/s')} bare Express 302`,
          ratio: ratio(withWorker.rps, e3.rps),
          values: { measured: withWorker.rps, baseline: e3.rps, p99: withWorker.latency.p99 },
        }),
        row('clicks', 'click rows written during the load', {
          measured: `${written}/${redirected}; the rest ${drainMs < 20_000 ? `in ${ms(drainMs)}` : 'never'} after`,
          baseline: `${rate(redirected / (withWorker.durationMs / 1000), 'clicks/s')} answered`,
          target: 'no growing backlog',
          met: keptUp,
          values: { measured: written, baseline: redirected, drain_ms: drainMs },
        }),
        row('clicks', '/click req/s, worker with report upkeep vs without', {
          measured: `${rate(rpsWith, 'req/s')} (${list(loads.with.map((l) => l.load.rps))})`,
          baseline: `${rate(rpsWithout, 'req/s')} without (${list(loads.without.map((l) => l.load.rps))})`,
          ratio: ratio(rpsWith, rpsWithout),
          target: '≥ 0.95×',
          met: rpsWith >= 0.95 * rpsWithout,
          values: { measured: rpsWith, baseline: rpsWithout },
        }),
        row('clicks', `click rows/s from a ${DRAIN_N} backlog, upkeep vs without`, {
          measured: `${rate(rowsWith, 'rows/s')} (${list(backlogs.with.map((b) => b.perSecond))})`,
          baseline: `${rate(rowsWithout, 'rows/s')} without (${list(backlogs.without.map((b) => b.perSecond))})`,
          ratio: ratio(rowsWith, rowsWithout),
          target: '≥ 0.95×',
          met: rowsWith >= 0.95 * rowsWithout,
          values: { measured: rowsWith, baseline: rowsWithout },
        }),
      );

      // --- naive ----------------------------------------------------------------------------
      console.log('\nnaive: an Express handler writing the conversion with Prisma before it answers');
      const naiveFixture = await createFixture(stack.db.prisma);
      const naive = await run('naive sync Prisma handler', naiveApp(stack), postbacks(size(5_000, 500), naiveFixture), postbacks(size(500, 100), naiveFixture));
      rows.push(
        row('naive', 'sync Prisma write per request: req/s, p99', {
          measured: `${rate(naive.rps, 'req/s')}, p99 ${ms(naive.latency.p99)}`,
          baseline: `ingest ${rate(i.rps, 'req/s')}, p99 ${ms(i.latency.p99)}`,
          ratio: ratio(naive.rps, i.rps),
          values: { measured: naive.rps, baseline: i.rps, p99: naive.latency.p99 },
        }),
      );

      // --- redis bytes ----------------------------------------------------------------------
      console.log(`\nredis: ${BYTES_N} postbacks, then ${BYTES_N} clicks, through ingest into a private redis-server`);
      const redis = await startPrivateRedis();
      cleanups.push(() => redis.stop());
      const producer = createProducerConnection(redis.url);
      await whenReady(producer);
      const queues = {
        postbacks: createQueue('postbacks', producer, 'bytes', () => undefined),
        clicks: createQueue('clicks', producer, 'bytes', () => undefined),
      };
      const bytesApp = createIngest({
        queues,
        redis: producer,
        lookups: createLookups(stack.db.prisma),
        clickIds: stack.clickIds,
        logger: createLogger({ service: 'bench', level: 'silent' }),
        metrics: createMetrics('ingest'),
        health: { accepting: true, checks: {} },
      });
      const used = async () => Number(/used_memory:(\d+)/.exec(await producer.info('memory'))![1]);
      const measure = async (label: string, paths: string[]) => {
        const before = await used();
        const result = await run(label, bytesApp, paths, []);
        await sleep(200);
        return { per: ((await used()) - before) / paths.length, ok: (result.statuses['202'] ?? 0) + (result.statuses['302'] ?? 0) === paths.length };
      };
      // Warm the queues' own keys (meta, id counters, the events stream) first.
      await run('redis warm-up', bytesApp, [...postbacks(200), ...clicks(200)], []);
      const perPostback = await measure('postbacks into a private redis', postbacks(BYTES_N));
      const perClick = await measure('clicks into a private redis', clicks(BYTES_N));
      await Promise.all([queues.postbacks.close(), queues.clicks.close()]);
      producer.disconnect();
      if (!perPostback.ok || !perClick.ok) problems += 1;
      rows.push(
        row('redis', 'bytes per queued postback', {
          measured: bytes(perPostback.per),
          baseline: `${BYTES_N} postbacks via ingest`,
          target: '≤ 1 KiB',
          met: perPostback.per <= 1024,
          values: { measured: perPostback.per },
        }),
        row('redis', 'bytes per queued click', {
          measured: bytes(perClick.per),
          baseline: `${BYTES_N} clicks via ingest`,
          target: '≤ 512 B',
          met: perClick.per <= 512,
          values: { measured: perClick.per },
        }),
      );
      report('ingest', rows);
      if (problems > 0) process.exitCode = 1;
    });
  } finally {
    await cleanup();
  }
}

runBench(main);
