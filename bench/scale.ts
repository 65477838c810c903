// Months of traffic, flat cost: `pnpm bench scale`. A database as a busy network fills it in three
// months (95 days: 20,000,000 clicks, 1,000,000 conversions and their commissions and payouts,
// 2,000,000 postbacks, 3,000,000 events, 6,000,000 deliveries and 6,000,000 attempts; quick:
// 200,000 clicks and 10,000 conversions, the rest in proportion), built with SQL by the builder
// the reports bench uses (bench/dataset.ts), in an embedded PostgreSQL of this bench's own
// (SERVER_SETTINGS). Beside it, on the same server, a second database with the same entities and
// no history: every figure is measured on both, in the same run.
// Both databases also hold a live advertiser, offer and affiliate (what the drains below send),
// two webhook endpoints (local receivers in this process answering 200), and a payee: an affiliate
// with PAYOUT_COMMISSIONS approved, unpaid commissions and a sent payout of 500.
// On each database in turn, the services run as deployed, one process each (services/*/src/main.ts:
// api, ingest, attribution on postbacks and the outbox, delivery on events and deliveries), and:
//   1. The retention step that puts the oldest month past retention (dropExpiredHistory with
//      every history table's retention 65 days), timed, with the WAL of its window
//      (pg_current_wal_lsn before and after), while postback drains run beside it: a drain is
//      DRAIN approved postbacks queued at once (jobs of 16, as ingest coalesces them), timed until
//      every outcome row is written (postbacks/s) and every webhook arrived (webhooks/s), one
//      after another for as long as it runs (counted: the first, and each at least half beside
//      it; drainsBeside). Beside the same drains without it, one before and one after (after a first drain not counted: it
//      reads the database's indexes from disk). Checked: every row inside retention
//      and every pending delivery is still there, and nothing older than retention is left (but
//      in the partition it may share with newer rows).
//   2. Every admin list route over HTTP (one keep-alive connection, one request at a time; p50 and
//      p99 over REQUESTS after a warm-up): conversions by order_id, by affiliate and status (the
//      largest affiliate, and a retired one whose rows are old, with many newer rows of others), by
//      advertiser; an endpoint's failed deliveries; a payout by id; an endpoint's recover (the last
//      12 hours, which hold no failed delivery); and the delivery sweeper's query
//      (createSweeper, in this process). Target p99 ≤ 25 ms.
//   3. POST /v1/payouts of the payee's PAYOUT_COMMISSIONS commissions with drains beside it, one
//      after another for as long as it runs (their mean; counted as in 1), against the drain alone (before and
//      after). Target: the drain ≤ 1.2× as long.
//   4. Click rows written per second by the click writer (bench/worker-child.ts: the attribution
//      clicks worker) from a backlog of CLICK_BACKLOG clicks queued through ingest's /click (32
//      connections), against /click's answers per second. Target: the writer at least as fast.
// A run fails (exit 1) only when a figure could not be measured or a check failed.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createClickIdCodec } from '@trackway/clickid';
import { createDatabase, migrate } from '@trackway/db';
import { boundValue, createSecretBox, newId, newIdBlock } from '@trackway/domain';
import {
  POSTBACK_JOB_VERSION,
  type PostbackJob,
  type TypedQueue,
  addJobs,
  createDeliveryQueues,
  createProducerConnection,
  createQueue,
  whenReady,
} from '@trackway/queues';
import { TEST_REDIS_URL, deleteRedisPrefix, ignoreErrors, randomPrefix } from '@trackway/testing';
import { generateSecret } from '@trackway/webhooks';
import { dropExpiredHistory } from '@trackway/ledger';
import type pg from 'pg';
import { Pool as HttpPool } from 'undici';
import { signAdminToken } from '../services/api/src/auth';
import { createSweeper } from '../services/delivery/src/housekeeping';
import {
  ADVERTISERS,
  AFFILIATES,
  DAY_MS,
  ENDPOINT_FAILURE_RATE,
  OFFERS,
  RETIRED_AFFILIATE,
  type Server,
  buildDataSet,
  startServer,
  tableSize,
} from './dataset';
import { runHttpLoadInChild } from './http-load';
import {
  type LatencySummary,
  type Row,
  bytes,
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
  silentLogger,
  size,
  sleep,
  summarize,
  withDeadline,
} from './lib';
import { SECRETS_KEY, STACK_SECRET } from '../test/support/stack';
import { stackEnv } from '../test/support/processes';
import { EVENTS_PER_POSTBACK, spawnLogged, waitForLog } from './system';

const DAYS = 95;
/** A retention that puts the oldest month of the history past it. */
const RETENTION_DAYS = DAYS - 30;
/** Every history table's retention in the step measured (CLICK_, POSTBACK_ and DELIVERY_LOG_RETENTION_DAYS). */
const RETENTION = { clickDays: RETENTION_DAYS, postbackDays: RETENTION_DAYS, deliveryLogDays: RETENTION_DAYS };
const CLICKS = size(Number(process.env.SCALE_CLICKS ?? 20_000_000), 200_000);
const CONVERSIONS = size(Number(process.env.SCALE_CONVERSIONS ?? 1_000_000), 10_000);
/** Approved postbacks per drain (each makes EVENTS_PER_POSTBACK events, one webhook per endpoint each). */
const DRAIN = size(5_000, 500);
const PAYOUT_COMMISSIONS = size(50_000, 10_000);
const PAID_COMMISSIONS = 500;
const CLICK_BACKLOG = size(50_000, 3_000);
const CLICK_WARMUP = size(2_000, 300);
const REQUESTS = size(Number(process.env.SCALE_REQUESTS ?? 500), 20);
const WARMUP = size(10, 3);
const P99_TARGET_MS = 25;
const PAYOUT_TARGET = 1.2;
/** "No measurable slowdown": a drain beside the retention step keeps at least this share of its rate. */
const SLOWDOWN_FLOOR = 0.9;
/** Postbacks per job, as ingest coalesces them under load (one event-loop turn's). */
const JOB_SIZE = 16;
/** Beside the history's entities: what the drains send, and the payee of the payout. */
const LIVE_ADVERTISER = ADVERTISERS + 1;
const LIVE_OFFER = OFFERS + 1;
const LIVE_AFFILIATE = AFFILIATES + 1;
const PAYEE = AFFILIATES + 2;
const DRAIN_TIMEOUT_MS = size(180_000, 40_000);

/** The history tables (partitioned by time), the column that dates a row, and the span of a partition (days). */
const HISTORY = [
  { table: 'clicks', at: 'created_at', spanDays: 7 },
  { table: 'postbacks', at: 'received_at', spanDays: 1 },
  { table: 'outbox_events', at: 'created_at', spanDays: 1 },
  { table: 'deliveries', at: 'created_at', spanDays: 1 },
  { table: 'delivery_attempts', at: 'at', spanDays: 1 },
] as const;

// ——— The receivers ———

interface Receivers {
  urls: string[];
  /** Webhooks answered so far. */
  total(): number;
  close(): Promise<void>;
}

async function startReceivers(n: number): Promise<Receivers> {
  let total = 0;
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          total += 1;
          res.writeHead(200, { 'content-length': '2' });
          res.end('ok');
        });
      });
      server.keepAliveTimeout = 60_000;
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return server;
    }),
  );
  return {
    urls: servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}/`),
    total: () => total,
    close: async () => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}

// ——— The data set ———

/** The live advertiser (postback key bench-key-51), offer and affiliate, the payee, and the webhook endpoints. */
async function liveEntities(client: pg.PoolClient, receivers: string[]): Promise<void> {
  await client.query(
    `INSERT INTO advertisers (id, name, postback_key_hash, updated_at) VALUES ($1, 'Live advertiser', encode(sha256(('bench-key-' || $1)::bytea), 'hex'), now());
     INSERT INTO offers (id, advertiser_id, name, destination_url, currency, payout_type, payout_amount, updated_at)
       VALUES ($2, $1, 'Live offer', 'https://shop.example/live', 'USD', 'fixed', 5, now());
     INSERT INTO affiliates (id, name, updated_at) VALUES ($3, 'Live affiliate', now()), ($4, 'Payee', now());
     SELECT setval(pg_get_serial_sequence('advertisers', 'id'), $1);
     SELECT setval(pg_get_serial_sequence('offers', 'id'), $2);
     SELECT setval(pg_get_serial_sequence('affiliates', 'id'), $4);`
      .replaceAll('$1', String(LIVE_ADVERTISER))
      .replaceAll('$2', String(LIVE_OFFER))
      .replaceAll('$3', String(LIVE_AFFILIATE))
      .replaceAll('$4', String(PAYEE)),
  );
  const box = createSecretBox(SECRETS_KEY);
  // In id order: the first endpoint has the first failure rate (ENDPOINT_FAILURE_RATE).
  for (const url of receivers)
    await client.query(`INSERT INTO webhook_endpoints (id, url, event_types, secret_sealed, updated_at) VALUES ($1, $2, '{*}', $3, now())`, [
      newId('endpoint'),
      url,
      box.seal(generateSecret()),
    ]);
}

/**
 * The payee's conversions and commissions over the last 30 days, all approved: the oldest
 * PAID_COMMISSIONS in a sent payout (answered: its id), the PAYOUT_COMMISSIONS after them unpaid.
 */
async function addPayee(pool: pg.Pool): Promise<string> {
  const total = PAYOUT_COMMISSIONS + PAID_COMMISSIONS;
  await pool.query(
    `INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency,
                              clicked_at, created_at, updated_at)
     SELECT bench.ulid('cnv', at, k, 91), $1, $2, $3, 'payee-click-' || k, 'payee-' || k, 'sale', 'approved', 50, 'USD', 5, 'USD', at - interval '1 hour', at, at
       FROM (SELECT k, date_trunc('milliseconds', now() - interval '30 days' * (1 - k::float8 / ($4::int + 1))) AS at FROM generate_series(1, $4::int) k) s`,
    [LIVE_ADVERTISER, LIVE_OFFER, PAYEE, total],
  );
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO payouts (id, affiliate_id, currency, amount, status, reference, sent_at, created_at, updated_at)
     SELECT bench.ulid('po', at, 1, 93), $1, 'USD', 5 * $2::int, 'sent', 'wire-payee', at, at, at FROM (SELECT now() - interval '1 day' AS at) s
     RETURNING id`,
    [PAYEE, PAID_COMMISSIONS],
  );
  await pool.query(
    `INSERT INTO commissions (id, conversion_id, affiliate_id, amount, currency, status, payout_id, created_at, updated_at)
     SELECT bench.ulid('com', c.created_at, hashtextextended(c.id, 0), 92), c.id, c.affiliate_id, c.payout, c.payout_currency, 'approved',
            CASE WHEN substr(c.order_id, 7)::int <= $2 THEN $3 END, c.created_at, c.created_at
       FROM conversions c WHERE c.affiliate_id = $1`,
    [PAYEE, PAID_COMMISSIONS, rows[0].id],
  );
  return rows[0].id;
}

// ——— One database's services ———

interface Session {
  name: 'empty' | 'big';
  url: string;
  pool: pg.Pool;
  prefix: string;
  logDir: string;
  children: ChildProcess[];
  apiPort: number;
  ingestPort: number;
  endpoints: string[];
  payoutId: string;
}

async function startServices(s: Omit<Session, 'apiPort' | 'ingestPort' | 'children' | 'logDir'>, children: ChildProcess[]): Promise<Session> {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), `trackway-scale-${s.name}-`));
  const env = stackEnv(
    { db: { url: s.url }, prefix: s.prefix },
    {
      DELIVERY_RETRY_SCHEDULE: '0,1s,5s,30s',
      // The housekeeping jobs are this bench's to run (the retention step, the sweeper): none in the background.
      ATTRIBUTION_QUEUES: 'postbacks,outbox',
      DELIVERY_QUEUES: 'events,deliveries',
    },
  );
  const started = ['api', 'ingest', 'attribution', 'delivery'].map((service) => ({ service, ...spawnLogged(service, env, logDir) }));
  children.push(...started.map((p) => p.child));
  const [api, ingest] = started;
  const apiPort = Number((await waitForLog(api.log, /"port":(\d+).*api listening/, 60_000))[1]);
  const ingestPort = Number((await waitForLog(ingest.log, /"port":(\d+).*ingest listening/, 60_000))[1]);
  await waitForLog(started[2].log, /attribution worker running/, 60_000);
  await waitForLog(started[3].log, /delivery worker running/, 60_000);
  return { ...s, logDir, children: started.map((p) => p.child), apiPort, ingestPort };
}

// ——— The measurements ———

interface Drained {
  postbacksPerSecond: number;
  webhooksPerSecond: number;
  /** Until the last outcome row, and until the last webhook (ms). */
  outcomesMs: number;
  webhooksMs: number;
  /** When it began (performance.now()), and its outcome rows counted as it ran: [ms after it began, rows]. */
  startedAt: number;
  timeline: Array<[number, number]>;
}

let orders = 0;

/** DRAIN approved postbacks queued at once; timed until every outcome row is written and every webhook arrived. */
async function drain(s: Session, queue: TypedQueue<'postbacks'>, receivers: Receivers): Promise<Drained> {
  const codec = createClickIdCodec(STACK_SECRET);
  // Ids minted from here on sort after these bounds (as a partition's bound is written): the polls
  // below read the newest partitions only.
  const since = new Date(Date.now() - 1_000);
  const idsFrom = (prefix: string) => boundValue({ key: { kind: 'id', prefix } }, since);
  const receivedAt = new Date().toISOString();
  const postbacks: Omit<PostbackJob, 'postbackId'>[] = Array.from({ length: DRAIN }, () => ({
    v: POSTBACK_JOB_VERSION,
    advertiserId: LIVE_ADVERTISER,
    receivedAt,
    clickId: codec.issue({ offerId: LIVE_OFFER, affiliateId: LIVE_AFFILIATE, clickedAt: new Date(Date.now() - 60_000) }),
    orderId: `drain-${++orders}`,
    event: 'sale',
    amount: '20.00',
    currency: 'USD',
    status: 'approved',
  }));
  const jobs = [];
  for (let i = 0; i < postbacks.length; i += JOB_SIZE) {
    const block = newIdBlock('postback');
    const list = postbacks.slice(i, i + JOB_SIZE).map((p, k) => ({ ...p, postbackId: block.member(k) }));
    jobs.push({ name: 'postbacks', data: { postbacks: list }, opts: { jobId: block.id } });
  }
  const webhooks = DRAIN * EVENTS_PER_POSTBACK * s.endpoints.length;
  const before = receivers.total();
  const t0 = performance.now();
  await addJobs(queue, jobs);
  let outcomesMs = 0;
  let webhooksMs = 0;
  const timeline: Array<[number, number]> = [];
  while (performance.now() - t0 < DRAIN_TIMEOUT_MS) {
    if (!outcomesMs) {
      const { rows } = await s.pool.query<{ n: string }>('SELECT count(*) AS n FROM postbacks WHERE id >= $3 AND advertiser_id = $1 AND received_at = $2', [
        LIVE_ADVERTISER,
        receivedAt,
        idsFrom('pb_'),
      ]);
      timeline.push([performance.now() - t0, Number(rows[0].n)]);
      if (Number(rows[0].n) >= DRAIN) outcomesMs = performance.now() - t0;
    }
    if (!webhooksMs && receivers.total() - before >= webhooks) webhooksMs = performance.now() - t0;
    if (outcomesMs && webhooksMs) break;
    await sleep(20);
  }
  // Settled: every attempt of the drain recorded, its deliveries no longer pending (what the checks count stands still).
  while (performance.now() - t0 < DRAIN_TIMEOUT_MS && webhooksMs) {
    const { rows } = await s.pool.query<{ n: string }>(`SELECT count(*) AS n FROM deliveries WHERE id >= $1 AND status = 'pending'`, [idsFrom('dlv_')]);
    if (Number(rows[0].n) === 0) break;
    await sleep(20);
  }
  if (!outcomesMs || !webhooksMs)
    throw new Error(`${s.name}: a drain of ${DRAIN} postbacks did not end within ${DRAIN_TIMEOUT_MS} ms (${receivers.total() - before}/${webhooks} webhooks)`);
  return {
    outcomesMs,
    webhooksMs,
    postbacksPerSecond: DRAIN / (outcomesMs / 1000),
    webhooksPerSecond: webhooks / (webhooksMs / 1000),
    startedAt: t0,
    timeline,
  };
}

/** Outcome rows a drain wrote in each SLICE_MS of it (from its samples, each slice's rows as counted by its end). */
const SLICE_MS = 250;
const perSlice = (d: Drained) => {
  const slices: number[] = [];
  let last = 0;
  for (let end = SLICE_MS; last < DRAIN && end <= d.outcomesMs + SLICE_MS; end += SLICE_MS) {
    const seen = d.timeline.filter(([at]) => at <= end).at(-1)?.[1] ?? 0;
    slices.push(seen - last);
    last = seen;
  }
  return slices.join(' ');
};

/** The rates of drains (their mean). */
type Rates = Pick<Drained, 'postbacksPerSecond' | 'webhooksPerSecond' | 'outcomesMs' | 'webhooksMs'>;
const meanOf = (runs: Drained[]): Rates => ({
  postbacksPerSecond: runs.reduce((a, r) => a + r.postbacksPerSecond, 0) / runs.length,
  webhooksPerSecond: runs.reduce((a, r) => a + r.webhooksPerSecond, 0) / runs.length,
  outcomesMs: runs.reduce((a, r) => a + r.outcomesMs, 0) / runs.length,
  webhooksMs: runs.reduce((a, r) => a + r.webhooksMs, 0) / runs.length,
});

/**
 * Drains one after another for as long as `step` runs. A drain counts if at least half of it ran
 * beside the step (the first always, however short the step: its share is printed): one that
 * starts as the step ends measures the drain alone. Returns the counted, and the ones run.
 */
async function drainsBeside(s: Session, queue: TypedQueue<'postbacks'>, receivers: Receivers, step: Promise<unknown>) {
  const ended = { at: null as number | null };
  const end = () => {
    ended.at = performance.now();
  };
  step.then(end, end);
  const counted: Drained[] = [];
  const run: Array<Drained & { beside: number }> = [];
  do {
    const d = await drain(s, queue, receivers);
    // Of the span the figures time: from its jobs' add until its last outcome row.
    const last = d.startedAt + d.outcomesMs;
    const beside = Math.max(0, Math.min(last, ended.at ?? last) - d.startedAt) / d.outcomesMs;
    run.push({ ...d, beside });
    if (counted.length === 0 || beside >= 0.5) counted.push(d);
  } while (ended.at === null);
  return { counted, run };
}
/** A drain's figure, and the share of it that ran beside the step. */
const besideShare = (d: { beside: number }, figure: string) => `${figure} (${Math.round(d.beside * 100)} % beside it)`;

interface RetentionFigures {
  ms: number;
  wal: number;
  /** WAL the drain alone writes (the one before), for a sense of what the step's window holds beside the step. */
  drainWal: number;
  what: string;
  during: Rates;
  without: Rates;
  drains: number;
  problems: string[];
}

async function walLsn(pool: pg.Pool): Promise<string> {
  return (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
}
async function walSince(pool: pg.Pool, lsn: string): Promise<number> {
  return Number((await pool.query<{ n: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn) AS n', [lsn])).rows[0].n);
}

/** The rows of each history table inside retention (up to `until`), those of the retired tables older than retention and its partition span, and pending deliveries. */
async function historyCounts(pool: pg.Pool, cutoff: Date, until: Date) {
  const counts: Record<string, number> = {};
  for (const h of HISTORY) {
    const { rows } = await pool.query<{ kept: string; old: string }>(
      `SELECT (SELECT count(*) FROM ${h.table} WHERE ${h.at} >= $1 AND ${h.at} < $2) AS kept,
              (SELECT count(*) FROM ${h.table} WHERE ${h.at} < $3) AS old`,
      [cutoff, until, new Date(cutoff.getTime() - h.spanDays * DAY_MS)],
    );
    counts[`${h.table} inside retention`] = Number(rows[0].kept);
    counts[`${h.table} past retention`] = Number(rows[0].old);
  }
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND created_at < $1`, [until]);
  counts['pending deliveries'] = Number(rows[0].n);
  return counts;
}

async function runRetention(s: Session): Promise<string> {
  const { dropped, kept, tables, locks } = await dropExpiredHistory(s.pool, { retention: RETENTION });
  const each = Object.entries(tables).map(([table, t]) => {
    const lock = locks[table];
    const waited = lock?.blockedBy.length ? ` (a try waited for: ${lock.blockedBy.join(' | ')})` : '';
    const had =
      lock?.heldMs == null ? '' : `locked ${ms(lock.heldMs)} ${lock.tries ? `at try ${lock.tries}` : 'without waiting'}, ${ms(lock.atMs ?? 0)} into the step`;
    return `${table} ${ms(t)}${lock ? `: ${had || `no lock in ${lock.tries} tries, one by one`}${waited}` : ''}`;
  });
  return `dropExpiredHistory: ${dropped.length} partitions dropped${each.length ? ` (${each.join(', ')})` : ''}${kept.length ? `, ${kept.length} kept (${kept.map((k) => `${k.partition}: ${k.reason}`).join('; ')})` : ''}`;
}

/** Figure 1: the retention step, with drains beside it, and drains without it before and after. */
async function retentionFigure(s: Session, queue: TypedQueue<'postbacks'>, receivers: Receivers): Promise<RetentionFigures> {
  const problems: string[] = [];
  // Not counted: the first drain of a database reads its indexes from disk (a drain after it does not).
  await drain(s, queue, receivers);
  let lsn = await walLsn(s.pool);
  const before = await drain(s, queue, receivers);
  const drainWal = await walSince(s.pool, lsn);
  const startedAt = new Date();
  const cutoff = new Date(startedAt.getTime() - RETENTION_DAYS * DAY_MS);
  const counted = await historyCounts(s.pool, cutoff, startedAt);
  lsn = await walLsn(s.pool);
  const t0 = performance.now();
  let elapsed = 0;
  // The WAL of the step's window (the drains beside it write theirs meanwhile), read as it ends.
  const step = runRetention(s).then(async (what) => {
    elapsed = performance.now() - t0;
    const wal = await walSince(s.pool, lsn);
    return { what, wal };
  });
  step.catch(() => undefined);
  const { counted: during, run } = await drainsBeside(s, queue, receivers, step);
  const { what, wal } = await step;
  const after = await drain(s, queue, receivers);
  const left = await historyCounts(s.pool, cutoff, startedAt);
  for (const h of HISTORY) {
    const key = `${h.table} inside retention`;
    if (left[key] !== counted[key]) problems.push(`${key}: ${counted[key]} before, ${left[key]} after`);
    const old = `${h.table} past retention`;
    if (left[old] !== 0) problems.push(`${old} (and its partition's span): ${left[old]} left`);
  }
  if (left['pending deliveries'] !== counted['pending deliveries'])
    problems.push(`pending deliveries: ${counted['pending deliveries']} before, ${left['pending deliveries']} after`);
  console.log(
    `  [${s.name}] retention step (${RETENTION_DAYS} days): ${what} in ${ms(elapsed)}, WAL ${bytes(wal)} (a drain alone writes ${bytes(drainWal)}); ` +
      `${run.length} drain(s) beside it: ${run.map((d) => besideShare(d, rate(d.postbacksPerSecond, 'postbacks/s'))).join(', ')} (counted: the first ${during.length}); without: ${[before, after].map((d) => rate(d.postbacksPerSecond, 'postbacks/s')).join(', ')}` +
      `${problems.length ? `; PROBLEMS: ${problems.join('; ')}` : '; every row inside retention kept'}`,
  );
  // Where a drain beside the step lost its pace: its rows per slice, the step's span on its clock, and the drain before's.
  console.log(
    `  [${s.name}] outcome rows per ${SLICE_MS} ms: beside the step (from ${ms(t0 - run[0].startedAt)} to ${ms(t0 + elapsed - run[0].startedAt)} of it) ${perSlice(run[0])}; the drain before ${perSlice(before)}`,
  );
  return { ms: elapsed, wal, drainWal, what, during: meanOf(during), without: meanOf([before, after]), drains: during.length, problems };
}

interface Latency {
  summary: LatencySummary;
  statuses: Record<string, number>;
  bytes: number;
}

/** `count` requests one at a time over one keep-alive connection, after `warmup` unmeasured. */
async function timeRequests(
  client: HttpPool,
  token: string,
  request: (i: number) => { method: 'GET' | 'POST'; path: string; body?: unknown },
  count: number,
  warmup: number,
): Promise<Latency> {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let answerBytes = 0;
  for (let i = 0; i < warmup + count; i++) {
    const { method, path: p, body } = request(i);
    const t0 = performance.now();
    const res = await client.request({
      method,
      path: p,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.body.text();
    const elapsed = performance.now() - t0;
    if (i < warmup) continue;
    latencies.push(elapsed);
    statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
    answerBytes = text.length;
  }
  return { summary: summarize(latencies), statuses, bytes: answerBytes };
}

interface RouteFigure {
  label: string;
  expect: number;
  latency: Latency;
}

/** Figure 2: every admin list route, and the sweeper's query. */
async function routeFigures(s: Session, token: string): Promise<RouteFigure[]> {
  const client = new HttpPool(`http://127.0.0.1:${s.apiPort}`, { connections: 1, pipelining: 1, keepAliveTimeout: 60_000 });
  // Orders of conversions picked all over the table (a different one each request).
  const { rows } = await s.pool.query<{ order_id: string }>('SELECT order_id FROM conversions ORDER BY hashtext(id) LIMIT 500');
  const order = (i: number) => rows[i % rows.length]?.order_id ?? 'none';
  const endpoint = s.endpoints[0];
  const routes: Array<{ label: string; expect: number; request: (i: number) => { method: 'GET' | 'POST'; path: string; body?: unknown } }> = [
    {
      label: 'GET /v1/conversions?order_id=',
      expect: 200,
      request: (i) => ({ method: 'GET', path: `/v1/conversions?order_id=${encodeURIComponent(order(i))}` }),
    },
    {
      label: 'GET /v1/conversions?affiliate_id=&status=approved, the largest affiliate',
      expect: 200,
      request: () => ({ method: 'GET', path: '/v1/conversions?affiliate_id=1&status=approved' }),
    },
    {
      label: `GET /v1/conversions?affiliate_id=&status=approved, a retired affiliate (${RETIRED_AFFILIATE})`,
      expect: 200,
      request: () => ({ method: 'GET', path: `/v1/conversions?affiliate_id=${RETIRED_AFFILIATE}&status=approved` }),
    },
    { label: 'GET /v1/conversions?advertiser_id=', expect: 200, request: () => ({ method: 'GET', path: '/v1/conversions?advertiser_id=1' }) },
    {
      label: `GET /v1/webhook-endpoints/{id}/deliveries?status=failed (${ENDPOINT_FAILURE_RATE[0] * 100} % failed)`,
      expect: 200,
      request: () => ({ method: 'GET', path: `/v1/webhook-endpoints/${endpoint}/deliveries?status=failed` }),
    },
    { label: `GET /v1/payouts/{id} (${PAID_COMMISSIONS} commissions)`, expect: 200, request: () => ({ method: 'GET', path: `/v1/payouts/${s.payoutId}` }) },
    {
      label: 'POST /v1/webhook-endpoints/{id}/recover, the last 12 h',
      expect: 202,
      request: () => ({
        method: 'POST',
        path: `/v1/webhook-endpoints/${endpoint}/recover`,
        body: { since: new Date(Date.now() - 12 * 3_600_000).toISOString() },
      }),
    },
  ];
  const figures: RouteFigure[] = [];
  try {
    for (const r of routes) {
      const latency = await timeRequests(client, token, r.request, REQUESTS, WARMUP);
      figures.push({ label: r.label, expect: r.expect, latency });
      console.log(
        `  [${s.name}] ${r.label.padEnd(82)} p50 ${ms(latency.summary.p50)}, p99 ${ms(latency.summary.p99)} (status ${JSON.stringify(latency.statuses)}, ${latency.bytes} bytes)`,
      );
    }
  } finally {
    await client.close();
  }
  // The sweeper's query, as the housekeeping worker runs it every minute (nothing is overdue: it puts nothing back).
  const producer = createProducerConnection(TEST_REDIS_URL);
  producer.on('error', () => undefined);
  const deliveries = createDeliveryQueues(producer, s.prefix, ignoreErrors);
  try {
    const sweep = createSweeper({ pool: s.pool, deliveriesQueue: deliveries, schedule: [0, 1000], logger: silentLogger() });
    const latencies: number[] = [];
    let swept = 0;
    for (let i = 0; i < WARMUP + REQUESTS; i++) {
      const t0 = performance.now();
      const result = await sweep();
      if (i >= WARMUP) latencies.push(performance.now() - t0);
      swept += result.requeued;
    }
    const summary = summarize(latencies);
    const statuses: Record<string, number> = swept === 0 ? { ok: latencies.length } : { requeued: swept };
    figures.push({ label: "the delivery sweeper's query (createSweeper)", expect: 0, latency: { summary, statuses, bytes: 0 } });
    console.log(
      `  [${s.name}] ${"the delivery sweeper's query (createSweeper)".padEnd(82)} p50 ${ms(summary.p50)}, p99 ${ms(summary.p99)} (put back: ${swept})`,
    );
  } finally {
    await Promise.all(deliveries.all().map((q) => q.close()));
    producer.disconnect();
  }
  return figures;
}

interface PayoutFigures {
  payoutMs: number;
  taken: number;
  status: number;
  /** The mean of the drains beside the payout (one after another while it runs), and of those alone. */
  with: Rates;
  alone: Rates;
  drains: number;
}

/** Figure 3: the payee's payout with drains beside it for as long as it runs, and drains alone before and after. */
async function payoutFigure(s: Session, token: string, queue: TypedQueue<'postbacks'>, receivers: Receivers): Promise<PayoutFigures> {
  const before = await drain(s, queue, receivers);
  const client = new HttpPool(`http://127.0.0.1:${s.apiPort}`, { connections: 1, bodyTimeout: 600_000, headersTimeout: 600_000 });
  const t0 = performance.now();
  const payout = client
    .request({
      method: 'POST',
      path: '/v1/payouts',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ affiliate_id: PAYEE, currency: 'USD' }),
    })
    .then(async (res) => {
      const body = (await res.body.json()) as { commission_ids?: string[] };
      return { status: res.statusCode, taken: body.commission_ids?.length ?? 0, ms: performance.now() - t0 };
    });
  // Drains for the whole of the payout, not only its first seconds.
  const { counted: beside, run } = await drainsBeside(s, queue, receivers, payout);
  const paid = await payout;
  await client.close();
  const after = await drain(s, queue, receivers);
  const alone = meanOf([before, after]);
  console.log(
    `  [${s.name}] POST /v1/payouts: ${paid.status}, ${paid.taken.toLocaleString('en-US')} commissions in ${ms(paid.ms)}; ${run.length} drain(s) beside it ` +
      `${run.map((d) => besideShare(d, ms(d.outcomesMs))).join(', ')} (counted: the first ${beside.length}), alone ${ms(before.outcomesMs)} and ${ms(after.outcomesMs)}`,
  );
  return { payoutMs: paid.ms, taken: paid.taken, status: paid.status, with: meanOf(beside), alone, drains: beside.length };
}

interface ClickFigures {
  answered: number;
  clickRps: number;
  written: number;
  rowsPerSecond: number;
}

/** Figure 4: /click answers per second into a backlog, then the click writer's rows per second draining it. */
async function clickFigure(s: Session, children: ChildProcess[]): Promise<ClickFigures> {
  const paths = (n: number, tag: string) =>
    Array.from({ length: n }, (_, i) => `/click?offer_id=${LIVE_OFFER}&affiliate_id=${LIVE_AFFILIATE}&sub1=pc-${tag}-${i}&sub2=campaign-${i % 50}`);
  const since = new Date(Date.now() - 60_000);
  const load = await runHttpLoadInChild({ port: s.ingestPort, warmup: paths(CLICK_WARMUP, 'w'), paths: paths(CLICK_BACKLOG, 'm'), concurrency: 32 });
  const answered = (load.statuses['302'] ?? 0) + (load.warmupStatuses['302'] ?? 0);
  const worker = forkTs('bench/worker-child.ts', {
    BENCH_DATABASE_URL: s.url,
    BENCH_PREFIX: s.prefix,
    BENCH_CLICK_SECRET: STACK_SECRET,
    BENCH_QUEUES: 'clicks',
  });
  children.push(worker);
  await nextMessage(worker, 'ready');
  const t0 = performance.now();
  worker.send({ type: 'start' });
  let written = 0;
  while (written < answered && performance.now() - t0 < DRAIN_TIMEOUT_MS) {
    await sleep(25);
    written = Number(
      (await s.pool.query<{ n: string }>('SELECT count(*) AS n FROM clicks WHERE created_at >= $2 AND offer_id = $1', [LIVE_OFFER, since])).rows[0].n,
    );
  }
  const elapsed = performance.now() - t0;
  worker.send({ type: 'stop' });
  await nextMessage(worker, 'stopped').catch(() => undefined);
  const rowsPerSecond = written / (elapsed / 1000);
  console.log(
    `  [${s.name}] GET /click: ${rate(load.rps, 'answers/s')} (${answered} × 302, p99 ${ms(load.latency.p99)}); the click writer: ${written}/${answered} rows in ${ms(elapsed)} (${rate(rowsPerSecond, 'rows/s')})`,
  );
  return { answered, clickRps: load.rps, written, rowsPerSecond };
}

// ——— The bench ———

interface Figures {
  retention: RetentionFigures;
  routes: RouteFigure[];
  payout: PayoutFigures;
  clicks: ClickFigures;
}

async function main() {
  const children: ChildProcess[] = [];
  const prefixes: string[] = [];
  const pools: Array<ReturnType<typeof createDatabase>> = [];
  let server: Server | undefined;
  let receivers: Receivers | undefined;
  const producer = createProducerConnection(TEST_REDIS_URL);
  producer.on('error', () => undefined);
  const queues: Array<{ close(): Promise<void> }> = [];
  const cleanup = once(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(queues.map((q) => q.close().catch(() => undefined)));
    producer.disconnect();
    for (const p of prefixes) await deleteRedisPrefix(p).catch(() => undefined);
    for (const d of pools) await d.prisma.$disconnect().catch(() => undefined);
    await receivers?.close();
    await server?.stop();
  });
  cleanupOnInterrupt(cleanup);
  const rows: Row[] = [];
  const problems: string[] = [];
  const started = performance.now();
  try {
    await withDeadline('scale bench', size(7_200_000, 210_000), async () => {
      console.log(machineNote());
      console.log(
        `scale bench: ${CLICKS.toLocaleString('en-US')} clicks and ${CONVERSIONS.toLocaleString('en-US')} conversions over ${DAYS} days with their history, beside a database without history; ` +
          `retention ${RETENTION_DAYS} days (dropExpiredHistory); drains of ${DRAIN} postbacks; a payout of ${PAYOUT_COMMISSIONS.toLocaleString('en-US')} commissions; ${CLICK_BACKLOG} clicks`,
      );
      let t0 = performance.now();
      server = await startServer(['trackway_scale', 'trackway_empty'], { maxConnections: 200 });
      console.log(`server: embedded ${server.settings} (started in ${ms(performance.now() - t0)})`);
      receivers = await startReceivers(2);
      await whenReady(producer);
      const token = await signAdminToken(STACK_SECRET);

      const databases = { empty: server.urls.trackway_empty, big: server.urls.trackway_scale };
      const prepared: Record<'empty' | 'big', Omit<Session, 'apiPort' | 'ingestPort' | 'children' | 'logDir'>> = {} as never;
      const loadStarted = performance.now();
      for (const name of ['empty', 'big'] as const) {
        const url = databases[name];
        await migrate(url);
        const db = createDatabase(url, { poolSize: 10 });
        pools.push(db);
        console.log(`${name} database:`);
        const urls = receivers.urls;
        await buildDataSet(
          db.pool,
          { days: DAYS, clicks: name === 'big' ? CLICKS : 0, conversions: name === 'big' ? CONVERSIONS : 0, history: true },
          (line) => console.log(line),
          (client) => liveEntities(client, urls),
        );
        t0 = performance.now();
        const payoutId = await addPayee(db.pool);
        console.log(
          `  the payee: ${PAYOUT_COMMISSIONS.toLocaleString('en-US')} unpaid commissions, a payout of ${PAID_COMMISSIONS}: ${ms(performance.now() - t0)}`,
        );
        t0 = performance.now();
        await db.pool.query('VACUUM ANALYZE');
        console.log(`  VACUUM ANALYZE: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        const sizes: Array<{ table: string; n: string; size: string }> = [];
        for (const table of ['clicks', 'conversions', 'commissions', 'payouts', 'postbacks', 'outbox_events', 'deliveries', 'delivery_attempts'])
          sizes.push(
            (await db.pool.query(`SELECT $1::text AS table, (SELECT count(*) FROM ${table}) AS n, pg_size_pretty(${tableSize(table)}) AS size`, [table]))
              .rows[0],
          );
        const { rows: total } = await db.pool.query<{ size: string }>('SELECT pg_size_pretty(pg_database_size(current_database())) AS size');
        for (const t of sizes) console.log(`  ${t.table.padEnd(18)} ${Number(t.n).toLocaleString('en-US').padStart(12)} rows, ${t.size}`);
        console.log(`  database: ${total[0].size}`);
        const { rows: endpoints } = await db.pool.query<{ id: string }>(`SELECT id FROM webhook_endpoints ORDER BY id`);
        prepared[name] = { name, url, pool: db.pool, prefix: randomPrefix(), endpoints: endpoints.map((e) => e.id), payoutId };
      }
      const loadMs = performance.now() - loadStarted;
      console.log(`data sets built in ${(loadMs / 1000).toFixed(1)} s`);

      const figures = {} as Record<'empty' | 'big', Figures>;
      for (const name of ['empty', 'big'] as const) {
        console.log(`\n${name} database: the services (${machineNote()})`);
        prefixes.push(prepared[name].prefix);
        t0 = performance.now();
        const s = await startServices(prepared[name], children);
        console.log(`  api :${s.apiPort}, ingest :${s.ingestPort}, attribution, delivery up in ${ms(performance.now() - t0)}; logs in ${s.logDir}`);
        const queue = createQueue('postbacks', producer, s.prefix, ignoreErrors);
        queues.push(queue);
        // Warm-up: JIT, pools, keep-alive connections to the receivers; then the statistics a running
        // system has (on the empty database: of what the warm-up wrote), and a second warm-up whose
        // prepared statements plan with them (bench/system.ts, analyze()).
        await drain(s, queue, receivers);
        await s.pool.query('ANALYZE');
        await drain(s, queue, receivers);
        const routes = await routeFigures(s, token);
        const retention = await retentionFigure(s, queue, receivers);
        const payout = await payoutFigure(s, token, queue, receivers);
        const clicks = await clickFigure(s, children);
        figures[name] = { retention, routes, payout, clicks };
        console.log(`  [${name}] measured in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        for (const c of s.children) c.kill('SIGKILL');
      }

      // ——— The table: the big database beside the empty one ———
      const { empty, big } = figures;
      rows.push(
        row('scale', `retention: a month past ${RETENTION_DAYS} days (dropExpiredHistory)`, {
          measured: `${(big.retention.ms / 1000).toFixed(2)} s, WAL ${bytes(big.retention.wal)}`,
          baseline: `${(empty.retention.ms / 1000).toFixed(2)} s, WAL ${bytes(empty.retention.wal)} empty`,
          ratio: ratio(big.retention.ms, empty.retention.ms),
          target: '< 5 s',
          met: big.retention.ms < 5_000,
          values: {
            ms: big.retention.ms,
            wal: big.retention.wal,
            baseline_ms: empty.retention.ms,
            baseline_wal: empty.retention.wal,
            drain_wal: big.retention.drainWal,
          },
        }),
      );
      for (const key of ['postbacksPerSecond', 'webhooksPerSecond'] as const) {
        const unit = key === 'postbacksPerSecond' ? 'postbacks/s' : 'webhooks/s';
        const slowdown = (f: Figures) => f.retention.during[key] / f.retention.without[key];
        rows.push(
          row('scale', `${unit} drained while retention runs vs without`, {
            measured: `${rate(big.retention.during[key], unit)} vs ${rate(big.retention.without[key], unit)} (${ratio(big.retention.during[key], big.retention.without[key])})`,
            baseline: `${rate(empty.retention.during[key], unit)} vs ${rate(empty.retention.without[key], unit)} (${ratio(empty.retention.during[key], empty.retention.without[key])}) empty`,
            ratio: ratio(big.retention.during[key], big.retention.without[key]),
            target: `no slowdown (≥ ${SLOWDOWN_FLOOR.toFixed(2)}×)`,
            met: slowdown(big) >= SLOWDOWN_FLOOR,
            values: {
              during: big.retention.during[key],
              without: big.retention.without[key],
              baseline_during: empty.retention.during[key],
              baseline_without: empty.retention.without[key],
              drains: big.retention.drains,
            },
          }),
        );
      }
      for (const [i, r] of big.routes.entries()) {
        const e = empty.routes[i];
        rows.push(
          row('scale', r.label, {
            measured: `p99 ${ms(r.latency.summary.p99)} (p50 ${ms(r.latency.summary.p50)})`,
            baseline: `p99 ${ms(e.latency.summary.p99)} (p50 ${ms(e.latency.summary.p50)}) empty`,
            ratio: ratio(r.latency.summary.p99, e.latency.summary.p99),
            target: `p99 ≤ ${P99_TARGET_MS} ms`,
            met: r.latency.summary.p99 <= P99_TARGET_MS,
            values: { p50: r.latency.summary.p50, p99: r.latency.summary.p99, baseline_p50: e.latency.summary.p50, baseline_p99: e.latency.summary.p99 },
          }),
        );
      }
      const slowdown = (f: Figures) => f.payout.with.outcomesMs / f.payout.alone.outcomesMs;
      rows.push(
        row('scale', `POST /v1/payouts, ${PAYOUT_COMMISSIONS.toLocaleString('en-US')} commissions`, {
          measured: `${(big.payout.payoutMs / 1000).toFixed(2)} s`,
          baseline: `${(empty.payout.payoutMs / 1000).toFixed(2)} s empty`,
          ratio: ratio(big.payout.payoutMs, empty.payout.payoutMs),
          values: { ms: big.payout.payoutMs, baseline_ms: empty.payout.payoutMs },
        }),
        row('scale', `a drain of ${DRAIN} postbacks beside the payout vs alone (the mean of ${big.payout.drains} beside it)`, {
          measured: `${ms(big.payout.with.outcomesMs)} vs ${ms(big.payout.alone.outcomesMs)} (${slowdown(big).toFixed(2)}×)`,
          baseline: `${ms(empty.payout.with.outcomesMs)} vs ${ms(empty.payout.alone.outcomesMs)} (${slowdown(empty).toFixed(2)}×) empty`,
          ratio: `${slowdown(big).toFixed(2)}×`,
          target: `≤ ${PAYOUT_TARGET}×`,
          met: slowdown(big) <= PAYOUT_TARGET,
          values: {
            with_ms: big.payout.with.outcomesMs,
            alone_ms: big.payout.alone.outcomesMs,
            baseline_with_ms: empty.payout.with.outcomesMs,
            baseline_alone_ms: empty.payout.alone.outcomesMs,
            drains: big.payout.drains,
          },
        }),
        row('scale', 'click rows written/s vs GET /click answers/s', {
          measured: `${rate(big.clicks.rowsPerSecond, 'rows/s')} vs ${rate(big.clicks.clickRps, 'answers/s')}`,
          baseline: `${rate(empty.clicks.rowsPerSecond, 'rows/s')} vs ${rate(empty.clicks.clickRps, 'answers/s')} empty`,
          ratio: ratio(big.clicks.rowsPerSecond, big.clicks.clickRps),
          target: '≥ 1.0×',
          met: big.clicks.rowsPerSecond >= big.clicks.clickRps,
          values: {
            rows_per_second: big.clicks.rowsPerSecond,
            clicks_per_second: big.clicks.clickRps,
            baseline_rows_per_second: empty.clicks.rowsPerSecond,
            baseline_clicks_per_second: empty.clicks.clickRps,
          },
        }),
      );

      // ——— Checks: a figure that is not what it claims fails the run ———
      for (const name of ['empty', 'big'] as const) {
        const f = figures[name];
        problems.push(...f.retention.problems.map((p) => `${name}: retention: ${p}`));
        for (const r of f.routes)
          if (r.expect !== 0 && r.latency.statuses[r.expect] !== r.latency.summary.count)
            problems.push(`${name}: ${r.label}: ${JSON.stringify(r.latency.statuses)}`);
          else if (r.expect === 0 && !r.latency.statuses.ok) problems.push(`${name}: ${r.label}: the sweeper put deliveries back`);
        if (f.payout.status !== 201 || f.payout.taken !== PAYOUT_COMMISSIONS)
          problems.push(`${name}: the payout answered ${f.payout.status} with ${f.payout.taken} of ${PAYOUT_COMMISSIONS} commissions`);
        if (f.clicks.written !== f.clicks.answered || f.clicks.answered !== CLICK_BACKLOG + CLICK_WARMUP)
          problems.push(`${name}: ${f.clicks.written} click rows written of ${f.clicks.answered} answered (${CLICK_BACKLOG + CLICK_WARMUP} sent)`);
      }
      rows.push(
        row('scale', 'checks (rows kept, statuses, payout, click rows)', {
          measured: problems.length === 0 ? 'all pass' : problems.join('; '),
          met: problems.length === 0,
          values: { problems: problems.length },
        }),
        row('scale', 'data sets built', {
          measured: `${(loadMs / 1000).toFixed(0)} s`,
          baseline: `${CLICKS.toLocaleString('en-US')} clicks, ${CONVERSIONS.toLocaleString('en-US')} conversions`,
          values: { ms: loadMs },
        }),
      );
      console.log(`scale tier: ${((performance.now() - started) / 1000).toFixed(0)} s in all`);
      report('scale', rows);
      if (problems.length > 0) process.exitCode = 1;
    });
  } finally {
    await cleanup();
  }
}

runBench(main);
