// `pnpm reports:rebuild` on a database whose clicks and conversions predate report rows (written
// without them, as before the reports migration): afterwards every report equals the recount; a
// zone added with --zone answers from its own day rows; bad arguments are one clear line.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { ReportQuery } from '@trackway/domain';
import { planReportSql, reportTotals, sourceFor } from '@trackway/ledger';
import { type TestDatabase, createTestDatabase } from '@trackway/testing';

const ROOT = path.resolve(__dirname, '..');
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(`INSERT INTO advertisers (id, name, postback_key_hash, updated_at) VALUES (1, 'a', repeat('a', 64), now())`);
  await db.pool.query(
    `INSERT INTO offers (id, advertiser_id, name, destination_url, currency, payout_type, payout_amount, updated_at) VALUES (1, 1, 'o', 'https://x', 'USD', 'fixed', 1, now())`,
  );
  // Raw rows only, over three days.
  await db.pool.query(`INSERT INTO clicks (id, offer_id, affiliate_id, sub2, created_at)
    SELECT 'c' || i, 1, 1 + i % 3, 'camp' || (i % 4), timestamptz '2026-10-01 00:00Z' + i * interval '7 minutes' FROM generate_series(1, 600) i`);
  await db.pool.query(`INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency, clicked_at, created_at, updated_at)
    SELECT 'cv' || i, 1, 1, 1 + i % 3, 'c' || i, 'o' || i, 'sale', (ARRAY['approved','pending','rejected'])[1 + i % 3]::"ConversionStatus", 10 + i, 'USD', 1.5, 'USD',
           timestamptz '2026-10-01 00:00Z' + i * interval '7 minutes', timestamptz '2026-10-01 00:30Z' + i * interval '7 minutes', now()
      FROM generate_series(1, 600, 7) i`);
}, 30_000);
afterAll(() => db.drop());

const rebuild = (...args: string[]) =>
  spawnSync(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'scripts/reports-rebuild.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: db.url, NODE_ENV: 'test' },
    encoding: 'utf8',
    timeout: 60_000,
  });

const totals = async (query: ReportQuery) => ({
  reported: await reportTotals(db.pool, planReportSql(query, await sourceFor(db.pool, query))),
  recount: await reportTotals(db.pool, planReportSql(query, 'raw')),
});

const october = (tz: string, from: string): ReportQuery => ({
  from: new Date(from),
  to: new Date('2026-10-05T00:00:00Z'),
  tz,
  groupBy: [],
  countBy: 'conversion',
  filters: {},
});

it('builds report rows from the raw rows, and a zone from its quarters', async () => {
  expect((await totals(october('UTC', '2026-10-01T00:00:00Z'))).reported.clicks).toBe(0);
  const run = rebuild();
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/report rows rebuilt from the raw rows for \d+ day\(s\)/);
  const utc = await totals(october('UTC', '2026-10-01T00:00:00Z'));
  expect(utc.reported).toEqual(utc.recount);
  expect(utc.reported.clicks).toBe(600);

  const zone = rebuild('--zone', 'Asia/Kolkata');
  expect(zone.status).toBe(0);
  expect(zone.stdout).toContain('zone Asia/Kolkata: day rows kept and built');
  const kolkata = october('Asia/Kolkata', '2026-09-30T18:30:00Z');
  kolkata.to = new Date('2026-10-03T18:30:00Z');
  expect(await sourceFor(db.pool, { ...kolkata, groupBy: ['day'] })).toBe('totals');
  const k = await totals(kolkata);
  expect(k.reported).toEqual(k.recount);

  const drop = rebuild('--drop-zone', 'Asia/Kolkata');
  expect(drop.stdout).toContain('dropped zone Asia/Kolkata');
  expect(await sourceFor(db.pool, { ...kolkata, groupBy: ['day'] })).toBe('quarters');
}, 120_000);

it.each([
  [['--from', 'yesterday'], /--from yesterday is not a date/],
  [['--zone', 'Mars/Base'], /Mars\/Base is not an IANA time zone/],
  [['--colour'], /Unknown option '--colour'/],
])('%j is refused in one line', (args, message) => {
  const run = rebuild(...args);
  expect(run.status).toBe(1);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/\n\s+at /);
});
