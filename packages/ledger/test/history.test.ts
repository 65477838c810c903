// History partitioned by time (packages/ledger/src/history.ts): partitions made ahead and back to
// where history starts; retention drops whole partitions past each table's setting, keeps a day of
// the delivery log while anything in it is live (and says why), keeps a week of clicks the reports
// have not counted, drops a table's expired partitions under one brief lock or, when the table is too
// busy for it, detaches them without stopping the table, finishes a run stopped half-way, and runs
// once at a time. Uniqueness holds across partitions.
import { deliveryIdFor, idAt } from '@trackway/domain';
import { classifyDbError, isMissingPartition, missingPartitionTime } from '@trackway/db';
import { type TestDatabase, createTestDatabase, waitFor } from '@trackway/testing';
import { dropExpiredHistory, ensurePartitions, foldClicks } from '../src';

const DAY = 86_400_000;
const now = new Date();
const daysAgo = (days: number) => new Date(now.getTime() - days * DAY);
const RETENTION = { clickDays: 60, postbackDays: 90, deliveryLogDays: 30 };

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await ensurePartitions(db.pool, { from: daysAgo(120) });
}, 120_000);
afterAll(() => db.drop());

async function partitions(table: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`,
    [table],
  );
  return rows.map((r) => r.name);
}
const count = async (sql: string, params: unknown[] = []) => Number((await db.pool.query<{ n: string }>(sql, params)).rows[0].n);

/** An event at a time with one delivery (status) and one attempt. */
async function deliveryAt(at: Date, status: 'succeeded' | 'failed' | 'pending', published = true, on: Pick<TestDatabase['pool'], 'query'> = db.pool) {
  const eventId = idAt('event', at);
  const id = deliveryIdFor(eventId, 'ep_history');
  await on.query(`INSERT INTO outbox_events (id, type, payload, created_at, published_at) VALUES ($1, 'conversion.approved', '{}', $2, $3)`, [
    eventId,
    at,
    published ? at : null,
  ]);
  await on.query(
    `INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, attempt_count, created_at, updated_at) VALUES ($1, $2, 'ep_history', 'conversion.approved', $3, 1, $4, $4)`,
    [id, eventId, status, at],
  );
  await on.query(
    `INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, status_code, attempt_key) VALUES ($1, 1, $2, 5, 200, $1::varchar || '-1')`,
    [id, at],
  );
  return { eventId, id };
}

/** A session waits for a lock of this file's `table` (the schema's own). */
const lockWaiting = (table: string) => async () =>
  (
    await db.pool.query(
      `SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE NOT l.granted AND c.relnamespace = current_schema()::regnamespace AND c.relname = $1`,
      [table],
    )
  ).rowCount! > 0;

/** A DETACH … CONCURRENTLY of a partition of `table` is waiting for the transactions using it. */
const detachWaiting = (table: string) => async () =>
  (
    await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ~ $1`, [
      `^ALTER TABLE "?${table}"? DETACH PARTITION`,
    ])
  ).rowCount! > 0;

describe('ensurePartitions', () => {
  it('made days back to where history starts (the table below was empty) and a week ahead; a second run makes nothing', async () => {
    const days = await partitions('deliveries');
    // The table before history, then one per day from 120 days ago to 7 days ahead.
    expect(days.filter((d) => d.includes('_before_'))).toHaveLength(1);
    expect(days.length).toBeGreaterThanOrEqual(120 + 7);
    const weeks = await partitions('clicks');
    expect(weeks.length).toBeGreaterThanOrEqual(Math.floor(120 / 7) + 1);
    expect((await ensurePartitions(db.pool)).created).toEqual([]);
  });

  it('a row where no partition is yet fails with an error isMissingPartition recognises (the write is retried)', async () => {
    const far = new Date(now.getTime() + 400 * DAY);
    const error = await db.pool
      .query(`INSERT INTO outbox_events (id, type, payload) VALUES ($1, 'conversion.approved', '{}')`, [idAt('event', far)])
      .catch((e: unknown) => e);
    expect(isMissingPartition(error)).toBe(true);
    expect(missingPartitionTime(error)).toBe(far.getTime());
    expect(classifyDbError(error)).toBe('other');

    expect(isMissingPartition(new Error('duplicate key'))).toBe(false);
  });

  it('keeps uniqueness across partitions: one delivery per event and endpoint, an attempt number and key once per delivery', async () => {
    const { eventId, id } = await deliveryAt(daysAgo(3), 'succeeded');
    const again = await db.pool.query(
      `INSERT INTO deliveries (id, event_id, endpoint_id, event_type, updated_at) VALUES ($1, $2, 'ep_history', 'conversion.approved', now()) ON CONFLICT DO NOTHING`,
      [deliveryIdFor(eventId, 'ep_history'), eventId],
    );
    expect(again.rowCount).toBe(0);
    await expect(db.pool.query(`INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms) VALUES ($1, 1, now(), 1)`, [id])).rejects.toMatchObject({
      code: '23505',
    });
    await expect(
      db.pool.query(`INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, attempt_key) VALUES ($1, 2, now(), 1, $1::varchar || '-1')`, [id]),
    ).rejects.toMatchObject({ code: '23505' });
  });
});

describe('dropExpiredHistory', () => {
  it('a day whose deliveries an interrupted step attached again (one pending) keeps its events and attempts when the day is past retention', async () => {
    const live = await deliveryAt(daysAgo(110), 'pending');
    const name = `deliveries_p${daysAgo(110).toISOString().slice(0, 10).replaceAll('-', '')}`;
    const { b } = (await db.pool.query<{ b: string }>(`SELECT pg_get_expr(relpartbound, oid) AS b FROM pg_class WHERE relname = $1`, [name])).rows[0];
    // As a killed retire leaves it: marked and detached, not dropped.
    await db.pool.query(`COMMENT ON TABLE "${name}" IS 'trackway retention: detached from deliveries ${b.replaceAll("'", "''")}'`);
    await db.pool.query(`ALTER TABLE deliveries DETACH PARTITION "${name}"`);
    const report = await dropExpiredHistory(db.pool, { retention: { clickDays: 1000, postbackDays: 1000, deliveryLogDays: 105 } });
    const day = name.slice('deliveries_p'.length);
    expect(report.kept).toEqual(
      expect.arrayContaining([
        { partition: name, reason: 'holds pending deliveries (one became pending while retention ran)' },
        expect.objectContaining({ partition: `outbox_events_p${day}` }),
        expect.objectContaining({ partition: `delivery_attempts_p${day}` }),
      ]),
    );
    expect(await count(`SELECT count(*) AS n FROM delivery_attempts WHERE delivery_id = $1`, [live.id])).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM outbox_events WHERE id = $1`, [live.eventId])).toBe(1);
  });

  it('drops what passed retention, a day of the delivery log as one, and keeps a day holding a pending delivery or an unpublished event, saying why', async () => {
    const old = await deliveryAt(daysAgo(40), 'succeeded');
    const oldFailed = await deliveryAt(daysAgo(45), 'failed');
    const stuck = await deliveryAt(daysAgo(50), 'pending');
    const unpublished = await deliveryAt(daysAgo(55), 'succeeded', false);
    const recent = await deliveryAt(daysAgo(10), 'succeeded');
    await db.pool.query(
      `INSERT INTO postbacks (id, advertiser_id, status, params, received_at) VALUES ($1, 1, 'accepted', '{}', $2), ($3, 1, 'accepted', '{}', $4)`,
      [idAt('postback', daysAgo(100)), daysAgo(100), idAt('postback', daysAgo(80)), daysAgo(80)],
    );
    const before = await count(`SELECT count(*) AS n FROM deliveries`);

    const report = await dropExpiredHistory(db.pool, { retention: RETENTION });

    const rows = async (ids: string[]) => count(`SELECT count(*) AS n FROM deliveries WHERE id = ANY($1)`, [ids]);
    expect(await rows([old.id, oldFailed.id])).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM delivery_attempts WHERE delivery_id = ANY($1)`, [[old.id, oldFailed.id]])).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM outbox_events WHERE id = ANY($1)`, [[old.eventId, oldFailed.eventId]])).toBe(0);
    // Kept whole: the pending delivery's day (its event and attempt too), the unpublished event's day.
    expect(await rows([stuck.id, unpublished.id, recent.id])).toBe(3);
    expect(await count(`SELECT count(*) AS n FROM delivery_attempts WHERE delivery_id = $1`, [stuck.id])).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM outbox_events WHERE id = $1`, [stuck.eventId])).toBe(1);
    const day = (at: Date) => at.toISOString().slice(0, 10).replaceAll('-', '');
    expect(report.kept).toEqual(
      expect.arrayContaining([
        { partition: `deliveries_p${day(daysAgo(50))}`, reason: 'holds pending deliveries' },
        { partition: `outbox_events_p${day(daysAgo(50))}`, reason: `its day is kept: deliveries_p${day(daysAgo(50))} holds pending deliveries` },
        { partition: `delivery_attempts_p${day(daysAgo(50))}`, reason: `its day is kept: deliveries_p${day(daysAgo(50))} holds pending deliveries` },
        { partition: `outbox_events_p${day(daysAgo(55))}`, reason: 'holds unpublished events' },
      ]),
    );
    expect(report.dropped).toEqual(
      expect.arrayContaining([`deliveries_p${day(daysAgo(40))}`, `delivery_attempts_p${day(daysAgo(45))}`, `postbacks_p${day(daysAgo(100))}`]),
    );
    expect(report.dropped).not.toContain(`postbacks_p${day(daysAgo(80))}`);
    expect(report.dropped.some((p) => p === `deliveries_p${day(daysAgo(29))}`)).toBe(false);
    expect(await count(`SELECT count(*) AS n FROM postbacks`)).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM deliveries`)).toBe(before - 2);
    // Nothing was deleted row by row: the partitions are gone.
    expect(await partitions('deliveries')).not.toContain(`deliveries_p${day(daysAgo(40))}`);

    // Once the delivery is settled, its day goes at the next run.
    await db.pool.query(`UPDATE deliveries SET status = 'failed' WHERE id = $1`, [stuck.id]);
    const next = await dropExpiredHistory(db.pool, { retention: RETENTION });
    expect(next.dropped).toEqual(
      expect.arrayContaining([`deliveries_p${day(daysAgo(50))}`, `outbox_events_p${day(daysAgo(50))}`, `delivery_attempts_p${day(daysAgo(50))}`]),
    );
    expect(await rows([stuck.id])).toBe(0);

    // A row of a time whose partition retention dropped can never be written: a data error, not retried for ever.
    const tooOld = await db.pool
      .query(`INSERT INTO postbacks (id, advertiser_id, status, params, received_at) VALUES ($1, 1, 'accepted', '{}', now())`, [idAt('postback', daysAgo(200))])
      .catch((e: unknown) => e);
    expect(isMissingPartition(tooOld)).toBe(true);
    expect(classifyDbError(tooOld)).toBe('data');
  });

  it('keeps a week of clicks the reports have not counted; after the fold it goes, and the reports keep their counts', async () => {
    const at = daysAgo(50);
    const clicksPast = { ...RETENTION, clickDays: 40 };
    const clickRow = (i: number) => [`click-${i}`, new Date(at.getTime() + i * 1000)];
    for (let i = 0; i < 3; i++)
      await db.pool.query(
        `INSERT INTO clicks (id, offer_id, affiliate_id, created_at, report_xid) VALUES ($1, 1, 1, $2, (SELECT pg_current_xact_id()::text::bigint))`,
        clickRow(i),
      );
    const kept = await dropExpiredHistory(db.pool, { retention: clicksPast });
    expect(kept.kept.filter((k) => k.partition.startsWith('clicks_'))).toEqual([
      { partition: expect.stringMatching(/^clicks_p\d{8}$/), reason: 'holds clicks the reports have not counted yet' },
    ]);
    expect(await count(`SELECT count(*) AS n FROM clicks`)).toBe(3);

    // The fold counts a transaction's clicks once every older transaction has ended, in the whole
    // cluster (other test files' included): fold until it has counted them.
    let folded = 0;
    await waitFor(
      async () => {
        folded += (await foldClicks(db.pool))?.clicks ?? 0;
        return folded >= 3;
      },
      { timeoutMs: 30_000, what: 'the clicks folded' },
    );
    expect(folded).toBe(3);
    const counted = () => count(`SELECT COALESCE(sum(clicks), 0) AS n FROM report_totals WHERE zone = 'UTC'`);
    expect(await counted()).toBe(3);
    const dropped = await dropExpiredHistory(db.pool, { retention: clicksPast });
    expect(dropped.dropped.filter((p) => p.startsWith('clicks_')).length).toBeGreaterThan(0);
    expect(await count(`SELECT count(*) AS n FROM clicks`)).toBe(0);
    expect(await counted()).toBe(3);
  });

  it("drops a table's expired days under one brief lock, checked again under it: a replay committed while the lock waited keeps its day", async () => {
    const replayed = await deliveryAt(daysAgo(27), 'failed');
    const gone = await deliveryAt(daysAgo(28), 'succeeded');
    const holder = await db.pool.connect();
    try {
      // A replay, not committed yet: retention's first check does not see it, and the table's lock waits for its transaction.
      await holder.query('BEGIN');
      await holder.query(`UPDATE deliveries SET status = 'pending' WHERE id = $1`, [replayed.id]);
      const drop = dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 26 }, lockWaitsMs: [30_000] });
      await waitFor(lockWaiting('deliveries'), { what: "retention waiting for the deliveries' lock" });
      await holder.query('COMMIT');
      const report = await drop;
      const day = (d: Date) => d.toISOString().slice(0, 10).replaceAll('-', '');
      expect(report.kept).toEqual(
        expect.arrayContaining([
          { partition: `deliveries_p${day(daysAgo(27))}`, reason: 'holds pending deliveries (one became pending while retention ran)' },
          {
            partition: `outbox_events_p${day(daysAgo(27))}`,
            reason: `its day is kept: deliveries_p${day(daysAgo(27))} holds pending deliveries (one became pending while retention ran)`,
          },
          {
            partition: `delivery_attempts_p${day(daysAgo(27))}`,
            reason: `its day is kept: deliveries_p${day(daysAgo(27))} holds pending deliveries (one became pending while retention ran)`,
          },
        ]),
      );
      expect(report.dropped).toEqual(expect.arrayContaining([`deliveries_p${day(daysAgo(28))}`, `outbox_events_p${day(daysAgo(28))}`]));
      expect(await count(`SELECT count(*) AS n FROM deliveries WHERE id = $1`, [replayed.id])).toBe(1);
      expect(await count(`SELECT count(*) AS n FROM delivery_attempts WHERE delivery_id = $1`, [replayed.id])).toBe(1);
      expect(await count(`SELECT count(*) AS n FROM deliveries WHERE id = $1`, [gone.id])).toBe(0);
      // Under the lock, not one by one: had at the first try (the wait outlasted the replay's transaction).
      expect(report.locks).toEqual({
        delivery_attempts: { tries: 1, heldMs: expect.any(Number), atMs: expect.any(Number), blockedBy: [] },
        deliveries: { tries: 1, heldMs: expect.any(Number), atMs: expect.any(Number), blockedBy: [] },
        outbox_events: { tries: 1, heldMs: expect.any(Number), atMs: expect.any(Number), blockedBy: [] },
      });
    } finally {
      holder.release();
    }
  });

  it('a table too busy for its lock is retired a partition at a time, each checked again once detached: one made pending (a replay) while its detach waited is attached again, and keeps its day', async () => {
    const replayed = await deliveryAt(daysAgo(25), 'failed');
    const holder = await db.pool.connect();
    try {
      // A replay, not committed yet: retention's first check does not see it, and the detach of its
      // day (like every detach of the table) waits for its transaction.
      await holder.query('BEGIN');
      await holder.query(`UPDATE deliveries SET status = 'pending' WHERE id = $1`, [replayed.id]);
      const drop = dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 20 } });
      await waitFor(detachWaiting('deliveries'), { what: 'retention detaching a day of deliveries' });
      await holder.query('COMMIT');
      const report = await drop;
      const day = daysAgo(25).toISOString().slice(0, 10).replaceAll('-', '');
      expect(report.kept).toEqual(
        expect.arrayContaining([
          { partition: `deliveries_p${day}`, reason: 'holds pending deliveries (one became pending while retention ran)' },
          { partition: `outbox_events_p${day}`, reason: 'its day is kept: its deliveries are' },
          { partition: `delivery_attempts_p${day}`, reason: 'its day is kept: its deliveries are' },
        ]),
      );
      expect(await partitions('deliveries')).toContain(`deliveries_p${day}`);
      // Both tries for the lock timed out behind the replay's transaction, and say so.
      expect(report.locks.deliveries).toMatchObject({ tries: 2, heldMs: null, atMs: null });
      expect(report.locks.deliveries.blockedBy.join('\n')).toMatch(/idle in transaction, transaction \d+ ms\): UPDATE deliveries SET status = 'pending'/);
      expect(await count(`SELECT count(*) AS n FROM deliveries WHERE id = $1`, [replayed.id])).toBe(1);
      expect(await count(`SELECT count(*) AS n FROM delivery_attempts WHERE delivery_id = $1`, [replayed.id])).toBe(1);
      expect(await count(`SELECT count(*) AS n FROM outbox_events WHERE id = $1`, [replayed.eventId])).toBe(1);
    } finally {
      holder.release();
    }
  });

  it("today's partition held by autovacuum's lock (or any of its own) is not in the way: the tables are locked without their partitions, then the expired ones", async () => {
    const old = await deliveryAt(daysAgo(18), 'succeeded');
    const { id: todays } = await deliveryAt(now, 'succeeded');
    const today = `deliveries_p${now.toISOString().slice(0, 10).replaceAll('-', '')}`;
    const vacuum = await db.pool.connect();
    try {
      // What an autovacuum of the partition takes (and keeps for seconds under load).
      await vacuum.query('BEGIN');
      await vacuum.query(`LOCK TABLE "${today}" IN SHARE UPDATE EXCLUSIVE MODE`);
      const report = await dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 17 }, lockWaitsMs: [400] });
      // Had at once: a try that does not wait.
      expect(report.locks.deliveries).toEqual({ tries: 0, heldMs: expect.any(Number), atMs: expect.any(Number), blockedBy: [] });
      expect(report.dropped).toContain(`deliveries_p${daysAgo(18).toISOString().slice(0, 10).replaceAll('-', '')}`);
      expect(await count(`SELECT count(*) AS n FROM deliveries WHERE id = ANY($1)`, [[old.id, todays]])).toBe(1);
    } finally {
      await vacuum.query('ROLLBACK');
      vacuum.release();
    }
  });

  it.each([
    { pollMs: 5_000, queued: false, day: 17 },
    { pollMs: 0, queued: true, day: 16 },
  ])(
    'while it tries for the locks without waiting, no one queues behind it (polling $pollMs ms: queued behind it $queued)',
    async ({ pollMs, queued, day }) => {
      await deliveryAt(daysAgo(day), 'succeeded');
      const { id } = await deliveryAt(now, 'pending');
      const { id: other } = await deliveryAt(now, 'pending');
      const holder = await db.pool.connect();
      const writer = await db.pool.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(`UPDATE deliveries SET updated_at = now() WHERE id = $1`, [id]);
        const drop = dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: day - 1 }, lockWaitsMs: [10_000], lockPollMs: pollMs });
        if (queued) await waitFor(lockWaiting('deliveries'), { what: "retention waiting for the deliveries' lock" });
        else {
          // Polling by now (its checks before the locks take milliseconds; the end checks it polled: tries 0).
          await new Promise((resolve) => setTimeout(resolve, 1_500));
          expect(await lockWaiting('deliveries')()).toBe(false);
        }
        // Another writer of the table: behind a lock request that waits, it would wait too.
        await writer.query('BEGIN');
        await writer.query(`SET LOCAL lock_timeout = '200ms'`);
        const wrote = await writer.query(`UPDATE deliveries SET updated_at = now() WHERE id = $1`, [other]).then(
          () => true,
          () => false,
        );
        await writer.query('ROLLBACK');
        expect(wrote).toBe(!queued);
        await holder.query('COMMIT');
        const report = await drop;
        expect(report.locks.deliveries).toMatchObject({ tries: queued ? 1 : 0, heldMs: expect.any(Number) });
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        holder.release();
        writer.release();
      }
    },
  );

  it("locks the delivery log's tables in the delivery worker's order: a record holding attempts, then writing deliveries, does not wait for retention's lock", async () => {
    await deliveryAt(daysAgo(15), 'succeeded');
    const { id } = await deliveryAt(now, 'pending');
    const record = await db.pool.connect();
    try {
      await record.query('BEGIN');
      await record.query(`UPDATE delivery_attempts SET duration_ms = 6 WHERE delivery_id = $1`, [id]);
      const drop = dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 14 }, lockWaitsMs: [5_000] });
      await waitFor(lockWaiting('delivery_attempts'), { what: "retention waiting for delivery_attempts' lock" });
      // Locked in the other order, retention would hold deliveries now: this would wait, and time out.
      await record.query(`SET LOCAL lock_timeout = '300ms'`);
      expect((await record.query(`UPDATE deliveries SET status = 'succeeded' WHERE id = $1`, [id])).rowCount).toBe(1);
      await record.query('COMMIT');
      const report = await drop;
      expect(report.locks.deliveries).toMatchObject({ tries: 1, heldMs: expect.any(Number) });
      expect(report.dropped).toContain(`deliveries_p${daysAgo(15).toISOString().slice(0, 10).replaceAll('-', '')}`);
    } finally {
      await record.query('ROLLBACK').catch(() => undefined);
      record.release();
    }
  });

  it('a detached partition whose drop fails stays detached and marked, and the next run drops it', async () => {
    const { id } = await deliveryAt(daysAgo(14), 'succeeded');
    const name = `deliveries_p${daysAgo(14).toISOString().slice(0, 10).replaceAll('-', '')}`;
    // Something depends on it: DROP TABLE refuses.
    await db.pool.query(`CREATE VIEW held_day AS SELECT * FROM "${name}"`);
    try {
      const errors: string[] = [];
      const logger = { info: () => undefined, warn: () => undefined, error: (_o: object, message: string) => errors.push(message) };
      const first = await dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 13 }, logger });
      expect(first.dropped).not.toContain(name);
      expect(errors).toContain('detached history partitions could not be dropped; the next run drops them');
      expect(await partitions('deliveries')).not.toContain(name);
      expect((await db.pool.query(`SELECT obj_description($1::regclass, 'pg_class') AS note`, [name])).rows[0].note).toMatch(
        /^trackway retention: detached from deliveries /,
      );
      expect(await count(`SELECT count(*) AS n FROM deliveries WHERE id = $1`, [id])).toBe(0);
    } finally {
      await db.pool.query('DROP VIEW held_day');
    }
    const second = await dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 13 } });
    expect(second.dropped).toContain(name);
    expect((await db.pool.query(`SELECT to_regclass($1) AS t`, [name])).rows[0].t).toBeNull();
  });

  it('a table too busy for its lock is not stopped: while a detach waits for an open transaction, others write and read the table', async () => {
    await deliveryAt(daysAgo(12), 'succeeded');
    const reader = await db.pool.connect();
    const other = await db.pool.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM deliveries');
      const events: string[] = [];
      const drop = dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 10 } }).then((r) => {
        events.push('dropped');
        return r;
      });
      await waitFor(detachWaiting('deliveries'), { what: 'retention detaching a day of deliveries' });
      // A DROP (or a plain DETACH) would take the table's exclusive lock: these would wait behind it until the reader ends.
      await other.query(`SET statement_timeout = '2s'`);
      const { id: today } = await deliveryAt(now, 'succeeded', true, other);
      expect(Number((await other.query<{ n: string }>(`SELECT count(*) AS n FROM deliveries WHERE id = $1`, [today])).rows[0].n)).toBe(1);
      events.push('written and read');
      await reader.query('COMMIT');
      const report = await drop;
      expect(events).toEqual(['written and read', 'dropped']);
      expect(report.dropped.some((p) => p.startsWith('deliveries_p'))).toBe(true);
    } finally {
      await other.query('RESET statement_timeout');
      reader.release();
      other.release();
    }
  });

  it('finishes a step that was stopped half-way: a detach left pending is finalized and dropped; a detached day that holds a pending delivery is attached again', async () => {
    const stuck = await deliveryAt(daysAgo(9), 'succeeded');
    const live = await deliveryAt(daysAgo(8), 'pending');
    const day = (d: Date) => d.toISOString().slice(0, 10).replaceAll('-', '');
    const [stuckDay, liveDay] = [`deliveries_p${day(daysAgo(9))}`, `deliveries_p${day(daysAgo(8))}`];
    const bound = async (name: string) =>
      (await db.pool.query<{ b: string }>(`SELECT pg_get_expr(relpartbound, oid) AS b FROM pg_class WHERE relname = $1`, [name])).rows[0].b;
    // As retire leaves them: marked, then one detach cancelled while it waited, the other detached and not dropped.
    const liveBound = await bound(liveDay);
    for (const [name, b] of [
      [stuckDay, await bound(stuckDay)],
      [liveDay, liveBound],
    ])
      await db.pool.query(`COMMENT ON TABLE "${name}" IS 'trackway retention: detached from deliveries ${b.replaceAll("'", "''")}'`);
    await db.pool.query(`ALTER TABLE deliveries DETACH PARTITION "${liveDay}"`);
    const reader = await db.pool.connect();
    const detacher = await db.pool.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM deliveries');
      const pid = (await detacher.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const detaching = detacher.query(`ALTER TABLE deliveries DETACH PARTITION "${stuckDay}" CONCURRENTLY`).catch((error: Error) => error);
      await waitFor(detachWaiting('deliveries'), { what: 'the detach waiting' });
      await db.pool.query('SELECT pg_cancel_backend($1)', [pid]);
      expect(String(await detaching)).toMatch(/cancel/);
      await reader.query('COMMIT');
    } finally {
      reader.release();
      detacher.release();
    }
    expect((await db.pool.query(`SELECT 1 FROM pg_inherits WHERE inhdetachpending`)).rowCount).toBe(1);
    // Retention of 30 days: neither day is past it; only the interrupted step's work is done.
    const report = await dropExpiredHistory(db.pool, { retention: RETENTION });
    expect(report.dropped).toContain(stuckDay);
    expect(report.kept).toContainEqual({ partition: liveDay, reason: 'holds pending deliveries (one became pending while retention ran)' });
    expect(await count(`SELECT count(*) AS n FROM deliveries WHERE id = $1`, [stuck.id])).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM deliveries WHERE id = $1`, [live.id])).toBe(1);
    expect(await partitions('deliveries')).toContain(liveDay);
    expect(await bound(liveDay)).toBe(liveBound);
    expect((await db.pool.query(`SELECT obj_description($1::regclass, 'pg_class') AS note`, [liveDay])).rows[0].note).toBeNull();
    expect((await db.pool.query(`SELECT 1 FROM pg_inherits WHERE inhdetachpending`)).rowCount).toBe(0);
  });

  it('runs once at a time: a run that finds another going is skipped', async () => {
    await deliveryAt(daysAgo(6), 'succeeded');
    const reader = await db.pool.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM deliveries');
      const first = dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 3 } });
      await waitFor(detachWaiting('deliveries'), { what: 'the first run detaching' });
      expect(await dropExpiredHistory(db.pool, { retention: { ...RETENTION, deliveryLogDays: 3 } })).toMatchObject({ skipped: true, dropped: [] });
      await reader.query('COMMIT');
      expect((await first).dropped.some((p) => p.startsWith('deliveries_p'))).toBe(true);
    } finally {
      reader.release();
    }
  });

  // Last: it drops nearly everything.
  it("after a downtime past every retention, keeps each table's newest partition and makes partitions on from there", async () => {
    // 12 days on, with retention of a day: every partition is past but the newest (made 7 days ahead).
    const later = new Date(now.getTime() + 12 * DAY);
    const short = { clickDays: 1, postbackDays: 1, deliveryLogDays: 1 };
    // Nothing live is left (else its day would be kept, as above).
    await db.pool.query(`UPDATE outbox_events SET published_at = now() WHERE published_at IS NULL`);
    await db.pool.query(`UPDATE deliveries SET status = 'failed' WHERE status = 'pending'`);
    await dropExpiredHistory(db.pool, { now: later, retention: short });
    for (const table of ['clicks', 'postbacks', 'outbox_events', 'deliveries', 'delivery_attempts']) {
      const left = (await partitions(table)).filter((p) => !p.endsWith('_beyond'));
      expect([table, left.length]).toEqual([table, 1]);
    }
    const { created } = await ensurePartitions(db.pool, { now: later });
    expect(created.filter((p) => p.startsWith('deliveries_p')).length).toBeGreaterThanOrEqual(7);
    const event = idAt('event', later);
    await db.pool.query(`INSERT INTO outbox_events (id, type, payload) VALUES ($1, 'conversion.approved', '{}')`, [event]);
    expect(await count(`SELECT count(*) AS n FROM outbox_events WHERE id = $1`, [event])).toBe(1);
  }, 120_000);
});
