import { type PgPool, type Queryable, inTransaction } from '@trackway/db';
import {
  HISTORY_TABLES,
  type HistoryRetention,
  type HistoryTable,
  type HistoryTableSpec,
  PARTITIONS_AHEAD_DAYS,
  boundTime,
  boundValue,
  historyTable,
  isExpired,
  periodStart,
  planPartitions,
  retentionDays,
} from '@trackway/domain';

// Runs the decisions of packages/domain/src/history.ts: partitions made ahead, expired ones
// dropped whole (docs/operations.md, "History and retention").

const DAY_MS = 86_400_000;

/** What this module logs through (a pino logger). */
interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}
/** Serialises partition upkeep across processes (api, attribution and delivery all run it). */
const UPKEEP_LOCK = 7_270_018;

interface Partition {
  table: string;
  name: string;
  /** null: MINVALUE (the converted table, or the one before history started). */
  lower: Date | null;
  /** null: MAXVALUE (ids past any ULID of this era: kept, never dropped). */
  upper: Date | null;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

async function listPartitions(db: Queryable): Promise<Partition[]> {
  const { rows } = await db.query<{ parent: string; name: string; bound: string }>(
    `SELECT p.relname AS parent, c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      WHERE p.relnamespace = current_schema()::regnamespace AND p.relname = ANY($1::text[])`,
    [HISTORY_TABLES.map((t) => t.table)],
  );
  // FOR VALUES FROM (MINVALUE | '<value>') TO ('<value>'); a time bound is printed in the session's time zone.
  const times = new Map<string, Date>();
  const texts = [...new Set(rows.flatMap((r) => [...r.bound.matchAll(/'([^']*)'/g)].map((m) => m[1])))];
  const timeLike = texts.filter((t) => /^\d{4}-\d\d-\d\d/.test(t));
  if (timeLike.length > 0) {
    const parsed = await db.query<{ text: string; at: Date }>(`SELECT t AS text, t::timestamptz AS at FROM unnest($1::text[]) AS t`, [timeLike]);
    for (const { text, at } of parsed.rows) times.set(text, at);
  }
  return rows.map((r) => {
    const spec = specOf(r.parent);
    const [, from, to] = /FROM \((.*)\) TO \((.*)\)/.exec(r.bound)!;
    const value = (v: string) => {
      const text = v.slice(1, -1);
      return spec.key.kind === 'time' ? times.get(text)! : boundTime(spec, text);
    };
    // A MAXVALUE partition (ids past any ULID of this era) is never planned around nor dropped: its lower bound is not read.
    if (to === 'MAXVALUE') return { table: r.parent, name: r.name, lower: null, upper: null };
    return { table: r.parent, name: r.name, lower: from === 'MINVALUE' ? null : value(from), upper: value(to) };
  });
}

const specOf = (table: string): HistoryTableSpec => historyTable(table as HistoryTable);

async function createPartition(db: Queryable, spec: HistoryTableSpec, name: string, from: Date | null, to: Date) {
  const lower = from === null ? 'MINVALUE' : `'${boundValue(spec, from)}'`;
  // Made as a table of its own, then attached: ATTACH takes a lock that lets the parent's readers
  // and writers go on (CREATE … PARTITION OF would stop them), and an empty table is checked at once.
  await db.query(`CREATE TABLE ${quote(name)} (LIKE ${quote(spec.table)} INCLUDING DEFAULTS)`);
  await db.query(`ALTER TABLE ${quote(spec.table)} ATTACH PARTITION ${quote(name)} FOR VALUES FROM (${lower}) TO ('${boundValue(spec, to)}')`);
}

export interface EnsureOptions {
  /** History starts here: partitions are made back to it, where the table before it is empty (a new install, a benchmark). Default: now. */
  from?: Date;
  now?: Date;
}

/**
 * Makes every missing partition from the newest one through PARTITIONS_AHEAD_DAYS ahead of now.
 * With `from` before the first partition of days and the table below it empty (a database with
 * no history yet), that table is replaced by one ending at `from` and days from `from` on. One
 * process at a time (an advisory lock); a lock it cannot get in 5 s is given up (the next run
 * tries again, days ahead of need). Returns the partitions it made.
 */
export async function ensurePartitions(pool: PgPool, options: EnsureOptions = {}): Promise<{ created: string[] }> {
  const now = options.now ?? new Date();
  return inTransaction(pool, async (client) => {
    const created: string[] = [];
    const make = async (spec: HistoryTableSpec, name: string, from: Date | null, to: Date) => {
      await createPartition(client, spec, name, from, to);
      created.push(name);
    };
    await client.query(`SET LOCAL lock_timeout = '5s'`);
    await client.query(`SELECT pg_advisory_xact_lock(${UPKEEP_LOCK})`);
    const existing = await listPartitions(client);
    for (const spec of HISTORY_TABLES) {
      const mine = existing.filter((p): p is Partition & { upper: Date } => p.table === spec.table && p.upper !== null);
      const bottom = mine.find((p) => p.lower === null);
      const exists = (start: Date) => mine.some((p) => p.lower?.getTime() === start.getTime());
      if (options.from && bottom && options.from < bottom.upper) {
        const start = periodStart(spec, options.from);
        const empty = (await client.query(`SELECT NOT EXISTS (SELECT 1 FROM ${quote(bottom.name)}) AS empty`)).rows[0].empty as boolean;
        if (empty && start < bottom.upper) {
          await client.query(`DROP TABLE ${quote(bottom.name)}`);
          await make(spec, `${spec.table}_before_${start.toISOString().slice(0, 10).replaceAll('-', '')}`, null, start);
          // Up to the first partition that exists (the last one ends there, not at its period's end).
          for (const r of planPartitions(spec, start, bottom.upper).filter((r) => !exists(r.start)))
            await make(spec, r.name, r.start, new Date(Math.min(r.end.getTime(), bottom.upper.getTime())));
        }
      }
      // From the newest partition's end; none left (retention dropped them all after a downtime past it): from today.
      const top = mine.length === 0 ? periodStart(spec, now) : new Date(Math.max(...mine.map((p) => p.upper.getTime())));
      for (const r of planPartitions(spec, top, new Date(now.getTime() + PARTITIONS_AHEAD_DAYS * DAY_MS)).filter((r) => !exists(r.start)))
        await make(spec, r.name, r.start, r.end);
    }
    return { created };
  });
}

export interface KeptPartition {
  partition: string;
  reason: string;
}

export interface RetentionReport {
  dropped: string[];
  kept: KeptPartition[];
  /** Wall time of the whole step, and of each table's drop. */
  ms: number;
  tables: Record<string, number>;
}

/** Lock waits of a table's drop (it stops that table's readers and writers while it waits): short, then again. */
const DROP_LOCK_WAITS_MS = [200, 400, 800, 1600, 2000, 2000];

/** True while a partition holds what must outlive retention: a pending delivery, an unpublished event, clicks the reports have not counted. */
async function liveReason(db: Queryable, p: Partition): Promise<string | null> {
  const ask = async (sql: string) => (await db.query<{ live: boolean }>(`SELECT EXISTS (${sql}) AS live`)).rows[0].live;
  if (p.table === 'deliveries' && (await ask(`SELECT 1 FROM ${quote(p.name)} WHERE status = 'pending'`))) return 'holds pending deliveries';
  if (p.table === 'outbox_events' && (await ask(`SELECT 1 FROM ${quote(p.name)} WHERE published_at IS NULL`))) return 'holds unpublished events';
  if (p.table === 'clicks' && (await ask(`SELECT 1 FROM ${quote(p.name)} WHERE report_xid >= (SELECT xid FROM report_click_folds WHERE id = 1)`)))
    return 'holds clicks the reports have not counted yet';
  return null;
}

/**
 * Retention: drops every partition whose rows are all older than its table's retention. A day of
 * the delivery log (events, deliveries, attempts) goes as one, and is kept, reported, while it
 * holds a pending delivery or an unpublished event; a week of clicks is kept while the reports
 * have not counted its clicks. Each table's partitions go in one short transaction (a DROP of
 * each takes the table's exclusive lock for milliseconds; a lock not granted within 200 ms is
 * let go and asked for again, so readers and writers never queue behind it for long):
 * deliveries (checked again under their lock), clicks and postbacks in parallel, then the events
 * and attempts of the days whose deliveries went. Nothing is deleted row by row.
 */
export async function dropExpiredHistory(pool: PgPool, options: { now?: Date; retention: HistoryRetention; logger?: Logger }): Promise<RetentionReport> {
  const started = performance.now();
  const now = options.now ?? new Date();
  const partitions = await listPartitions(pool);
  // A table's newest partition is never dropped (even after a downtime past retention): partitions
  // are made on from there.
  const newest = new Map<string, number>();
  for (const p of partitions) if (p.upper) newest.set(p.table, Math.max(newest.get(p.table) ?? 0, p.upper.getTime()));
  const expired = partitions.filter(
    (p): p is Partition & { upper: Date } =>
      p.upper !== null && p.upper.getTime() < newest.get(p.table)! && isExpired(p.upper, retentionDays(specOf(p.table), options.retention), now),
  );
  const kept: KeptPartition[] = [];
  // The delivery log's days by their end: one live table keeps the day's three.
  const liveDays = new Map<number, string>();
  for (const p of expired) {
    const reason = await liveReason(pool, p);
    if (!reason) continue;
    kept.push({ partition: p.name, reason });
    if (specOf(p.table).retention === 'delivery_log') liveDays.set(p.upper.getTime(), `${p.name} ${reason}`);
  }
  const keptNames = new Set(kept.map((k) => k.partition));
  for (const p of expired) {
    const day = liveDays.get(p.upper.getTime());
    if (!keptNames.has(p.name) && specOf(p.table).retention === 'delivery_log' && day) kept.push({ partition: p.name, reason: `its day is kept: ${day}` });
  }
  const keep = new Set(kept.map((k) => k.partition));
  const byTable = new Map<string, Array<Partition & { upper: Date }>>();
  for (const p of expired.filter((p) => !keep.has(p.name))) byTable.set(p.table, [...(byTable.get(p.table) ?? []), p]);
  const tables: Record<string, number> = {};
  const dropped: string[] = [];
  const drop = async (table: string, list: Array<Partition & { upper: Date }>, recheck?: (db: Queryable) => Promise<Set<string>>) => {
    const t0 = performance.now();
    const live = await dropPartitions(
      pool,
      table,
      list.map((p) => p.name),
      recheck,
    );
    for (const p of list) {
      if (live.has(p.name)) kept.push({ partition: p.name, reason: 'holds pending deliveries (one became pending while retention ran)' });
      else dropped.push(p.name);
    }
    tables[table] = performance.now() - t0;
    return list.filter((p) => live.has(p.name));
  };
  // Deliveries first, each day checked again under the table's lock (a replay may have made a
  // delivery pending since the check above); a day whose deliveries stay keeps its events and
  // attempts. Clicks and postbacks meanwhile.
  const { deliveries = [], outbox_events: events = [], delivery_attempts: attempts = [], ...others } = Object.fromEntries(byTable);
  const recheck = async (db: Queryable) => {
    const live = new Set<string>();
    for (const p of deliveries) if (await liveReason(db, p)) live.add(p.name);
    return live;
  };
  const [stayed] = await Promise.all([
    deliveries.length > 0 ? drop('deliveries', deliveries, recheck) : Promise.resolve([]),
    ...Object.entries(others).map(([table, list]) => drop(table, list)),
  ]);
  const staying = new Set(stayed.map((p) => p.upper.getTime()));
  const ofDroppedDays = (list: Array<Partition & { upper: Date }>) => {
    for (const p of list.filter((p) => staying.has(p.upper.getTime()))) kept.push({ partition: p.name, reason: 'its day is kept: its deliveries are' });
    return list.filter((p) => !staying.has(p.upper.getTime()));
  };
  await Promise.all(
    [
      ['outbox_events', ofDroppedDays(events)],
      ['delivery_attempts', ofDroppedDays(attempts)],
    ]
      .filter(([, list]) => list.length > 0)
      .map(([table, list]) => drop(table as string, list as Array<Partition & { upper: Date }>)),
  );
  if (kept.length > 0) options.logger?.warn({ kept }, 'history partitions past retention kept: they still hold live rows');
  if (dropped.length > 0) options.logger?.info({ dropped: dropped.length, partitions: dropped }, 'history partitions past retention dropped');
  return { dropped, kept, ms: performance.now() - started, tables };
}

/**
 * Drops a table's partitions in one transaction: its exclusive lock asked for with a short
 * timeout, given up and asked again (DROP_LOCK_WAITS_MS), so its readers and writers never queue
 * behind it for long. `recheck`, under the lock, names partitions to keep after all. Returns them.
 */
async function dropPartitions(pool: PgPool, table: string, names: string[], recheck?: (db: Queryable) => Promise<Set<string>>): Promise<Set<string>> {
  const client = await pool.connect();
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = '${DROP_LOCK_WAITS_MS[attempt]}ms'`);
        await client.query(`LOCK TABLE ${quote(table)} IN ACCESS EXCLUSIVE MODE`);
        const live = recheck ? await recheck(client) : new Set<string>();
        const going = names.filter((name) => !live.has(name));
        if (going.length > 0) await client.query(`DROP TABLE IF EXISTS ${going.map(quote).join(', ')}`);
        await client.query('COMMIT');
        return live;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        // 55P03 lock_not_available: the table was busy; give its readers and writers room, then ask again.
        if ((error as { code?: string }).code !== '55P03' || attempt === DROP_LOCK_WAITS_MS.length - 1) throw error;
      }
    }
  } finally {
    client.release();
  }
}

/** How often the services make partitions ahead (they are made PARTITIONS_AHEAD_DAYS ahead). */
export const PARTITION_UPKEEP_MS = 3_600_000;

/**
 * A writer of history makes its partitions ahead: now (a failure is thrown: the caller's start-up
 * step retries it) and then every hour (a failure is logged; the next hour tries again, days
 * ahead of need). Returns a stop function.
 */
export async function startPartitionUpkeep(pool: PgPool, logger: Logger): Promise<() => void> {
  const run = async () => {
    const { created } = await ensurePartitions(pool);
    if (created.length > 0) logger.info({ created }, 'history partitions made ahead');
  };
  await run();
  const timer = setInterval(
    () => run().catch((error: unknown) => logger.error({ err: error }, 'history partitions could not be made ahead; trying again in an hour')),
    PARTITION_UPKEEP_MS,
  );
  timer.unref();
  return () => clearInterval(timer);
}
