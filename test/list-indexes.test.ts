// Every admin list the issue names, and the sweeper's query, is served by an index in its filters'
// and its order's columns: the plan reads the index in order (no Sort), on every partition it
// reads, and recover reads only the partitions since its time. The planner is told to avoid a
// sequential scan and a sort where it can (an empty table would otherwise be scanned): a plan that
// still sorts or scans means no index fits. The volumes behind it are measured by `pnpm bench scale`.
import { deliveryIdFloor } from '@trackway/domain';
import { ensurePartitions } from '@trackway/ledger';
import { type TestDatabase, createTestDatabase } from '@trackway/testing';
import type pg from 'pg';
import { OVERDUE_DELIVERIES_SQL } from '../services/delivery/src/housekeeping';

const DAY = 86_400_000;
let db: TestDatabase;
let client: pg.PoolClient;
beforeAll(async () => {
  db = await createTestDatabase();
  await ensurePartitions(db.pool, { from: new Date(Date.now() - 60 * DAY) });
  // Conversions of many affiliates, advertisers, offers, orders and statuses, with statistics: the
  // planner weighs the indexes as it would on a real table. The lists asked for are the selective
  // ones (an advertiser with few rows, a rare status): where a walk of the whole key would be slow.
  await db.pool.query(
    `INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency, clicked_at, created_at, updated_at)
     SELECT 'cnv_' || lpad(g::text, 26, '0'), CASE WHEN g % 1000 = 0 THEN 999 ELSE 1 + g % 40 END, 1 + g % 300, 1 + g % 2000, 'c', 'o-' || g, 'sale',
            (CASE WHEN g % 1000 = 0 THEN 'rejected' ELSE (ARRAY['approved', 'pending'])[1 + g % 2] END)::"ConversionStatus", 10, 'USD', 1, 'USD', now(), now(), now()
       FROM generate_series(1, 20000) AS g`,
  );
  await db.pool.query('ANALYZE conversions');
  client = await db.pool.connect();
  await client.query('SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off');
});
afterAll(async () => {
  client.release();
  await db.drop();
});

async function plan(sql: string, params: unknown[]): Promise<string> {
  const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}

/** A Sort node (a Merge Append's "Sort Key" merges sorted inputs: not one). */
const SORT_OR_SCAN = /(^|->)\s*(Incremental )?Sort\s+\(|Seq Scan/m;

/** Names of an index's copies on the table's partitions (Postgres names them), by the parent index's name. */
async function indexCopies(parent: string): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
    [parent],
  );
  return [parent, ...rows.map((r) => r.name)];
}

const NEWEST_FIRST = 'ORDER BY id DESC LIMIT 51';
const cases: Array<[string, string, unknown[], string]> = [
  ['conversions by order_id', `SELECT * FROM conversions WHERE order_id = $1 ${NEWEST_FIRST}`, ['o-1'], 'conversions_order_id_id_idx'],
  ['conversions by affiliate', `SELECT * FROM conversions WHERE affiliate_id = $1 ${NEWEST_FIRST}`, [7], 'conversions_affiliate_id_id_idx'],
  [
    'conversions by affiliate and status, after a cursor',
    `SELECT * FROM conversions WHERE affiliate_id = $1 AND status = 'approved' AND id < $2 ${NEWEST_FIRST}`,
    [7, 'cnv_Z'],
    'conversions_affiliate_id_status_id_idx',
  ],
  ['conversions by advertiser', `SELECT * FROM conversions WHERE advertiser_id = $1 ${NEWEST_FIRST}`, [999], 'conversions_advertiser_id_id_idx'],
  ['conversions by status', `SELECT * FROM conversions WHERE status = 'rejected' ${NEWEST_FIRST}`, [], 'conversions_status_id_idx'],
  ['conversions by offer', `SELECT * FROM conversions WHERE offer_id = $1 ${NEWEST_FIRST}`, [2], 'conversions_offer_id_id_idx'],
];

it.each(cases)('%s: read in index order, no sort', async (_what, sql, params, index) => {
  const text = await plan(sql, params);
  expect(text).toContain(index);
  expect(text).not.toMatch(SORT_OR_SCAN);
});

it("an endpoint's deliveries by status: every partition read along (endpoint_id, status, id), newest first, no sort", async () => {
  const text = await plan(`SELECT * FROM deliveries WHERE endpoint_id = $1 AND status = 'failed' ${NEWEST_FIRST}`, ['ep_1']);
  // Or, on partitions where the planner finds it cheaper, the failed deliveries' partial index (id order too).
  const copies = [...(await indexCopies('deliveries_endpoint_id_status_id_idx')), ...(await indexCopies('deliveries_failed_idx'))];
  const used = text.split('\n').filter((l) => /Index Scan/.test(l));
  expect(used.length).toBeGreaterThan(60);
  for (const line of used) expect(copies.some((name) => line.includes(` ${name} `))).toBe(true);
  expect(text).not.toMatch(SORT_OR_SCAN);
});

it('recover reads only the partitions since its time, along (endpoint_id, status, id)', async () => {
  const since = new Date(Date.now() - 3 * DAY);
  const text = await plan(
    `SELECT id FROM deliveries WHERE endpoint_id = $1 AND status = 'failed' AND id >= $2 AND created_at >= $3 ORDER BY id ASC LIMIT 1001`,
    ['ep_1', deliveryIdFloor(new Date(since.getTime() - DAY)), since],
  );
  const scans = text.split('\n').filter((l) => /Index Scan/.test(l));
  // From a day before `since` to the partitions made ahead: 4 days back, 7 ahead, and the last ids' partition.
  expect(scans.length).toBeGreaterThan(3);
  expect(scans.length).toBeLessThanOrEqual(14);
  expect(text).not.toMatch(SORT_OR_SCAN);
});

it("the sweeper's walk reads only the pending deliveries' partial index, in (endpoint_id, id) order, no sort", async () => {
  const text = await plan(OVERDUE_DELIVERIES_SQL, [new Date(), '', '', 500]);
  const { rows } = await client.query<{ name: string }>(
    `SELECT x.indexrelid::regclass::text AS name FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indrelid
      WHERE i.inhparent = 'deliveries'::regclass AND x.indpred IS NOT NULL`,
  );
  const partial = new Set(rows.map((r) => r.name));
  const used = text.split('\n').filter((l) => /Index Scan/.test(l));
  expect(used.length).toBeGreaterThan(60);
  for (const line of used) expect([...partial].some((name) => line.includes(` ${name} `))).toBe(true);
  expect(text).not.toMatch(SORT_OR_SCAN);
});
