import { setTimeout as sleep } from 'node:timers/promises';
import { type PgClient, type PgPool, type Queryable, inTransaction, withClient } from '@trackway/db';
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
/**
 * The order in which every transaction that takes more than one history table takes them:
 * attribution, postbacks then events; the delivery worker's record, attempts then deliveries; its
 * read, deliveries then events; a test event, its delivery then the event. Retention's locks and
 * partition upkeep follow it too: in another order, two transactions could each wait for the other.
 */
export const LOCK_ORDER: readonly string[] = ['clicks', 'postbacks', 'delivery_attempts', 'deliveries', 'outbox_events'];
const inLockOrder = (a: string, b: string) => LOCK_ORDER.indexOf(a) - LOCK_ORDER.indexOf(b);
/** Serialises partition upkeep across processes (api, attribution and delivery all run it). */
const UPKEEP_LOCK = 7_270_018;

interface Partition {
  table: string;
  name: string;
  /** null: MINVALUE (the converted table, or the one before history started). */
  lower: Date | null;
  /** null: MAXVALUE (ids past any ULID of this era: kept, never dropped). */
  upper: Date | null;
  /** As Postgres prints it: FOR VALUES FROM (…) TO (…). */
  bound: string;
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
    if (to === 'MAXVALUE') return { table: r.parent, name: r.name, lower: null, upper: null, bound: r.bound };
    return { table: r.parent, name: r.name, lower: from === 'MINVALUE' ? null : value(from), upper: value(to), bound: r.bound };
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
    for (const spec of [...HISTORY_TABLES].sort((a, b) => inLockOrder(a.table, b.table))) {
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
  /** Wall time of the whole step, and of each table's drops. */
  ms: number;
  tables: Record<string, number>;
  /**
   * Per table: the tries that waited for its exclusive lock (0: had at once, by a try that does
   * not wait: SWIFT_POLL_MS), how long it was held and when it was had (ms after the run began;
   * null: never had, retired one by one), and what a try that timed out last waited for
   * (sessions, as pg_stat_activity shows them).
   */
  locks: Record<string, { tries: number; heldMs: number | null; atMs: number | null; blockedBy: string[] }>;
  /** Another run held the retention lock: nothing was done. */
  skipped?: boolean;
}

/**
 * Which of these partitions hold what must outlive retention, and why: a pending delivery, an
 * unpublished event, clicks the reports have not counted (postbacks and attempts hold nothing of
 * the kind). One statement for them all, each partition's check an index's (the pending
 * deliveries', the unpublished events', the clicks' report_xid BRIN): `db` is a transaction with
 * sequential scans off (noSeqScans), since a partition past retention holds gigabytes, and a scan
 * that finds nothing reads all of them.
 */
async function liveAmong(db: Queryable, list: ReadonlyArray<{ table: string; name: string }>): Promise<Map<string, string>> {
  let mark = '0';
  if (list.some((p) => p.table === 'clicks')) {
    // The fold's mark as a number in the statement: the planner weighs the BRIN with it.
    const { rows } = await db.query<{ xid: string }>('SELECT xid::text AS xid FROM report_click_folds WHERE id = 1');
    if (/^\d+$/.test(rows[0]?.xid ?? '')) mark = rows[0].xid;
  }
  const checks: Record<string, [where: string, reason: string]> = {
    deliveries: [`status = 'pending'`, 'holds pending deliveries'],
    outbox_events: ['published_at IS NULL', 'holds unpublished events'],
    clicks: [`report_xid >= ${mark}::bigint`, 'holds clicks the reports have not counted yet'],
  };
  const asked = list.filter((p) => checks[p.table]);
  if (asked.length === 0) return new Map();
  const { rows } = await db.query<{ name: string; reason: string }>(
    asked
      .map((p) => {
        const [where, reason] = checks[p.table];
        return `SELECT ${literal(p.name)} AS name, ${literal(reason)} AS reason WHERE EXISTS (SELECT 1 FROM ${quote(p.name)} WHERE ${where})`;
      })
      .join(' UNION ALL '),
  );
  return new Map(rows.map((r) => [r.name, r.reason]));
}

/** Work in a transaction whose statements read indexes, not whole partitions (liveAmong). */
const noSeqScans = <T>(pool: PgPool, work: (tx: Queryable) => Promise<T>) =>
  inTransaction(pool, async (tx) => {
    await tx.query('SET LOCAL enable_seqscan = off');
    return work(tx);
  });

/** A partition being retired carries this comment (and its bound) from before its detach until its drop. */
const RETIRING = 'trackway retention: detached from ';
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
/** A bound as Postgres prints a history partition's (an id or a time in quotes), and nothing else. */
const BOUND = /^FOR VALUES FROM \((MINVALUE|'[^']*')\) TO \('[^']*'\)$/;
/** Only one retention run at a time, across processes (a session lock on a connection of its own). */
const RETENTION_LOCK = 7_270_019;
/**
 * How long a detach (or its FINALIZE) waits for the transactions using its table: it stops no
 * one meanwhile; past it, the partition is left pending detach and the next run finishes it.
 */
const DETACH_WAIT = '30s';

type Dated = Partition & { upper: Date };

/**
 * Retires one partition without stopping its table's readers or writers: DETACH PARTITION …
 * CONCURRENTLY takes only a SHARE UPDATE EXCLUSIVE lock of the table (it waits for the
 * transactions using it instead), then, detached, nothing writes to it: it is checked once more
 * and dropped (its own lock only), or attached again if something in it became live meanwhile (a
 * replay). Returns why it was kept, or null: dropped. The comment lets an interrupted step be
 * finished (finishInterrupted); a detach that fails takes it back.
 */
async function retire(pool: PgPool, p: Dated): Promise<string | null> {
  await bounded(pool, `COMMENT ON TABLE ${quote(p.name)} IS ${literal(`${RETIRING}${p.table} ${p.bound}`)}`);
  try {
    await withClient(pool, (client) => withWait(client, () => client.query(`ALTER TABLE ${quote(p.table)} DETACH PARTITION ${quote(p.name)} CONCURRENTLY`)));
  } catch (error) {
    // Still attached (its first step failed): no mark. Pending detach (the wait timed out): the next run finishes it.
    const attached = await pool.query(`SELECT 1 FROM pg_inherits WHERE inhrelid = $1::regclass AND NOT inhdetachpending`, [quote(p.name)]).catch(() => null);
    if (attached?.rowCount) await bounded(pool, `COMMENT ON TABLE ${quote(p.name)} IS NULL`).catch(() => undefined);
    throw error;
  }
  return settleDetached(pool, p.table, p.name, p.bound);
}

async function settleDetached(pool: PgPool, table: string, name: string, bound: string): Promise<string | null> {
  const reason = (await noSeqScans(pool, (tx) => liveAmong(tx, [{ table, name }]))).get(name) ?? null;
  if (reason === null) {
    await bounded(pool, `DROP TABLE ${quote(name)}`);
    return null;
  }
  // Attached and unmarked together.
  await bounded(pool, `ALTER TABLE ${quote(table)} ATTACH PARTITION ${quote(name)} ${bound}`, `COMMENT ON TABLE ${quote(name)} IS NULL`);
  return lateReason(table, reason);
}

/** Why a partition found live at the last check (after the first) is kept. */
const lateReason = (table: string, reason: string) => `${reason} (${table === 'deliveries' ? 'one became pending' : 'it became live'} while retention ran)`;

/**
 * What of `list` is kept, and why: each partition `live` names, and with a live partition of the
 * delivery log, the rest of its day (a day's events, deliveries and attempts go as one).
 */
function keptWithTheirDays(list: readonly Dated[], live: ReadonlyMap<string, string>): KeptPartition[] {
  const ofTheLog = (p: Dated) => specOf(p.table).retention === 'delivery_log';
  const liveDays = new Map(list.filter((p) => live.has(p.name) && ofTheLog(p)).map((p) => [p.upper.getTime(), `${p.name} ${live.get(p.name)}`]));
  return list.flatMap((p) => {
    const reason = live.get(p.name);
    if (reason) return [{ partition: p.name, reason }];
    const day = ofTheLog(p) ? liveDays.get(p.upper.getTime()) : undefined;
    return day ? [{ partition: p.name, reason: `its day is kept: ${day}` }] : [];
  });
}

/** Statements in one transaction, its lock waits bounded by DETACH_WAIT. */
const bounded = (pool: PgPool, ...statements: string[]) =>
  inTransaction(pool, async (tx) => {
    await tx.query(`SET LOCAL lock_timeout = '${DETACH_WAIT}'`);
    for (const text of statements) await tx.query(text);
  });

/**
 * How long retention waits for a table's exclusive lock, try after try, before it retires the
 * table's partitions one by one without it (retire). While it waits, the table's new readers and
 * writers queue behind it: each wait bounds one stall.
 */
// Each below deadlock_timeout (1 s): a wait that long lets the deadlock detector pick a victim,
// which may be one of the hot path's transactions rather than this try.
export const SWIFT_LOCK_WAITS_MS: readonly number[] = [400, 800];
/** Between two tries: what queued behind a try that timed out runs first. */
const SWIFT_PAUSE_MS = 250;
/**
 * Before the tries that wait: for this long, tries that do not (NOWAIT, every SWIFT_POLL_EVERY_MS),
 * each had at once or failed at once, so no one queues behind them: one lands in a moment when no
 * transaction uses the tables.
 */
export const SWIFT_POLL_MS = 300;
const SWIFT_POLL_EVERY_MS = 10;
/** What a lock waits for: each blocking session, what it is and for how long its transaction has run. */
async function blockersOf(db: Queryable, pid: number): Promise<string[]> {
  const { rows } = await db.query<{ what: string }>(
    `SELECT concat_ws(' ', coalesce(nullif(backend_type, 'client backend'), 'session'), pid::text, '(' || coalesce(state, 'no state') || ',',
              'transaction ' || round(extract(epoch FROM now() - xact_start) * 1000)::text || ' ms):', left(regexp_replace(query, '\\s+', ' ', 'g'), 160)) AS what
       FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids($1::int))`,
    [pid],
  );
  return rows.map((r) => r.what);
}

/**
 * Retires the expired partitions of a table, or of the delivery log's three tables (a day as
 * one), in one short transaction under exclusive locks: each is detached (a change of the catalog
 * alone) and marked as retire marks it; once the locks are let go, the detached tables are
 * dropped (their files given back) with no one waiting. One change of each table's partitions
 * for the lot, where a detach per partition makes every session plan its statements on the table
 * again each time. The tables are locked without their partitions (ONLY), in the hot path's order
 * (LOCK_ORDER), and then the expired partitions: an autovacuum of today's partition (frequent
 * under load) is not in the way. Under the locks every partition is checked again (a replay may
 * have made a delivery pending since the first check; a late click may have landed); a day
 * holding one keeps its three partitions. First, for `pollMs`, tries that take the locks only if
 * no one holds them (NOWAIT): no one waits behind those; then the tries that wait (`waits`).
 * Returns what was dropped and kept, and the tries that waited; `heldMs` null when the locks could not be had within any of `waits` (a long transaction is
 * using a table; `blockedBy` says which): the caller retires the partitions one by one. A drop
 * that fails leaves its tables detached and marked: the next run drops them.
 */
async function detachAtOnce(
  pool: PgPool,
  /** A connection of retention's own, idle meanwhile: asks who is in the way when the pool is saturated behind the lock. */
  side: Queryable,
  tables: readonly string[],
  list: Dated[],
  waits: readonly number[],
  pollMs: number,
  logger?: Logger,
): Promise<{ tries: number; heldMs: number | null; lockedAt: number | null; blockedBy: string[]; dropped: Promise<string[]>; kept: KeptPartition[] }> {
  const parents = [...tables].sort(inLockOrder);
  const partitions = [...list].sort((a, b) => inLockOrder(a.table, b.table) || a.name.localeCompare(b.name));
  let blockedBy: string[] = [];
  const lockList = [...parents.map((t) => `ONLY ${quote(t)}`), ...partitions.map((p) => quote(p.name))].join(', ');
  /** One try: null if the locks were not had (within `wait`; at once when null). */
  const attempt = async (wait: number | null) => {
    let locked = 0;
    let watch: NodeJS.Timeout | undefined;
    let probe: Promise<string[]> | undefined;
    try {
      // One attempt: a try that times out or is chosen by the deadlock detector is the next try's to redo.
      const done = await inTransaction(
        pool,
        async (tx) => {
          // Every later lock wait of the try bounded too (the checks' read of the fold's mark).
          const later = `SET LOCAL lock_timeout = '${Math.max(1, Math.round(wait ?? waits[0]))}ms'`;
          if (wait === null) await tx.query(`LOCK TABLE ${lockList} IN ACCESS EXCLUSIVE MODE NOWAIT; ${later}; SET LOCAL enable_seqscan = off`);
          else {
            const [{ pid }] = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
            // Shortly before the wait ends: who is in the way (reported if the try times out).
            watch = setTimeout(
              () => {
                probe = blockersOf(side, pid).catch(() => []);
              },
              // Halfway: a probe that starts late (a busy event loop) still finds the wait going on.
              Math.max(1, wait / 2),
            );
            // One round trip; one statement takes every lock, its wait bounded as a whole (a
            // statement_timeout applies to each statement of a query string on its own). No
            // DEFAULT partition and no foreign key to these tables: a DETACH takes no other lock.
            await tx.query(
              `SET LOCAL statement_timeout = '${Math.max(1, Math.round(wait))}ms'; LOCK TABLE ${lockList} IN ACCESS EXCLUSIVE MODE;
               SET LOCAL statement_timeout TO DEFAULT; ${later}; SET LOCAL enable_seqscan = off`,
            );
          }
          locked = performance.now();
          clearTimeout(watch);
          const live = await liveAmong(tx, list);
          const kept = keptWithTheirDays(list, new Map(list.filter((p) => live.has(p.name)).map((p) => [p.name, lateReason(p.table, live.get(p.name)!)])));
          const staying = new Set(kept.map((k) => k.partition));
          const detached = list.filter((p) => !staying.has(p.name));
          if (detached.length > 0)
            await tx.query(
              detached
                .map(
                  (p) =>
                    `COMMENT ON TABLE ${quote(p.name)} IS ${literal(`${RETIRING}${p.table} ${p.bound}`)}; ALTER TABLE ${quote(p.table)} DETACH PARTITION ${quote(p.name)}`,
                )
                .join('; '),
            );
          return { detached, kept };
        },
        1,
      );
      return { ...done, locked };
    } catch (error) {
      // 55P03 lock_not_available: NOWAIT, or a lock_timeout set for the role; 57014
      // query_canceled: the locks' statement outlasted the wait (a transaction using a table; a
      // cancel); 40P01: a transaction waited for this try.
      const code = (error as { code?: string }).code;
      if (code !== '57014' && code !== '55P03' && code !== '40P01') throw error;
      if (wait === null) return null;
      blockedBy = (await probe) ?? [];
      logger?.info({ tables: parents, wait_ms: wait, blocked_by: blockedBy }, "history retention: a table's lock was not had in time");
      return null;
    } finally {
      clearTimeout(watch);
      // Never left running on retention's own connection (the next query there waits for it).
      await probe;
    }
  };
  let done: Awaited<ReturnType<typeof attempt>> = null;
  let tries = 0;
  const pollUntil = performance.now() + pollMs;
  while (!done && performance.now() < pollUntil) {
    try {
      done = await attempt(null);
    } catch (error) {
      // Not a lock held (a connection the pool could not give, say): the tries that wait say what it is.
      logger?.info({ tables: parents, err: error }, 'history retention: a try without waiting failed; trying with waits');
      break;
    }
    if (!done) await sleep(SWIFT_POLL_EVERY_MS);
  }
  for (const [i, wait] of waits.entries()) {
    if (done) break;
    if (i > 0) await sleep(SWIFT_PAUSE_MS);
    tries = i + 1;
    done = await attempt(wait);
  }
  if (!done) return { tries, heldMs: null, lockedAt: null, blockedBy, dropped: Promise.resolve([]), kept: [] };
  const { locked } = done;
  const heldMs = performance.now() - locked;
  // Nothing can write to them now: dropped as they are, each table's in two statements and all
  // of them at once (the files' work, done with no one waiting; the caller need not wait for it
  // either).
  const byTable = new Map<string, string[]>();
  for (const p of done.detached) byTable.set(p.table, [...(byTable.get(p.table) ?? []), p.name]);
  const halves = [...byTable.values()].flatMap((names) => {
    const half = Math.ceil(names.length / 2);
    return [names.slice(0, half), names.slice(half)].filter((list) => list.length > 0);
  });
  const dropped = Promise.all(
    halves.map((names) =>
      bounded(pool, `DROP TABLE ${names.map(quote).join(', ')}`).then(
        () => names,
        (error: unknown) => {
          logger?.error({ err: error, partitions: names }, 'detached history partitions could not be dropped; the next run drops them');
          return [];
        },
      ),
    ),
  ).then((lists) => lists.flat());
  return { tries, heldMs, lockedAt: locked, blockedBy, dropped, kept: done.kept };
}

/**
 * A run stopped half-way (its process killed, a detach's wait timed out) left a partition pending
 * detach, or detached and not dropped: the first is finished (DETACH … FINALIZE), then each is
 * settled as retire does. Only a table of a history partition's name whose mark holds its table
 * and a partition bound is touched. One that fails is logged and left for the next run.
 */
async function finishInterrupted(pool: PgPool, client: PgClient, logger?: Logger): Promise<{ dropped: string[]; kept: KeptPartition[] }> {
  const tables: string[] = HISTORY_TABLES.map((t) => t.table);
  const pending = await client.query<{ parent: string; name: string }>(
    `SELECT p.relname AS parent, c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      WHERE i.inhdetachpending AND p.relnamespace = current_schema()::regnamespace AND p.relname = ANY($1::text[])`,
    [tables],
  );
  for (const { parent, name } of pending.rows)
    await client
      .query(`ALTER TABLE ${quote(parent)} DETACH PARTITION ${quote(name)} FINALIZE`)
      .catch((error: unknown) => logger?.error({ err: error, partition: name }, 'a detach left pending could not be finished; the next run tries again'));
  const detached = await client.query<{ name: string; note: string }>(
    `SELECT c.relname AS name, d.description AS note FROM pg_class c
       JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
      WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND NOT c.relispartition AND starts_with(d.description, $1)`,
    [RETIRING],
  );
  const done = { dropped: [] as string[], kept: [] as KeptPartition[] };
  for (const { name, note } of detached.rows) {
    const rest = note.slice(RETIRING.length);
    const table = rest.slice(0, rest.indexOf(' '));
    const bound = rest.slice(table.length + 1);
    if (!tables.includes(table) || !BOUND.test(bound) || !new RegExp(`^${table}_(p|before_)\\d{8}$`).test(name)) continue;
    try {
      const reason = await settleDetached(pool, table, name, bound);
      if (reason === null) done.dropped.push(name);
      else done.kept.push({ partition: name, reason });
    } catch (error) {
      logger?.error({ err: error, partition: name }, 'a detached partition could not be settled; the next run tries again');
    }
  }
  return done;
}

export interface RetentionOptions {
  now?: Date;
  retention: HistoryRetention;
  logger?: Logger;
  /** The waits for a table's exclusive lock (SWIFT_LOCK_WAITS_MS); [] retires every partition one by one. */
  lockWaitsMs?: readonly number[];
  /** How long to try for the locks without waiting first (SWIFT_POLL_MS). */
  lockPollMs?: number;
}

/**
 * Retention: drops every partition whose rows are all older than its table's retention. A day of
 * the delivery log (events, deliveries, attempts) goes as one, and is kept, reported, while it
 * holds a pending delivery or an unpublished event; a week of clicks is kept while the reports
 * have not counted its clicks. Clicks, postbacks and the delivery log (its three tables together)
 * each go in one short transaction under their tables' exclusive locks, one after another, their
 * files dropped after (detachAtOnce; each wait for a lock bounded, a stall of the table's users). A table too busy for
 * that is worked on without stopping it: each partition detached concurrently, checked again and
 * dropped (retire), partition after partition, a day's events and attempts once its deliveries
 * have gone. One run at a time (a run that finds another going returns at once, `skipped`). Nothing is deleted
 * row by row. It needs a session of its own (DETACH … CONCURRENTLY runs outside a transaction;
 * session settings and lock): behind PgBouncer in transaction mode, its process connects
 * directly (docs/operations.md).
 */
export async function dropExpiredHistory(pool: PgPool, options: RetentionOptions): Promise<RetentionReport> {
  const started = performance.now();
  return withClient(pool, async (lock) => {
    const [{ mine }] = (await lock.query<{ mine: boolean }>(`SELECT pg_try_advisory_lock(${RETENTION_LOCK}) AS mine`)).rows;
    if (!mine) {
      options.logger?.info({}, 'history retention is running elsewhere: this run is skipped');
      return { dropped: [], kept: [], ms: performance.now() - started, tables: {}, locks: {}, skipped: true };
    }
    try {
      return await retain(pool, lock, started, options);
    } finally {
      await lock.query(`SELECT pg_advisory_unlock(${RETENTION_LOCK})`).catch(() => undefined);
    }
  });
}

async function retain(pool: PgPool, lock: PgClient, started: number, options: RetentionOptions): Promise<RetentionReport> {
  const now = options.now ?? new Date();
  const { logger } = options;
  const dropped: string[] = [];
  const kept: KeptPartition[] = [];
  const interrupted = await withWait(lock, () => finishInterrupted(pool, lock, logger));
  dropped.push(...interrupted.dropped);
  kept.push(...interrupted.kept);
  // A partition the interrupted step kept (attached again) still keeps its day, below.
  const settled = new Map(interrupted.kept.map((k) => [k.partition, k.reason]));
  const partitions = await listPartitions(pool);
  // A table's newest partition is never dropped (even after a downtime past retention): partitions
  // are made on from there.
  const newest = new Map<string, number>();
  for (const p of partitions) if (p.upper) newest.set(p.table, Math.max(newest.get(p.table) ?? 0, p.upper.getTime()));
  const expired = partitions.filter(
    (p): p is Dated =>
      p.upper !== null && p.upper.getTime() < newest.get(p.table)! && isExpired(p.upper, retentionDays(specOf(p.table), options.retention), now),
  );
  const reasons = await noSeqScans(pool, (tx) =>
    liveAmong(
      tx,
      expired.filter((p) => !settled.has(p.name)),
    ),
  );
  // The settled are in `kept` already (finishInterrupted's reasons), but keep their days too.
  kept.push(...keptWithTheirDays(expired, new Map([...settled, ...reasons])).filter((k) => !settled.has(k.partition)));
  const keep = new Set(kept.map((k) => k.partition));
  const byTable = new Map<string, Dated[]>();
  for (const p of expired.filter((p) => !keep.has(p.name))) byTable.set(p.table, [...(byTable.get(p.table) ?? []), p]);
  const tables: Record<string, number> = {};
  const locks: RetentionReport['locks'] = {};
  // Each in one transaction: the delivery log's three tables (the most files to drop: first), postbacks, clicks.
  const groups = [['delivery_attempts', 'deliveries', 'outbox_events'], ['postbacks'], ['clicks']]
    .map((group) => group.filter((table) => byTable.has(table)))
    .filter((group) => group.length > 0);
  const waits = options.lockWaitsMs ?? SWIFT_LOCK_WAITS_MS;
  // One group's locks at a time: attribution writes postbacks and events in one transaction, so
  // the postbacks' lock would wait for it while it waits for the events' lock, and time out.
  // Each group's drops go on while the next one locks.
  const drops: Array<Promise<void>> = [];
  const failures: PromiseRejectedResult[] = [];
  for (const group of waits.length > 0 ? groups : []) {
    const t0 = performance.now();
    try {
      const done = await detachAtOnce(
        pool,
        lock,
        group,
        group.flatMap((table) => byTable.get(table)!),
        waits,
        options.lockPollMs ?? SWIFT_POLL_MS,
        logger,
      );
      const atMs = done.lockedAt === null ? null : done.lockedAt - started;
      for (const table of group) locks[table] = { tries: done.tries, heldMs: done.heldMs, atMs, blockedBy: done.blockedBy };
      if (done.heldMs === null) continue;
      kept.push(...done.kept);
      for (const table of group) byTable.delete(table);
      drops.push(
        done.dropped.then((names) => {
          dropped.push(...names);
          for (const table of group) tables[table] = performance.now() - t0;
        }),
      );
    } catch (error) {
      // Failed (not busy): the next run tries again, not the slow way now.
      for (const table of group) byTable.delete(table);
      failures.push({ status: 'rejected', reason: error });
    }
  }
  await Promise.all(drops);
  // Each day's deliveries: settled (true: dropped) before that day's events and attempts are touched.
  const deliveriesOf = new Map<number, { settled: Promise<boolean>; settle: (dropped: boolean) => void }>();
  for (const p of byTable.get('deliveries') ?? []) {
    let settle: (dropped: boolean) => void = () => {};
    const settled = new Promise<boolean>((resolve) => {
      settle = resolve;
    });
    deliveriesOf.set(p.upper.getTime(), { settled, settle });
  }
  const work = async (table: string, all: Dated[]) => {
    const t0 = performance.now();
    try {
      // Events and attempts (the delivery log's other tables) wait for their day's deliveries, holding no connection.
      const list: Dated[] = [];
      for (const p of all) {
        const day = table !== 'deliveries' && specOf(table).retention === 'delivery_log' ? deliveriesOf.get(p.upper.getTime()) : undefined;
        if (day && !(await day.settled)) kept.push({ partition: p.name, reason: 'its day is kept: its deliveries are' });
        else list.push(p);
      }
      const settleDay = (p: Dated, isDropped: boolean) => {
        if (table === 'deliveries') deliveriesOf.get(p.upper.getTime())?.settle(isDropped);
      };
      // Too busy for its exclusive lock: a partition at a time, never stopping the table.
      for (const p of list) {
        const reason = await retire(pool, p);
        if (reason === null) dropped.push(p.name);
        else kept.push({ partition: p.name, reason });
        settleDay(p, reason === null);
      }
    } finally {
      // A deliveries step that failed keeps the days it did not reach, events and attempts with them.
      if (table === 'deliveries') for (const day of deliveriesOf.values()) day.settle(false);
      tables[table] = performance.now() - t0;
    }
  };
  // What could not be had swiftly (byTable holds only those tables now), a partition at a time.
  const results = [...failures, ...(await Promise.allSettled([...byTable].map(([table, list]) => work(table, list))))];
  if (kept.length > 0) logger?.warn({ kept }, 'history partitions past retention kept: they still hold live rows');
  if (dropped.length > 0) logger?.info({ dropped: dropped.length, partitions: dropped }, 'history partitions past retention dropped');
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  for (const f of failed.slice(1)) logger?.error({ err: f.reason }, 'history retention: a table failed; the next run tries again');
  if (failed.length > 0) throw failed[0].reason;
  return { dropped, kept, ms: performance.now() - started, tables, locks };
}

/** Runs `work` with lock waits bounded by DETACH_WAIT on this connection, then puts the setting back. */
async function withWait<T>(client: PgClient, work: () => Promise<T>): Promise<T> {
  await client.query(`SET lock_timeout = '${DETACH_WAIT}'`);
  try {
    return await work();
  } finally {
    await client.query('RESET lock_timeout').catch(() => undefined);
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
