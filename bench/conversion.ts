// `pnpm bench conversion`: how long the migration 20261212090000_partitioned_history takes on a
// database that has history (docs/upgrading.md quotes it per million rows). Builds N rows in each
// of the five history tables under the migrations before it, times the migration, and beside it,
// in the same run on the same rows, the time to copy them into new tables (what a conversion that
// rewrote the rows would cost at least). The migration holds the five tables for its whole run.
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate } from '@trackway/db';
import { TEST_DATABASE_URL, randomSuffix } from '@trackway/testing';
import pg from 'pg';
import { ROOT, report, row, size } from './lib';

const CONVERSION = '20261212090000_partitioned_history';
const ROWS = size(1_000_000, 20_000);
const TABLES = ['clicks', 'postbacks', 'outbox_events', 'deliveries', 'delivery_attempts'];

// Ids as Trackway makes them: the prefix, the ULID's 10 time characters, 16 more (the row number).
const ULID_TIME = `CREATE FUNCTION pg_temp.ulid_time(at timestamptz) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE ms bigint := floor(extract(epoch FROM at) * 1000)::bigint; out text := '';
BEGIN FOR i IN 1..10 LOOP out := substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', (ms % 32)::int + 1, 1) || out; ms := ms / 32; END LOOP; RETURN out; END $$`;
// Row i's time: spread over the 90 days before now, in order.
const AT = `$2::timestamptz - interval '90 days' + (g.i::float8 / $1) * interval '90 days'`;
const ID = (prefix: string) => `'${prefix}_' || pg_temp.ulid_time(${AT}) || lpad(g.i::text, 16, '0')`;

async function main() {
  const schema = `bench_convert_${randomSuffix()}`;
  const before = mkdtempSync(path.join(tmpdir(), 'trackway-convert-'));
  const migrations = path.join(ROOT, 'prisma/migrations');
  for (const name of readdirSync(migrations).filter((n) => n < CONVERSION)) cpSync(path.join(migrations, name), path.join(before, name), { recursive: true });
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await migrate(TEST_DATABASE_URL, { schema, dir: before, log: () => {} });
    await client.query(`SET search_path TO "${schema}"`);
    await client.query(ULID_TIME);
    const series = `FROM generate_series(1, $1::int) AS g(i)`;
    // One time for every statement (each its own transaction: now() would differ).
    const now = new Date();
    const t0 = performance.now();
    await client.query(`INSERT INTO webhook_endpoints (id, url, event_types, updated_at) VALUES ('ep_bench', 'https://example.com/h', '{}', now())`);
    await client.query(
      `INSERT INTO outbox_events (id, type, payload, created_at, published_at) SELECT ${ID('evt')}, 'conversion.approved', '{}', ${AT}, ${AT} ${series}`,
      [ROWS, now],
    );
    await client.query(
      `INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, attempt_count, created_at, updated_at)
       SELECT ${ID('dlv')}, ${ID('evt')}, 'ep_bench', 'conversion.approved', 'succeeded', 1, ${AT}, ${AT} ${series}`,
      [ROWS, now],
    );
    await client.query(
      `INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, status_code, attempt_key)
       SELECT ${ID('dlv')}, 1, ${AT}, 12, 200, 'job-' || g.i || '-1' ${series}`,
      [ROWS, now],
    );
    await client.query(
      `INSERT INTO postbacks (id, advertiser_id, status, params, received_at) SELECT ${ID('pb')}, 1 + g.i % 50, 'accepted', '{"amount":"10.00"}', ${AT} ${series}`,
      [ROWS, now],
    );
    await client.query(
      `INSERT INTO clicks (id, offer_id, affiliate_id, sub1, created_at) SELECT md5(g.i::text), 1 + g.i % 200, 1 + g.i % 2000, 's' || g.i % 97, ${AT} ${series}`,
      [ROWS, now],
    );
    await client.query('ANALYZE');
    console.log(`built ${TABLES.length} × ${ROWS.toLocaleString('en-US')} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const c0 = performance.now();
    await migrate(TEST_DATABASE_URL, { schema, dir: migrations, log: () => {} });
    const conversion = (performance.now() - c0) / 1000;

    // The baseline: the same rows copied into new tables, no index (a rewrite's floor).
    const k0 = performance.now();
    for (const t of TABLES) await client.query(`CREATE TABLE "copy_${t}" AS SELECT * FROM ${t}`);
    const copy = (performance.now() - k0) / 1000;

    const millions = (TABLES.length * ROWS) / 1e6;
    const perMillion = conversion / millions;
    console.log(`conversion ${conversion.toFixed(1)} s (${perMillion.toFixed(2)} s per million rows); copying the rows ${copy.toFixed(1)} s`);
    report('conversion', [
      row('conversion', `partitioning migration, ${TABLES.length} tables × ${ROWS.toLocaleString('en-US')} rows`, {
        measured: `${conversion.toFixed(1)} s (${perMillion.toFixed(2)} s per million rows)`,
        baseline: `copying the rows: ${copy.toFixed(1)} s`,
        ratio: `${(conversion / copy).toFixed(2)}×`,
        values: { seconds: conversion, perMillion, copySeconds: copy, rows: TABLES.length * ROWS },
      }),
    ]);
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await client.end();
    rmSync(before, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
