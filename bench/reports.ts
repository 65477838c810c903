// Reports at volume (issue 16): GET /v1/reports and /v1/reports/summary over a database of
// 20,000,000 clicks and 1,000,000 conversions over 90 days (quick: 200,000 and 10,000).
//
// The server and the data set (bench/dataset.ts, shared with bench/scale.ts): an embedded
// PostgreSQL 18 of this bench's own with SERVER_SETTINGS, never the machine's shared PostgreSQL
// (128 MB shared_buffers); the migrations applied as `pnpm db:migrate` does; clicks and
// conversions over the 90 days ending now, built with SQL (the header of bench/dataset.ts says
// how). Then report rows from the raw rows with reports:rebuild (rebuildReports, one UTC day per
// transaction), timed; then VACUUM ANALYZE.
// Measured: the API (createApp from services/api, in this process, production settings) over
// HTTP from a client in a child process (undici, one keep-alive connection, one request at a
// time): p50/p99 over 200 requests after a warm-up of
//   a) 90 days by day × offer (the first page: up to 10,000 rows), b) 30 days by affiliate × sub2,
//   c) the summary (today, yesterday, this month, last month) — targets p99 ≤ 100 ms;
//   d) a day by sub1 (a group per click: served, not held to the target);
//   e) the 90-day CSV by day × offer × affiliate, streamed: rows/s (lines counted) — ≥ 50,000;
//   f) (a) and (b) in Asia/Kolkata, a zone without day rows (15-minute rows answer);
//   g) (a) and (b) with limit=10000, the largest JSON page (informational);
//   h) the console's overview in Chromium (Debian's, through playwright-core), signed in, on a cold
//      cache: first contentful paint and the chart drawn — target first paint < 1 s.
// (d) and (f) take up to 200 requests or as many as fit in 60 s. Each figure says which report
// rows answered it. A missed target prints the EXPLAIN (ANALYZE, BUFFERS) of its SQL (BENCH_EXPLAIN=1:
// every figure's); REPORTS_HOLD=<seconds> keeps the server and the API up that long before measuring,
// for a look by hand.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDatabase, migrate } from '@trackway/db';
import { type ReportQuery, createSecretBox } from '@trackway/domain';
import { explainReport, planReportSql, rebuildReports, sourceFor } from '@trackway/ledger';
import { createLogger } from '@trackway/logger';
import { createProducerConnection, createQueues, whenReady } from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { TEST_REDIS_URL, deleteRedisPrefix, ignoreErrors, randomPrefix } from '@trackway/testing';
import { Pool as HttpPool } from 'undici';
import { createApp } from '../services/api/src/app';
import { createVerifier, signAdminToken } from '../services/api/src/auth';
import { ReportParams, reportRequest } from '../services/api/src/report-representations';
import { ADVERTISERS, AFFILIATES, DAY_MS, OFFERS, type Server, buildDataSet, startServer, tableSize } from './dataset';
import {
  QUICK,
  type Row,
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
  summarize,
  withDeadline,
} from './lib';

const CLICKS = size(Number(process.env.REPORTS_CLICKS ?? 20_000_000), 200_000);
const CONVERSIONS = size(Number(process.env.REPORTS_CONVERSIONS ?? 1_000_000), 10_000);
const DAYS = 90;
/** Requests per figure (after the warm-up). */
const REQUESTS = size(Number(process.env.REPORTS_REQUESTS ?? 200), 20);
const WARMUP = size(10, 2);
const MIN_REQUESTS = size(10, 3);
/** The informational figures stop after this many requests once past their budget (a request may take seconds). */
const INFORMATIONAL_MIN = size(3, 2);
/** A figure with a target: REQUESTS, unless they take longer than this (then as many as fit, at least MIN_REQUESTS). */
const TARGET_BUDGET_MS = size(600_000, 3_000);
/** The informational figures (sub1, a zone without day rows): up to REQUESTS, or as many as fit in this. */
const INFORMATIONAL_MS = size(60_000, 3_000);
const CSV_RUNS = size(3, 1);
const P99_TARGET_MS = 100;
const CSV_TARGET = 50_000;
/** REPORTS_HOLD=<seconds>: the server and the API stay up this long before measuring (a look by hand). */
const HOLD_S = Number(process.env.REPORTS_HOLD ?? 0);

// ——— The client (a child process: `BENCH_REPORTS_ROLE=client`) ———

interface ClientJob {
  label: string;
  path: string;
  warmup: number;
  requests: number;
  /** Stop after this long (the informational figures). */
  budgetMs?: number;
  /** A figure without a target: at least INFORMATIONAL_MIN requests, not MIN_REQUESTS. */
  informational?: boolean;
  csv?: boolean;
}

interface ClientResult {
  label: string;
  latencies: number[];
  statuses: Record<string, number>;
  /** JSON: bytes of the last answer; CSV: rows (lines but the header) and bytes of each answer. */
  bytes: number;
  rows: number[];
  incomplete: string[];
}

async function runClient(port: number, token: string, jobs: ClientJob[]): Promise<ClientResult[]> {
  const pool = new HttpPool(`http://127.0.0.1:${port}`, {
    connections: 1,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    bodyTimeout: 600_000,
    headersTimeout: 600_000,
  });
  const headers = { authorization: `Bearer ${token}` };
  const results: ClientResult[] = [];
  for (const job of jobs) {
    const result: ClientResult = { label: job.label, latencies: [], statuses: {}, bytes: 0, rows: [], incomplete: [] };
    const one = async (measured: boolean) => {
      const t0 = performance.now();
      const res = await pool.request({ path: job.path, method: 'GET', headers });
      let bytes = 0;
      let lines = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (job.csv) for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines += 1;
      }
      const elapsed = performance.now() - t0;
      if (!measured) return;
      result.latencies.push(elapsed);
      result.statuses[res.statusCode] = (result.statuses[res.statusCode] ?? 0) + 1;
      result.bytes = bytes;
      if (job.csv) {
        result.rows.push(lines - 1);
        result.incomplete.push(String(res.trailers?.['trackway-incomplete-results'] ?? 'missing'));
      }
    };
    for (let i = 0; i < job.warmup; i++) await one(false);
    const started = performance.now();
    for (let i = 0; i < job.requests; i++) {
      await one(true);
      if (job.budgetMs && performance.now() - started > job.budgetMs && i + 1 >= (job.informational ? INFORMATIONAL_MIN : MIN_REQUESTS)) break;
    }
    results.push(result);
    const l = summarize(result.latencies);
    console.log(`  ${job.label}: ${l.count} requests, p50 ${ms(l.p50)}, p99 ${ms(l.p99)} (status ${JSON.stringify(result.statuses)})`);
  }
  await pool.close();
  return results;
}

async function clientInChild(port: number, token: string, jobs: ClientJob[], children: ChildProcess[]): Promise<ClientResult[]> {
  const child = forkTs('bench/reports.ts', { BENCH_REPORTS_ROLE: 'client' });
  children.push(child);
  const done = nextMessage<{ results: ClientResult[] }>(child, 'results');
  child.send({ type: 'run', port, token, jobs });
  const { results } = await done;
  child.kill();
  return results;
}

// ——— The console, in Chromium ———

/** The overview's first paint on a cold cache (a new browser context each run), signed in through the login form. */
async function consolePaint(port: number, token: string): Promise<{ runs: Array<{ paint: number; chart: number }> } | null> {
  if (!existsSync('/usr/bin/chromium')) return null;
  const { launchChromium } = await import('@trackway/testing');
  const browser = await launchChromium();
  try {
    const base = `http://127.0.0.1:${port}`;
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/console`);
    await page.fill('#token', token);
    await page.click('button[type=submit]');
    await page.waitForURL(`${base}/console`);
    const cookies = await context.cookies();
    const runs: Array<{ paint: number; chart: number }> = [];
    for (let i = 0; i < size(5, 2); i++) {
      const cold = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      await cold.addCookies(cookies);
      const fresh = await cold.newPage();
      const t0 = performance.now();
      await fresh.goto(`${base}/console`);
      await fresh.locator('#chart[data-rendered="true"] canvas').first().waitFor({ timeout: 30_000 });
      const chart = performance.now() - t0;
      const paint = await fresh.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1);
      runs.push({ paint, chart });
      await cold.close();
    }
    return { runs };
  } finally {
    await browser.close();
  }
}

// ——— The bench ———

const isoDate = (at: number) => new Date(at).toISOString().slice(0, 10);

async function main() {
  const children: ChildProcess[] = [];
  let server: Server | undefined;
  let db: ReturnType<typeof createDatabase> | undefined;
  const prefix = randomPrefix();
  const redis = createProducerConnection(TEST_REDIS_URL);
  redis.on('error', () => undefined);
  const queues = createQueues(redis, prefix, ignoreErrors);
  let httpServer: http.Server | undefined;
  const cleanup = once(async () => {
    for (const c of children) c.kill('SIGKILL');
    httpServer?.closeAllConnections();
    httpServer?.close();
    await Promise.all(Object.values(queues).map((q) => q.close().catch(() => undefined)));
    redis.disconnect();
    await deleteRedisPrefix(prefix).catch(() => undefined);
    await db?.prisma.$disconnect().catch(() => undefined);
    await server?.stop();
  });
  cleanupOnInterrupt(cleanup);
  const rows: Row[] = [];
  let problems = 0;
  const tierStarted = performance.now();
  try {
    await withDeadline('reports bench', size(3_600_000, 200_000) + HOLD_S * 1000, async () => {
      console.log(machineNote());
      console.log(
        `reports bench: ${CLICKS.toLocaleString('en-US')} clicks, ${CONVERSIONS.toLocaleString('en-US')} conversions over ${DAYS} days; ` +
          `${ADVERTISERS} advertisers, ${OFFERS} offers, ${AFFILIATES} affiliates`,
      );
      let t0 = performance.now();
      server = await startServer(['trackway_reports']);
      console.log(`server: embedded ${server.settings} (started in ${ms(performance.now() - t0)})`);
      t0 = performance.now();
      await migrate(server.url);
      console.log(`migrations applied in ${ms(performance.now() - t0)}`);
      db = createDatabase(server.url, { poolSize: 10 });
      const { pool } = db;
      // A connection Postgres ends while the API holds it (e.g. idle_in_transaction_session_timeout)
      // emits 'error' with no listener, which would end this process: counted and reported instead.
      const connectionErrors: string[] = [];
      pool.on('connect', (client) => client.on('error', (error: Error) => void connectionErrors.push(error.message)));

      console.log('data set:');
      const loadStarted = performance.now();
      await buildDataSet(pool, { days: DAYS, clicks: CLICKS, conversions: CONVERSIONS }, (line) => console.log(line));

      // Report rows, as `pnpm reports:rebuild` builds them.
      const rebuildStarted = performance.now();
      let lastPrint = 0;
      const rebuilt = await rebuildReports(pool, {
        progress: (day, done, of) => {
          if (performance.now() - lastPrint > 10_000 || done === of) {
            lastPrint = performance.now();
            console.log(`  reports:rebuild ${isoDate(day.getTime())} (${done}/${of} days, ${((performance.now() - rebuildStarted) / 1000).toFixed(0)} s)`);
          }
        },
      });
      const rebuildMs = performance.now() - rebuildStarted;
      const rawRows = CLICKS + 2 * CONVERSIONS;
      const counts: Array<{ table: string; n: number; size: string }> = [];
      for (const table of ['clicks', 'conversions', 'report_quarters', 'report_days', 'report_offer_days']) {
        const { rows: r } = await pool.query<{ n: string; size: string }>(
          `SELECT (SELECT count(*) FROM ${table}) AS n, pg_size_pretty(${tableSize(table)}) AS size`,
        );
        counts.push({ table, n: Number(r[0].n), size: r[0].size });
      }
      console.log(
        `  reports:rebuild: ${rebuilt.days} days in ${(rebuildMs / 1000).toFixed(1)} s (${rate(rawRows / (rebuildMs / 1000), 'raw rows/s')}: each click once, each conversion twice)`,
      );
      t0 = performance.now();
      await pool.query('VACUUM ANALYZE');
      console.log(`  VACUUM ANALYZE: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      for (const c of counts) console.log(`  ${c.table.padEnd(18)} ${c.n.toLocaleString('en-US').padStart(12)} rows, ${c.size}`);
      const loadMs = performance.now() - loadStarted;
      console.log(`data set and report rows built in ${(loadMs / 1000).toFixed(1)} s`);

      // --- the API, in this process, as the api service runs it --------------------------------
      await whenReady(redis);
      const secret = randomBytes(32).toString('hex');
      const box = randomBytes(32);
      const app = createApp({
        prisma: db.prisma,
        pool,
        queues,
        redis,
        box: createSecretBox(box),
        sessionKey: box,
        webhooks: { schedule: [0], allowHttp: false, allowedCidrs: [] },
        invalidate: async () => undefined,
        verifier: createVerifier({ secret }),
        logger: createLogger({ service: 'bench', level: 'silent' }),
        metrics: createMetrics('api'),
        health: { accepting: true, checks: {} },
      });
      httpServer = http.createServer(app);
      httpServer.keepAliveTimeout = 120_000;
      await new Promise<void>((resolve) => httpServer!.listen(0, '127.0.0.1', resolve));
      const port = (httpServer.address() as AddressInfo).port;
      const token = await signAdminToken(secret);
      if (HOLD_S > 0) {
        console.log(`REPORTS_HOLD: database ${server.url}, API http://127.0.0.1:${port} (Authorization: Bearer ${token}) for ${HOLD_S} s`);
        await new Promise((resolve) => setTimeout(resolve, HOLD_S * 1000));
      }

      const now = Date.now();
      const from90 = isoDate(now - DAYS * DAY_MS);
      const from30 = isoDate(now - 30 * DAY_MS);
      const tomorrow = isoDate(now + DAY_MS);
      const yesterday = isoDate(now - DAY_MS);
      const today = isoDate(now);
      const q = (params: Record<string, string>) => `/v1/reports?${new URLSearchParams(params).toString()}`;
      const paths = {
        a: q({ from: from90, to: tomorrow, group_by: 'day,offer_id' }),
        b: q({ from: from30, to: tomorrow, group_by: 'affiliate_id,sub2' }),
        c: '/v1/reports/summary',
        d: q({ from: yesterday, to: today, group_by: 'sub1' }),
        e: q({ from: from90, to: tomorrow, group_by: 'day,offer_id,affiliate_id', format: 'csv' }),
        fa: q({ from: from90, to: tomorrow, group_by: 'day,offer_id', tz: 'Asia/Kolkata' }),
        fb: q({ from: from30, to: tomorrow, group_by: 'affiliate_id,sub2', tz: 'Asia/Kolkata' }),
        ga: q({ from: from90, to: tomorrow, group_by: 'day,offer_id', limit: '10000' }),
        gb: q({ from: from30, to: tomorrow, group_by: 'affiliate_id,sub2', limit: '10000' }),
      };
      // Which rows answer each report, and its SQL (for EXPLAIN).
      const queryOf = (p: string): ReportQuery => reportRequest(ReportParams.parse(Object.fromEntries(new URL(p, 'http://x').searchParams))).query;
      const plans = Object.fromEntries(
        await Promise.all(
          (['a', 'b', 'd', 'e', 'fa', 'fb', 'ga', 'gb'] as const).map(async (k) => {
            const query = queryOf(paths[k]);
            const source = await sourceFor(pool, query);
            return [k, { source, plan: planReportSql(query, source) }] as const;
          }),
        ),
      );
      for (const [k, { source }] of Object.entries(plans)) console.log(`  ${k}: ${paths[k as keyof typeof paths]} → ${source} rows`);

      const jobs: ClientJob[] = [
        { label: 'a', path: paths.a, warmup: WARMUP, requests: REQUESTS, budgetMs: TARGET_BUDGET_MS },
        { label: 'b', path: paths.b, warmup: WARMUP, requests: REQUESTS, budgetMs: TARGET_BUDGET_MS },
        { label: 'c', path: paths.c, warmup: WARMUP, requests: REQUESTS, budgetMs: TARGET_BUDGET_MS },
        { label: 'e', path: paths.e, warmup: size(1, 0), requests: CSV_RUNS, csv: true },
        { label: 'd', informational: true, path: paths.d, warmup: size(2, 0), requests: REQUESTS, budgetMs: INFORMATIONAL_MS },
        { label: 'fa', informational: true, path: paths.fa, warmup: size(1, 0), requests: REQUESTS, budgetMs: INFORMATIONAL_MS },
        { label: 'fb', informational: true, path: paths.fb, warmup: size(1, 0), requests: REQUESTS, budgetMs: INFORMATIONAL_MS },
        { label: 'ga', informational: true, path: paths.ga, warmup: size(1, 0), requests: REQUESTS, budgetMs: INFORMATIONAL_MS },
        { label: 'gb', informational: true, path: paths.gb, warmup: size(1, 0), requests: REQUESTS, budgetMs: INFORMATIONAL_MS },
      ];
      console.log(`\nmeasuring over HTTP: one keep-alive connection, one request at a time (${machineNote()})`);
      const measureStarted = performance.now();
      const results = Object.fromEntries((await clientInChild(port, token, jobs, children)).map((r) => [r.label, r]));
      console.log(`measured in ${((performance.now() - measureStarted) / 1000).toFixed(1)} s (${machineNote()})`);

      const latencyRow = (key: 'a' | 'b' | 'c' | 'd' | 'fa' | 'fb' | 'ga' | 'gb', metric: string, target: boolean) => {
        const r = results[key];
        const l = summarize(r.latencies);
        const ok = r.statuses[200] === r.latencies.length && r.latencies.length > 0;
        if (!ok) problems += 1;
        const source = key === 'c' ? 'report_totals, 4 periods' : plans[key].source;
        console.log(
          `${metric.padEnd(52)} p50 ${ms(l.p50)}, p99 ${ms(l.p99)}, max ${ms(l.max)} over ${l.count} (status ${JSON.stringify(r.statuses)}; ${(r.bytes / 1024).toFixed(0)} KiB; ${source} rows)`,
        );
        return row('reports', metric, {
          measured: `p99 ${ms(l.p99)} (p50 ${ms(l.p50)})`,
          baseline: `${l.count} requests, ${source} rows`,
          target: target ? `p99 ≤ ${P99_TARGET_MS} ms` : '- (informational)',
          met: target ? l.p99 <= P99_TARGET_MS : null,
          values: { p50: l.p50, p99: l.p99, max: l.max, requests: l.count, bytes: r.bytes },
        });
      };
      rows.push(
        latencyRow('a', `a) ${DAYS} days by day × offer, first page`, true),
        latencyRow('b', 'b) 30 days by affiliate × sub2, first page', true),
        latencyRow('c', 'c) summary (4 periods)', true),
      );
      const csv = results.e;
      const csvRates = csv.latencies.map((t, i) => csv.rows[i] / (t / 1000));
      const csvRate = [...csvRates].sort((x, y) => x - y)[Math.floor((csvRates.length - 1) / 2)];
      const csvOk = csv.statuses[200] === csv.latencies.length && csv.incomplete.every((v) => v === 'false');
      if (!csvOk) problems += 1;
      console.log(
        `e) CSV ${DAYS} days by day × offer × affiliate: ${csv.rows.map((n, i) => `${n.toLocaleString('en-US')} rows in ${ms(csv.latencies[i])}`).join('; ')} ` +
          `(${(csv.bytes / 1024 / 1024).toFixed(1)} MiB; incomplete: ${csv.incomplete.join(', ')}; ${plans.e.source} rows)`,
      );
      rows.push(
        row('reports', `e) CSV ${DAYS} days by day × offer × affiliate`, {
          measured: rate(csvRate, 'rows/s'),
          baseline: `${csv.rows[0]?.toLocaleString('en-US')} rows in ${ms(csv.latencies[0])}, ${plans.e.source} rows`,
          target: `≥ ${CSV_TARGET.toLocaleString('en-US')} rows/s`,
          met: csvRate >= CSV_TARGET,
          values: { measured: csvRate, rows: csv.rows[0] ?? 0, ms: csv.latencies[0] ?? 0 },
        }),
        latencyRow('d', 'd) a day by sub1 (a group per click)', false),
        latencyRow('fa', 'f) (a) in Asia/Kolkata (no day rows)', false),
        latencyRow('fb', 'f) (b) in Asia/Kolkata (no day rows)', false),
        latencyRow('ga', 'g) (a) with limit=10000', false),
        latencyRow('gb', 'g) (b) with limit=10000', false),
      );
      const paint = await consolePaint(port, token);
      if (paint) {
        console.log(`h) console overview, cold cache: ${paint.runs.map((r) => `paint ${ms(r.paint)}, chart ${ms(r.chart)}`).join('; ')}`);
        const worst = Math.max(...paint.runs.map((r) => r.paint));
        rows.push(
          row('reports', 'h) console overview first paint (cold cache)', {
            measured: `max ${ms(worst)} over ${paint.runs.length} (chart drawn: max ${ms(Math.max(...paint.runs.map((r) => r.chart)))})`,
            baseline: 'Chromium, signed in, a new browser context each',
            target: '< 1 s',
            met: worst < 1_000,
            values: { max: worst, runs: paint.runs.length },
          }),
        );
      } else console.log('h) console overview: no Chromium at /usr/bin/chromium, not measured');
      if (connectionErrors.length > 0) problems += 1;
      rows.push(
        row('reports', 'API connections ended by Postgres', {
          measured: connectionErrors.length === 0 ? 'none' : `${connectionErrors.length}: ${[...new Set(connectionErrors)].join('; ')}`,
          baseline: 'each would end the api process (no error listener)',
          met: connectionErrors.length === 0,
          values: { measured: connectionErrors.length },
        }),
      );
      const rebuildRate = rawRows / (rebuildMs / 1000);
      rows.push(
        row('reports', `reports:rebuild, ${DAYS + 2} days`, {
          measured: `${(rebuildMs / 1000).toFixed(1)} s`,
          baseline: `${rawRows.toLocaleString('en-US')} raw rows`,
          ratio: rate(rebuildRate, 'rows/s'),
          values: { ms: rebuildMs, rows_per_second: rebuildRate },
        }),
        row('reports', 'data set + report rows built', {
          measured: `${(loadMs / 1000).toFixed(0)} s`,
          baseline: `${CLICKS.toLocaleString('en-US')} clicks, ${CONVERSIONS.toLocaleString('en-US')} conversions`,
          values: { ms: loadMs },
        }),
      );

      // A missed target: what bounds it.
      const explain = process.env.BENCH_EXPLAIN === '1';
      const missed: Array<[string, keyof typeof plans]> = [];
      if (explain || rows[0].met === false) missed.push(['a', 'a']);
      if (explain || rows[1].met === false) missed.push(['b', 'b']);
      if (explain || rows[3].met === false) missed.push(['e', 'e']);
      for (const [label, key] of missed) {
        const { plan, source } = plans[key];
        for (const part of ['rows', 'totals'] as const) {
          const lines = await explainReport(pool, plan, part);
          console.log(`\nEXPLAIN (ANALYZE, BUFFERS) of ${label})'s ${part} (${source} rows):\n${lines.join('\n')}`);
        }
      }
      if (rows[2].met === false || explain) {
        console.log("\nc) summary: four totals queries (today, yesterday, this month, last month), each as (a)'s totals over its period");
      }
      console.log(`reports tier: ${((performance.now() - tierStarted) / 1000).toFixed(0)} s in all`);
      report('reports', rows);
      if (problems > 0) process.exitCode = 1;
    });
  } finally {
    await cleanup();
  }
}

if (process.env.BENCH_REPORTS_ROLE === 'client') {
  process.on('message', async (m: { type?: string; port: number; token: string; jobs: ClientJob[] }) => {
    if (m?.type !== 'run') return;
    try {
      process.send!({ type: 'results', results: await runClient(m.port, m.token, m.jobs) });
    } catch (error) {
      console.error(error);
      process.exit(1);
    }
  });
} else {
  runBench(main);
}

void ratio;
void QUICK;
