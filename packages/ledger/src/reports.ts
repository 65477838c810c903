import { type PgClient, type PgPool, type Queryable, statement } from '@trackway/db';
import {
  type CountBy,
  MeasureSum,
  type ReportDelta,
  type ReportFilters,
  type ReportGroup,
  type ReportMeasures,
  type ReportQuery,
  type ReportSource,
  type SummedRow,
  localDate,
  reportKeyValue,
  reportSource,
} from '@trackway/domain';

// Report rows (docs/reports.md) in three tables: report_quarters (15 minutes, UTC), report_days and
// report_offer_days (a day in each zone of report_zones). Every writer moves them in the statement
// or transaction that changes what they count, through one upsert (tallyUpsert), after taking the
// reports lock shared; reports:rebuild takes it alone, so it never interleaves with a writer.

/** A 15-minute bucket's start (UTC). */
export const QUARTER = (at: string) => `date_bin('15 minutes', ${at}, timestamptz '2000-01-01 00:00:00+00')`;
/** The key of a row's sub2..sub5 (NULL and '' apart). */
export const SUBS_KEY = `md5(json_build_array(sub2, sub3, sub4, sub5)::text)::uuid`;
/** This schema's reports lock (tests keep a schema each in one database). */
export const LOCK_KEY = `hashtext(current_schema() || ' trackway reports')`;
export const SHARED_REPORTS_LOCK = `(SELECT pg_advisory_xact_lock_shared(${LOCK_KEY})::text) IS NOT NULL`;

export const MEASURES = ['clicks', 'approved', 'pending', 'rejected', 'amount', 'revenue', 'payout', 'pending_payout'] as const;
export const CURRENCIES = 'currency, payout_currency, revenue_currency';
export const DIMS = `offer_id, affiliate_id, event, ${CURRENCIES}`;
export const sums = MEASURES.map((m) => `sum(${m}) AS ${m}`).join(', ');
const addExcluded = (table: string) => MEASURES.map((m) => `${m} = ${table}.${m} + excluded.${m}`).join(', ');

/**
 * The statement that adds tally rows (`t`: kind, at, advertiser_id, offer_id, affiliate_id, event,
 * sub2..sub5, currencies, measures) to the three tables, each in key order (concurrent writers
 * wait for each other instead of deadlocking; the quarters first, then days, then offer days).
 */
export function tallyUpsert(source: string, before?: string): string {
  return `WITH ${before ? `${before},` : ''} t AS MATERIALIZED (${source}),
  d AS (
    INSERT INTO report_days (zone, kind, day, ${DIMS}, subs_key, advertiser_id, sub2, sub3, sub4, sub5, ${MEASURES.join(', ')})
    SELECT z.zone, t.kind, (t.at AT TIME ZONE z.zone)::date AS day, ${DIMS}, ${SUBS_KEY}, advertiser_id, sub2, sub3, sub4, sub5, ${sums}
      FROM t CROSS JOIN report_zones z
     GROUP BY z.zone, t.kind, day, ${DIMS}, advertiser_id, sub2, sub3, sub4, sub5
     ORDER BY z.zone, t.kind, day, offer_id, affiliate_id, event, 10, ${CURRENCIES}
    ON CONFLICT (zone, kind, day, offer_id, affiliate_id, event, subs_key, ${CURRENCIES}) DO UPDATE SET ${addExcluded('report_days')}),
  o AS (
    INSERT INTO report_offer_days (zone, kind, day, offer_id, event, ${CURRENCIES}, advertiser_id, ${MEASURES.join(', ')})
    SELECT z.zone, t.kind, (t.at AT TIME ZONE z.zone)::date AS day, offer_id, event, ${CURRENCIES}, advertiser_id, ${sums}
      FROM t CROSS JOIN report_zones z
     GROUP BY z.zone, t.kind, day, offer_id, event, ${CURRENCIES}, advertiser_id
     ORDER BY z.zone, t.kind, day, offer_id, event, ${CURRENCIES}
    ON CONFLICT (zone, kind, day, offer_id, event, ${CURRENCIES}) DO UPDATE SET ${addExcluded('report_offer_days')})
  INSERT INTO report_quarters (kind, bucket, ${DIMS}, subs_key, advertiser_id, sub2, sub3, sub4, sub5, ${MEASURES.join(', ')})
  SELECT kind, ${QUARTER('at')} AS bucket, ${DIMS}, ${SUBS_KEY}, advertiser_id, sub2, sub3, sub4, sub5, ${sums}
    FROM t
   GROUP BY kind, bucket, ${DIMS}, advertiser_id, sub2, sub3, sub4, sub5
   ORDER BY kind, bucket, offer_id, affiliate_id, event, 9, ${CURRENCIES}
  ON CONFLICT (kind, bucket, offer_id, affiliate_id, event, subs_key, ${CURRENCIES}) DO UPDATE SET ${addExcluded('report_quarters')}`;
}

export const CLICK_TALLY = `0::smallint AS kind, advertiser_id, offer_id, affiliate_id, ''::varchar AS event, sub2, sub3, sub4, sub5,
  ''::varchar AS currency, ''::varchar AS payout_currency, ''::varchar AS revenue_currency, 1::bigint AS clicks, 0::bigint AS approved,
  0::bigint AS pending, 0::bigint AS rejected, 0::numeric AS amount, 0::numeric AS revenue, 0::numeric AS payout, 0::numeric AS pending_payout`;

/**
 * Click rows and their counts in one statement: only the clicks this statement inserted are
 * counted (a click written before, by a job run again, is skipped by both), so a crash before
 * the commit loses neither and a retry doubles neither. $1: the clicks as JSON.
 */
export const insertClicksCounted = statement(
  'reports-insert-clicks',
  tallyUpsert(
    `SELECT ins.created_at AS at, ${CLICK_TALLY.replace('advertiser_id', 'COALESCE(o.advertiser_id, 0) AS advertiser_id')}
       FROM ins LEFT JOIN offers o ON o.id = ins.offer_id`,
    `ins AS (
      INSERT INTO clicks (id, offer_id, affiliate_id, sub1, sub2, sub3, sub4, sub5, ip, user_agent, created_at)
      SELECT r."clickId", r."offerId", r."affiliateId", r.subs->>'sub1', r.subs->>'sub2', r.subs->>'sub3', r.subs->>'sub4', r.subs->>'sub5',
             r.ip, r."userAgent", r."clickedAt"
        FROM json_to_recordset($1::json) AS r("clickId" varchar, "offerId" int, "affiliateId" int, subs json, ip varchar, "userAgent" varchar, "clickedAt" timestamptz)
       WHERE ${SHARED_REPORTS_LOCK}
       ORDER BY 1
      ON CONFLICT (id) DO NOTHING
      RETURNING offer_id, affiliate_id, sub2, sub3, sub4, sub5, created_at)`,
  ),
);

/** What a conversion's change moves, at its recorded time (kind 1) and at its click's time (kind 2). */
const upsertDeltas = statement(
  'reports-upsert-conversion-deltas',
  tallyUpsert(`
    SELECT k.kind, CASE k.kind WHEN 1 THEN r."createdAt" ELSE r."clickedAt" END AS at, r."advertiserId" AS advertiser_id, r."offerId" AS offer_id,
           r."affiliateId" AS affiliate_id, r.event, r.sub2, r.sub3, r.sub4, r.sub5, r.currency, r."payoutCurrency" AS payout_currency,
           r."revenueCurrency" AS revenue_currency, 0::bigint AS clicks, r.approved::bigint, r.pending::bigint, r.rejected::bigint, r.amount,
           r.revenue, r.payout, r."pendingPayout" AS pending_payout
      FROM json_to_recordset($1::json) AS r("createdAt" timestamptz, "clickedAt" timestamptz, "advertiserId" int, "offerId" int, "affiliateId" int,
           event varchar, sub2 varchar, sub3 varchar, sub4 varchar, sub5 varchar, currency varchar, "payoutCurrency" varchar, "revenueCurrency" varchar,
           approved int, pending int, rejected int, amount numeric, revenue numeric, payout numeric, "pendingPayout" numeric)
     CROSS JOIN (VALUES (1::smallint), (2::smallint)) AS k(kind)
     WHERE ${SHARED_REPORTS_LOCK}`),
);

/** Moves the report rows of these conversion changes, inside the caller's transaction. */
export async function moveReportRows(db: Queryable, deltas: ReportDelta[]): Promise<void> {
  if (deltas.length > 0) await upsertDeltas(db, [JSON.stringify(deltas)]);
}

// ——— Reading ———

const kindOf = (countBy: CountBy) => (countBy === 'click' ? 2 : 1);

class Params {
  values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** Filters on a source's columns (the event filter narrows conversions; clicks have none and stay). */
function filterSql(filters: ReportFilters, p: Params, clickRows: string): string[] {
  const where: string[] = [];
  for (const id of ['advertiser_id', 'offer_id', 'affiliate_id'] as const) {
    const list = filters[id];
    if (list) where.push(`${id} = ANY(${p.add(list)}::int[])`);
  }
  if (filters.event !== undefined) where.push(`(${clickRows} OR event = ${p.add(filters.event)})`);
  for (const sub of ['sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const) {
    const value = filters[sub];
    if (value !== undefined) where.push(`${sub} = ${p.add(value)}`);
  }
  return where;
}

const ROW_COLUMNS = `advertiser_id, offer_id, affiliate_id, event, sub2, sub3, sub4, sub5, ${CURRENCIES}, ${MEASURES.join(', ')}`;

/** The rows a report sums, as one relation: `at` (timestamptz) or `day` (date), the dimensions and the measures. */
function sourceSql(source: ReportSource, query: ReportQuery, p: Params): string {
  const kind = kindOf(query.countBy);
  if (source === 'raw') {
    const from = p.add(query.from);
    const to = p.add(query.to);
    const at = query.countBy === 'click' ? 'clicked_at' : 'created_at';
    const clickWhere = [`c.created_at >= ${from}`, `c.created_at < ${to}`, ...filterSql({ ...query.filters, event: undefined }, p, 'true')];
    const conversionWhere = [`${at} >= ${from}`, `${at} < ${to}`, ...filterSql(query.filters, p, 'false')];
    return `SELECT c.created_at AS at, COALESCE(o.advertiser_id, 0) AS advertiser_id, c.offer_id, c.affiliate_id, ''::varchar AS event,
                   c.sub1, c.sub2, c.sub3, c.sub4, c.sub5, ''::varchar AS currency, ''::varchar AS payout_currency, ''::varchar AS revenue_currency,
                   1::bigint AS clicks, 0::bigint AS approved, 0::bigint AS pending, 0::bigint AS rejected, 0::numeric AS amount, 0::numeric AS revenue,
                   0::numeric AS payout, 0::numeric AS pending_payout
              FROM clicks c LEFT JOIN offers o ON o.id = c.offer_id WHERE ${clickWhere.join(' AND ')}
            UNION ALL
            SELECT ${at} AS at, advertiser_id, offer_id, affiliate_id, event, sub1, sub2, sub3, sub4, sub5, currency, payout_currency,
                   COALESCE(revenue_currency, '') AS revenue_currency, 0, (status = 'approved')::int, (status = 'pending')::int, (status = 'rejected')::int,
                   CASE WHEN status = 'approved' THEN amount ELSE 0 END, CASE WHEN status = 'approved' THEN COALESCE(revenue, 0) ELSE 0 END,
                   CASE WHEN status = 'approved' THEN payout ELSE 0 END, CASE WHEN status = 'pending' THEN payout ELSE 0 END
              FROM conversions WHERE ${conversionWhere.join(' AND ')}`;
  }
  if (source === 'quarters') {
    const where = [`kind IN (0, ${kind})`, `bucket >= ${p.add(query.from)}`, `bucket < ${p.add(query.to)}`, ...filterSql(query.filters, p, 'kind = 0')];
    return `SELECT bucket AS at, NULL::varchar AS sub1, ${ROW_COLUMNS} FROM report_quarters WHERE ${where.join(' AND ')}`;
  }
  const zone = p.add(query.tz);
  const range = [`day >= ${p.add(localDate(query.from, query.tz))}::date`, `day < ${p.add(localDate(query.to, query.tz))}::date`];
  if (source === 'days') {
    const where = [`zone = ${zone}`, `kind IN (0, ${kind})`, ...range, ...filterSql(query.filters, p, 'kind = 0')];
    return `SELECT day, NULL::varchar AS sub1, ${ROW_COLUMNS} FROM report_days WHERE ${where.join(' AND ')}`;
  }
  const where = [`zone = ${zone}`, `kind IN (0, ${kind})`, ...range, ...filterSql(query.filters, p, 'kind = 0')];
  return `SELECT day, NULL::int AS affiliate_id, NULL::varchar AS sub1, NULL::varchar AS sub2, NULL::varchar AS sub3, NULL::varchar AS sub4,
                 NULL::varchar AS sub5, advertiser_id, offer_id, event, ${CURRENCIES}, ${MEASURES.join(', ')}
            FROM report_offer_days WHERE ${where.join(' AND ')}`;
}

/** A group key's SQL over a source's time column (`at` or `day`), in the zone. */
function keySql(group: ReportGroup, dayRows: boolean, tz: () => string): string {
  if (!(['hour', 'day', 'week', 'month'] as string[]).includes(group)) return group;
  const local = dayRows ? '' : `(at AT TIME ZONE ${tz()}::text)`;
  switch (group) {
    case 'hour':
      // The UTC instant the zone's hour begins: the same local hour twice at a DST change stays two.
      return `at - (${local} - date_trunc('hour', ${local}))`;
    case 'day':
      return dayRows ? 'day::text' : `${local}::date::text`;
    case 'week':
      return dayRows ? `date_trunc('week', day)::date::text` : `date_trunc('week', ${local})::date::text`;
    case 'month':
      return dayRows ? `date_trunc('month', day)::date::text` : `date_trunc('month', ${local})::date::text`;
    default:
      return group;
  }
}

export interface PlannedReport {
  source: ReportSource;
  /** The rows of every group (ordered by its keys), one per currency triple. */
  rows: { text: string; values: unknown[] };
  /** The same rows summed without groups: the totals. */
  totals: { text: string; values: unknown[] };
}

/** The SQL of a report over its cheapest source. */
export function planReportSql(query: ReportQuery, source: ReportSource): PlannedReport {
  const build = (groups: ReportGroup[]) => {
    const p = new Params();
    const from = sourceSql(source, query, p);
    const dayRows = source === 'days' || source === 'offer_days';
    let tz: string | undefined;
    const keys = groups.map((g, i) => `${keySql(g, dayRows, () => (tz ??= p.add(query.tz)))} AS g${i}`);
    const groupBy = [...groups.map((_, i) => `g${i}`), CURRENCIES].join(', ');
    const order = [...groups.map((_, i) => `g${i} NULLS FIRST`), CURRENCIES].join(', ');
    return {
      text: `SELECT ${[...keys, CURRENCIES, sums].join(', ')} FROM (${from}) s GROUP BY ${groupBy} ORDER BY ${order}`,
      values: p.values,
    };
  };
  return { source, rows: build(query.groupBy), totals: build([]) };
}

const zoneKept = statement<{ kept: boolean }>(
  'reports-zone-kept',
  `SELECT EXISTS (SELECT 1 FROM report_zones WHERE zone = $1 AND ready_at IS NOT NULL) AS kept`,
);

/** Which rows answer this report: day rows only for a zone in report_zones. */
export async function sourceFor(db: Queryable, query: ReportQuery): Promise<ReportSource> {
  const [{ kept }] = await zoneKept(db, [query.tz]);
  return reportSource(query, kept);
}

export type ReportRow = Record<string, string | number | null> & ReportMeasures;

interface RawSummed {
  [key: string]: unknown;
}

/** Folds summed rows (one per currency triple, in key order) into one answer row per group. */
export class RowFolder {
  private current: { keys: unknown[]; sum: MeasureSum } | null = null;
  constructor(
    private readonly groups: ReportGroup[],
    private readonly tz: string,
  ) {}

  /** Adds a summed row; returns the previous group's answer row when this one starts another group. */
  add(raw: RawSummed): ReportRow | null {
    const keys = this.groups.map((_, i) => raw[`g${i}`]);
    let done: ReportRow | null = null;
    if (this.current && !sameKeys(this.current.keys, keys)) done = this.flush();
    if (!this.current) this.current = { keys, sum: new MeasureSum() };
    this.current.sum.add(raw as unknown as Omit<SummedRow, 'keys'>);
    return done;
  }

  /** The last group's answer row, if any. */
  flush(): ReportRow | null {
    if (!this.current) return null;
    const { keys, sum } = this.current;
    this.current = null;
    const row: Record<string, unknown> = {};
    this.groups.forEach((g, i) => {
      row[g] = reportKeyValue(g, keys[i], this.tz);
    });
    return { ...row, ...sum.measures() } as ReportRow;
  }
}

const sameKeys = (a: unknown[], b: unknown[]) =>
  a.every((v, i) => (v instanceof Date && b[i] instanceof Date ? v.getTime() === (b[i] as Date).getTime() : v === b[i]));

/** The totals of a planned report. */
export async function reportTotals(db: Queryable, plan: PlannedReport): Promise<ReportMeasures> {
  const sum = new MeasureSum();
  for (const row of (await db.query(plan.totals)).rows) sum.add(row);
  return sum.measures();
}

/** How long a report's transaction may wait on its reader (a client that stopped reading a CSV) before Postgres ends it. */
const IDLE_LIMIT = `SET LOCAL idle_in_transaction_session_timeout = '60s'`;

export interface ReportPage {
  /** Groups skipped (the pages before). */
  skip: number;
  /** Groups handed over at most; `more` says whether another followed. */
  take: number;
}

/**
 * Reads a planned report: its totals and its rows (in key order, folded one per group), both from
 * one snapshot (the rows' transaction imports the totals' snapshot, so the totals are those of the
 * rows even while traffic flows). Totals and rows are read at once on two connections, or the
 * totals first (`totalsFirst`: a CSV's header needs their currencies). The rows come through a
 * server-side cursor: memory stays flat for a million rows, and a handler that throws (a client
 * gone) ends the read.
 */
export async function readReport(
  pool: PgPool,
  plan: PlannedReport,
  groups: ReportGroup[],
  tz: string,
  page: ReportPage,
  handlers: { totals: (totals: ReportMeasures) => void | Promise<void>; row: (row: ReportRow) => void | Promise<void>; totalsFirst?: boolean },
): Promise<{ more: boolean }> {
  const clients: PgClient[] = [];
  try {
    const lead = await pool.connect();
    clients.push(lead);
    await lead.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await lead.query(IDLE_LIMIT);
    const [{ snapshot }] = (await lead.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot')).rows;
    const reader = await pool.connect();
    clients.push(reader);
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // Not a parameter: SET takes none. The value is Postgres' own (e.g. 00000003-0000001B-1).
    await reader.query(`SET TRANSACTION SNAPSHOT '${snapshot.replace(/[^0-9A-Fa-f-]/g, '')}'`);
    await reader.query(IDLE_LIMIT);
    const totals = async () => {
      const sum = new MeasureSum();
      for (const row of (await lead.query(plan.totals)).rows) sum.add(row);
      await handlers.totals(sum.measures());
    };
    const rows = () => cursorRows(reader, plan, groups, tz, page, handlers.row);
    if (handlers.totalsFirst) {
      await totals();
      return await rows();
    }
    const [, read] = await Promise.all([totals(), rows()]);
    return read;
  } finally {
    for (const client of clients) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
  }
}

/** A planned report's rows (a page of them) and totals, collected. */
export async function collectReport(
  pool: PgPool,
  plan: PlannedReport,
  groups: ReportGroup[],
  tz: string,
  page: ReportPage = { skip: 0, take: Number.MAX_SAFE_INTEGER },
) {
  const rows: ReportRow[] = [];
  let totals: ReportMeasures | undefined;
  const { more } = await readReport(pool, plan, groups, tz, page, {
    totals: (t) => {
      totals = t;
    },
    row: (row) => void rows.push(row),
  });
  return { rows, totals: totals!, more };
}

async function cursorRows(
  client: PgClient,
  plan: PlannedReport,
  groups: ReportGroup[],
  tz: string,
  { skip, take }: ReportPage,
  each: (row: ReportRow) => void | Promise<void>,
): Promise<{ more: boolean }> {
  await client.query({ text: `DECLARE report_rows NO SCROLL CURSOR FOR ${plan.rows.text}`, values: plan.rows.values });
  const folder = new RowFolder(groups, tz);
  let seen = 0;
  let handed = 0;
  const hand = async (row: ReportRow | null): Promise<boolean> => {
    if (!row) return true;
    if (seen++ < skip) return true;
    if (handed >= take) return false;
    handed++;
    await each(row);
    return true;
  };
  for (;;) {
    const { rows } = await client.query('FETCH 2000 FROM report_rows');
    for (const raw of rows) if (!(await hand(folder.add(raw)))) return { more: true };
    if (rows.length < 2000) break;
  }
  return { more: !(await hand(folder.flush())) };
}

let zoneNames: Promise<Set<string>> | undefined;
/** Whether Postgres knows this zone name, exactly (its names, as pg_timezone_names lists them). */
export async function zoneKnown(db: Queryable, tz: string): Promise<boolean> {
  zoneNames ??= db.query<{ name: string }>('SELECT name FROM pg_timezone_names').then(
    ({ rows }) => new Set(rows.map((r) => r.name)),
    (error: unknown) => {
      zoneNames = undefined;
      throw error;
    },
  );
  return (await zoneNames).has(tz);
}
