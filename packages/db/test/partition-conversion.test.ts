// The migration 20261212090000_partitioned_history converts a database that has history in place:
// every row stays, in the partition of everything before the cutover (a row whose key is past it
// is written back where it belongs), keys and uniqueness hold for old and new rows alike, and the
// attempts' id sequence outlives the converted table.
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deliveryIdFor, idAt, newId } from '@trackway/domain';
import { TEST_DATABASE_URL, randomSuffix } from '@trackway/testing';
import pg from 'pg';
import { migrate } from '../src';

const REAL_MIGRATIONS = path.resolve(__dirname, '../../../prisma/migrations');
const CONVERSION = '20261212090000_partitioned_history';

const schema = `t_convert_${randomSuffix()}`;
let before: string;
let client: pg.Client;

beforeAll(async () => {
  // The migrations before the conversion, on their own.
  before = mkdtempSync(path.join(tmpdir(), 'trackway-convert-'));
  for (const name of readdirSync(REAL_MIGRATIONS).filter((n) => n < CONVERSION))
    cpSync(path.join(REAL_MIGRATIONS, name), path.join(before, name), { recursive: true });
  await migrate(TEST_DATABASE_URL, { schema, dir: before, log: () => {} });
  client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  await client.query(`SET search_path TO "${schema}"`);
});

afterAll(async () => {
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
  rmSync(before, { recursive: true, force: true });
});

const DAY = 86_400_000;

it('keeps every row, partitions the five tables, and keeps uniqueness for rows from before and after', async () => {
  // History as the code before the conversion wrote it: random delivery ids, clicks keyed by id.
  const q = (sql: string, params: unknown[] = []) => client.query(sql, params);
  await q(`INSERT INTO webhook_endpoints (id, url, event_types, updated_at) VALUES ('ep_1', 'https://example.com/h', '{}', now())`);
  const oldAt = new Date(Date.now() - 3 * DAY);
  const event = idAt('event', oldAt);
  const delivery = newId('delivery');
  await q(`INSERT INTO outbox_events (id, type, payload, created_at, published_at) VALUES ($1, 'conversion.approved', '{}', $2, $2)`, [event, oldAt]);
  await q(
    `INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, updated_at) VALUES ($1, $2, 'ep_1', 'conversion.approved', 'succeeded', now())`,
    [delivery, event],
  );
  await q(`INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, attempt_key) VALUES ($1, 1, now(), 3, 'k1'), ($1, 2, now(), 3, 'k2')`, [
    delivery,
  ]);
  await q(`INSERT INTO postbacks (id, advertiser_id, status, params, received_at) VALUES ($1, 1, 'accepted', '{}', $2), ('pb_A', 1, 'accepted', '{}', now())`, [
    idAt('postback', oldAt),
    oldAt,
  ]);
  await q(`INSERT INTO clicks (id, offer_id, affiliate_id, created_at) VALUES ('c1', 1, 1, $1), ('c2', 1, 1, now())`, [oldAt]);
  // Rows past the cutover (a clock ahead): 10 days on, past the 7 days of partitions made ahead.
  const ahead = new Date(Date.now() + 10 * DAY);
  const aheadPostback = idAt('postback', ahead);
  await q(`INSERT INTO postbacks (id, advertiser_id, status, params, received_at) VALUES ($1, 1, 'accepted', '{}', $2)`, [aheadPostback, ahead]);
  await q(`INSERT INTO clicks (id, offer_id, affiliate_id, created_at) VALUES ('c3', 1, 1, $1)`, [ahead]);

  await migrate(TEST_DATABASE_URL, { schema, dir: REAL_MIGRATIONS, log: () => {} });

  const partitioned = await q(
    `SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid WHERE c.relnamespace = $1::regnamespace ORDER BY 1`,
    [schema],
  );
  expect(partitioned.rows.map((r) => r.relname)).toEqual(['clicks', 'deliveries', 'delivery_attempts', 'outbox_events', 'postbacks']);
  const counts = await q(
    `SELECT (SELECT count(*) FROM clicks)::int AS clicks, (SELECT count(*) FROM postbacks)::int AS postbacks, (SELECT count(*) FROM outbox_events)::int AS events,
            (SELECT count(*) FROM deliveries)::int AS deliveries, (SELECT count(*) FROM delivery_attempts)::int AS attempts`,
  );
  expect(counts.rows[0]).toEqual({ clicks: 3, postbacks: 3, events: 1, deliveries: 1, attempts: 2 });
  // Where each row is: before the cutover in the converted table; a hand-made id past every ULID in a partition of its own.
  const where = async (table: string, key: string, value: string) =>
    (await q(`SELECT tableoid::regclass::text AS part FROM ${table} WHERE ${key} = $1`, [value])).rows[0].part as string;
  expect(await where('deliveries', 'id', delivery)).toMatch(/^deliveries_before_\d{8}$/);
  expect(await where('postbacks', 'id', 'pb_A')).toBe('postbacks_beyond');
  expect(await where('clicks', 'id', 'c1')).toMatch(/^clicks_before_\d{8}$/);
  // Set aside and written back into partitions made to hold them.
  expect(await where('postbacks', 'id', aheadPostback)).toMatch(/^postbacks_p\d{8}$/);
  expect(await where('clicks', 'id', 'c3')).toMatch(/^clicks_p\d{8}$/);

  // One delivery per pair, also for a delivery from before (a random id): a fan-out again writes nothing.
  const again = await q(
    `INSERT INTO deliveries (id, event_id, endpoint_id, event_type, updated_at) VALUES ($1, $2, 'ep_1', 'conversion.approved', now()) ON CONFLICT DO NOTHING`,
    [deliveryIdFor(event, 'ep_1'), event],
  );
  expect(again.rowCount).toBe(0);
  // An event after the cutover (today's still go to the converted table): its delivery lands in its
  // day; its attempts number on, with the sequence the new table owns.
  const fresh = idAt('event', new Date(Date.now() + 2 * DAY));
  await q(`INSERT INTO outbox_events (id, type, payload) VALUES ($1, 'conversion.approved', '{}')`, [fresh]);
  const freshDelivery = deliveryIdFor(fresh, 'ep_1');
  await q(`INSERT INTO deliveries (id, event_id, endpoint_id, event_type, updated_at) VALUES ($1, $2, 'ep_1', 'conversion.approved', now())`, [
    freshDelivery,
    fresh,
  ]);
  expect(await where('deliveries', 'id', freshDelivery)).toMatch(/^deliveries_p\d{8}$/);
  const attempt = await q(`INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, attempt_key) VALUES ($1, 1, now(), 3, 'k1') RETURNING id`, [
    freshDelivery,
  ]);
  expect(Number(attempt.rows[0].id)).toBeGreaterThan(2);
  const owner = await q(
    `SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.refobjid WHERE d.objid = 'delivery_attempts_id_seq'::regclass AND d.deptype = 'a'`,
  );
  expect(owner.rows.map((r) => r.relname)).toEqual(['delivery_attempts']);
  // An attempt's number and key stay unique per delivery, old or new.
  await expect(q(`INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms) VALUES ($1, 2, now(), 1)`, [delivery])).rejects.toMatchObject({
    code: '23505',
  });
  await expect(
    q(`INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, attempt_key) VALUES ($1, 2, now(), 1, 'k1')`, [freshDelivery]),
  ).rejects.toMatchObject({
    code: '23505',
  });
  // No foreign key is left on the delivery log.
  const fks = await q(`SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text IN ('deliveries', 'delivery_attempts')`);
  expect(fks.rows).toEqual([]);
});
