import { type PgClient, type PgPool, type Queryable, inTransaction, statement } from '@trackway/db';
import {
  type CountBy,
  MeasureSum,
  type ReportMove,
  type ReportFilters,
  type ReportGroup,
  type ReportMeasures,
  type ReportQuery,
  type ReportSource,
  REPORT_SPANS,
  type SummedRow,
  dayBlocks,
  localDate,
  reportKeyValue,
  reportSource,
  totalsSource,
} from '@trackway/domain';

// Report rows (docs/reports.md): report_quarters (15 minutes, UTC) and the day rows of each zone
// in report_zones (report_totals, report_offer_days, report_affiliate_days,
// report_offer_affiliate_days, report_days), each keyed in the order its reports read them.
// Conversions move them in the transaction that changes them (moveReportRows); clicks are added by
// a folder, many at once, off the click writer's path (foldClicks), and reports add the clicks not
// folded yet when they read. Every writer takes the reports lock shared; reports:rebuild takes it alone.

/** A 15-minute bucket's start (UTC). */
export const QUARTER = (at: string) => `date_bin('15 minutes', ${at}, timestamptz '2000-01-01 00:00:00+00')`;
/** The key of a row's sub2..sub5 (NULL and '' apart). */
export const SUBS_KEY = `md5(json_build_array(sub2, sub3, sub4, sub5)::text)::uuid`;
/** report_affiliate_days' key of sub2: '' for none, '~' || sub2 otherwise (NULL and '' apart, in sub2's order). */
export const SUB2_KEY = `COALESCE('~' || sub2, '')`;
/** This schema's reports lock (tests keep a schema each in one database). */
export const LOCK_KEY = `hashtext(current_schema() || ' trackway reports')`;
export const SHARED_REPORTS_LOCK = `(SELECT pg_advisory_xact_lock_shared(${LOCK_KEY})::text) IS NOT NULL`;
/** The click folder's own lock: one folder at a time. */
const FOLD_LOCK_KEY = `hashtext(current_schema() || ' trackway click fold')`;

export const MEASURES = ['clicks', 'approved', 'pending', 'rejected', 'amount', 'revenue', 'payout', 'pending_payout'] as const;
export const CURRENCIES = 'currency, payout_currency, revenue_currency';
export const DIMS = `offer_id, affiliate_id, event, ${CURRENCIES}`;
export const sums = MEASURES.map((m) => `sum(${m}) AS ${m}`).join(', ');
const addExcluded = (table: string) => MEASURES.map((m) => `${m} = ${table}.${m} + excluded.${m}`).join(', ');

/** The first day of the block of `span` days that holds `day` (blocks start on day numbers since 1970-01-01 that `span` divides). */
export const blockStart = (day: string, span: string) => `(${day} - (((${day} - date '1970-01-01') % ${span} + ${span}) % ${span}))`;

/**
 * A zone's day rows: the table, its key after zone (and span) and day, in key order, and the
 * columns carried beside it. A column's value is computed from a tally row (`COLUMN_OF`).
 */
export interface DayRollup {
  table: string;
  source: ReportSource;
  key: string[];
  carried: string[];
  /** Whether it also keeps blocks of days (REPORT_SPANS; a span column), or single days only. */
  blocks: boolean;
  /** The kind leads the key (after zone, span, day): a report reads its two kinds of rows as two ranges. */
  kindFirst?: boolean;
}

const CK = [...CURRENCIES.split(', '), 'kind', 'event'];
export const DAY_ROLLUPS: DayRollup[] = [
  { table: 'report_totals', source: 'totals', key: CK, carried: [], blocks: false },
  { table: 'report_offer_days', source: 'offer_days', key: ['offer_id', ...CK], carried: ['advertiser_id'], blocks: true },
  {
    table: 'report_affiliate_days',
    source: 'affiliate_days',
    key: ['kind', 'affiliate_id', 'sub2_key', ...CURRENCIES.split(', ')],
    carried: ['sub2'],
    blocks: true,
    kindFirst: true,
  },
  { table: 'report_offer_affiliate_days', source: 'offer_affiliate_days', key: ['offer_id', 'affiliate_id', ...CK], carried: ['advertiser_id'], blocks: false },
];
const COLUMN_OF: Record<string, string> = { sub2_key: SUB2_KEY };
/** Spans as a VALUES list: every one, or the blocks only. */
const spanValues = (spans: readonly number[]) => spans.map((span, i) => (i === 0 ? `(${span}::smallint)` : `(${span})`)).join(', ');
const EVERY_SPAN = spanValues([...REPORT_SPANS].reverse());
const BLOCK_SPANS = spanValues([...REPORT_SPANS].reverse().filter((span) => span > 1));

/**
 * The statement's part that adds tally rows (`rel`: zone, day, at, the dimensions, measures) to a
 * zone's day rows of one kind, in key order (concurrent writers wait for each other instead of
 * deadlocking). `spans`: the VALUES list of spans to write.
 */
function rollupInsert(r: DayRollup, rel: string, spans: string, sign: '' | '-' = ''): string {
  const head = r.blocks ? ['zone', 'span', 'day'] : ['zone', 'day'];
  const dayExpr = r.blocks ? blockStart('day', 's.span') : 'day';
  const exprs = [...head.map((c) => (c === 'span' ? 's.span' : c === 'day' ? dayExpr : c)), ...r.key.map((c) => COLUMN_OF[c] ?? c)];
  const columns = [...head, ...r.key, ...r.carried];
  const positions = exprs.map((_, i) => i + 1).join(', ');
  return `INSERT INTO ${r.table} (${columns.join(', ')}, ${MEASURES.join(', ')})
    SELECT ${[...exprs, ...r.carried].join(', ')}, ${MEASURES.map((m) => `${sign}sum(${m}) AS ${m}`).join(', ')}
      FROM ${rel}${r.blocks ? ` CROSS JOIN (VALUES ${spans}) AS s(span)` : ''}
     GROUP BY ${[positions, ...r.carried].join(', ')}
     ORDER BY ${positions}
    ON CONFLICT (${[...head, ...r.key].join(', ')}) DO UPDATE SET ${addExcluded(r.table)}`;
}

/**
 * The statement that adds tally rows (`t`: kind, at, advertiser_id, offer_id, affiliate_id, event,
 * sub2..sub5, currencies, measures) to every report table, each in key order (the quarters first,
 * then each zone's day rows, table by table).
 */
export function tallyUpsert(source: string, { answerClicks = false } = {}): string {
  const zoned = `(SELECT z.zone, (t.at AT TIME ZONE z.zone)::date AS day, t.* FROM t CROSS JOIN report_zones z) tz`;
  const rollups = DAY_ROLLUPS.map((r, i) => `r${i} AS (${rollupInsert(r, zoned, EVERY_SPAN)})`);
  // Summed per quarter and every dimension once (every zone's day is whole quarters): each table
  // then sums these rows, far fewer than a batch's (conversions of one offer and affiliate in the
  // same quarter are one row), instead of every tally row again.
  const keys = `kind, at, advertiser_id, offer_id, affiliate_id, event, sub2, sub3, sub4, sub5, ${CURRENCIES}`;
  return `WITH raw AS MATERIALIZED (${source}),
  t AS MATERIALIZED (
    SELECT kind, ${QUARTER('at')} AS at, advertiser_id, offer_id, affiliate_id, event, sub2, sub3, sub4, sub5, ${CURRENCIES}, ${sums}
      FROM raw GROUP BY ${keys.replace(', at,', `, ${QUARTER('at')},`)}),
  d AS (
    INSERT INTO report_days (zone, kind, day, ${DIMS}, subs_key, advertiser_id, sub2, sub3, sub4, sub5, ${MEASURES.join(', ')})
    SELECT z.zone, t.kind, (t.at AT TIME ZONE z.zone)::date AS day, ${DIMS}, ${SUBS_KEY}, advertiser_id, sub2, sub3, sub4, sub5, ${sums}
      FROM t CROSS JOIN report_zones z
     GROUP BY z.zone, t.kind, day, ${DIMS}, advertiser_id, sub2, sub3, sub4, sub5
     ORDER BY z.zone, t.kind, day, offer_id, affiliate_id, event, 10, ${CURRENCIES}
    ON CONFLICT (zone, kind, day, offer_id, affiliate_id, event, subs_key, ${CURRENCIES}) DO UPDATE SET ${addExcluded('report_days')}),
  ${rollups.join(',\n  ')}${answerClicks ? ',\n  q AS (' : ''}
  INSERT INTO report_quarters (kind, bucket, ${DIMS}, subs_key, advertiser_id, sub2, sub3, sub4, sub5, ${MEASURES.join(', ')})
  SELECT kind, ${QUARTER('at')} AS bucket, ${DIMS}, ${SUBS_KEY}, advertiser_id, sub2, sub3, sub4, sub5, ${sums}
    FROM t
   GROUP BY kind, bucket, ${DIMS}, advertiser_id, sub2, sub3, sub4, sub5
   ORDER BY kind, bucket, offer_id, affiliate_id, event, 9, ${CURRENCIES}
  ON CONFLICT (kind, bucket, offer_id, affiliate_id, event, subs_key, ${CURRENCIES}) DO UPDATE SET ${addExcluded('report_quarters')}${
    // The clicks counted, from the same rows (no second read of them).
    answerClicks ? `)\n  SELECT coalesce(sum(clicks), 0)::text AS clicks FROM t` : ''
  }`;
}

/**
 * Statements that rebuild one rollup's single days $2..$3 (inclusive) of the zone $1 from the
 * quarters ($4, $5: the UTC day rebuilt, to find those quarters by index), moving the blocks of
 * days that hold them by the difference in the same transaction: the old days' rows taken out,
 * the new ones added, and blocks left with nothing removed. So blocks always equal their days.
 */
export function rollupDaysFromQuarters(r: DayRollup): string[] {
  const days = `zone = $1 AND day BETWEEN $2::date AND $3::date`;
  const fresh = `(SELECT $1::text AS zone, (bucket AT TIME ZONE $1::text)::date AS day, q.* FROM report_quarters q
                WHERE bucket >= $4::timestamptz - interval '2 days' AND bucket < $5::timestamptz + interval '2 days'
                  AND (bucket AT TIME ZONE $1::text)::date BETWEEN $2::date AND $3::date) tz`;
  if (!r.blocks) return [`DELETE FROM ${r.table} WHERE ${days}`, rollupInsert(r, fresh, '(1::smallint)')];
  const nothing = MEASURES.map((m) => `${m} = 0`).join(' AND ');
  return [
    `WITH old AS (DELETE FROM ${r.table} WHERE ${days} AND span = 1 RETURNING *) ${rollupInsert(r, 'old', BLOCK_SPANS, '-')}`,
    `WITH new AS (${rollupInsert(r, fresh, '(1::smallint)')} RETURNING *) ${rollupInsert(r, 'new', BLOCK_SPANS)}`,
    `DELETE FROM ${r.table} WHERE zone = $1 AND span > 1 AND day BETWEEN ${blockStart('$2::date', '64')} AND $3::date AND ${nothing}`,
  ];
}

/** What a click adds to its rows' measures. */
export const CLICK_MEASURES = `1::bigint AS clicks, 0::bigint AS approved, 0::bigint AS pending, 0::bigint AS rejected, 0::numeric AS amount,
  0::numeric AS revenue, 0::numeric AS payout, 0::numeric AS pending_payout`;
export const CLICK_TALLY = `0::smallint AS kind, advertiser_id, offer_id, affiliate_id, ''::varchar AS event, sub2, sub3, sub4, sub5,
  ''::varchar AS currency, ''::varchar AS payout_currency, ''::varchar AS revenue_currency, ${CLICK_MEASURES}`;

/** The transaction writing a row, as report_xid holds it. */
export const CURRENT_XID = `(SELECT pg_current_xact_id()::text::bigint)`;

const clickInsert = (xid: string) =>
  `INSERT INTO clicks (id, offer_id, affiliate_id, sub1, sub2, sub3, sub4, sub5, ip, user_agent, created_at, report_xid)
   SELECT r."clickId", r."offerId", r."affiliateId", r.subs->>'sub1', r.subs->>'sub2', r.subs->>'sub3', r.subs->>'sub4', r.subs->>'sub5',
          r.ip, r."userAgent", r."clickedAt", ${xid}
     FROM json_to_recordset($1::json) AS r("clickId" varchar, "offerId" int, "affiliateId" int, subs json, ip varchar, "userAgent" varchar, "clickedAt" timestamptz)
    ORDER BY 1
   ON CONFLICT (created_at, id) DO NOTHING`;

/**
 * Click rows, many per statement ($1: the clicks as JSON); a click written before (a job run
 * again) is skipped. Each row records its transaction (report_xid): foldClicks counts it once that
 * transaction has ended, so a crash before the commit loses nothing and a retry doubles nothing.
 */
export const insertClicks = statement('reports-insert-clicks', clickInsert(CURRENT_XID));
/** The same without report_xid: the row counts as counted already. Only for the benchmark's baseline (reports would miss these clicks). */
export const insertClicksUncounted = statement('reports-insert-clicks-uncounted', clickInsert('NULL'));

/** Clicks of the transactions [$1, $2) (by report_xid), as tally rows; answers how many it counted. */
const foldStatement = statement<{ clicks: string }>(
  'reports-fold-clicks',
  tallyUpsert(
    `SELECT c.created_at AS at, ${CLICK_TALLY.replace('advertiser_id', 'COALESCE(o.advertiser_id, 0) AS advertiser_id')}
       FROM clicks c LEFT JOIN offers o ON o.id = c.offer_id
      WHERE c.report_xid >= $1::bigint AND c.report_xid < $2::bigint AND ${SHARED_REPORTS_LOCK}`,
    { answerClicks: true },
  ),
);

/**
 * Adds to the report rows the clicks of every transaction that has ended since the last fold, and
 * moves the fold's mark past them, in one transaction: a click is counted once, whatever crashes.
 * Answers how many clicks it folded and whether clicks wait past the new mark (a transaction still
 * open holds them back: fold again later), or null when another folder was at work.
 */
export async function foldClicks(pool: PgPool): Promise<{ clicks: number; behind: boolean } | null> {
  return inTransaction(pool, async (client) => {
    const [{ mine }] = (await client.query<{ mine: boolean }>(`SELECT pg_try_advisory_xact_lock(${FOLD_LOCK_KEY}) AS mine`)).rows;
    if (!mine) return null;
    // Clicks are found by report_xid's BRIN index alone (statistics or not), never by reading them all.
    await client.query(`SELECT pg_advisory_xact_lock_shared(${LOCK_KEY}); ${NO_JIT}; SET LOCAL enable_seqscan = off`);
    // Every transaction below the snapshot's xmin has ended: its clicks are all there is of it.
    const [{ since, upto }] = (
      await client.query<{ since: string; upto: string }>(
        `SELECT xid::text AS since, pg_snapshot_xmin(pg_current_snapshot())::text AS upto FROM report_click_folds WHERE id = 1`,
      )
    ).rows;
    if (BigInt(upto) < BigInt(since))
      throw new Error(
        `transaction ids are below the click fold's mark (${upto} < ${since}): this database was restored into another PostgreSQL cluster; docs/reports.md says how to recount`,
      );
    const behind = async (mark: string) =>
      (await client.query<{ behind: boolean }>(`SELECT EXISTS (SELECT 1 FROM clicks WHERE report_xid >= $1::bigint) AS behind`, [mark])).rows[0].behind;
    if (upto === since) return { clicks: 0, behind: await behind(upto) };
    const [{ clicks }] = await foldStatement(client, [since, upto]);
    await client.query(`UPDATE report_click_folds SET xid = $1::bigint, folded_at = now() WHERE id = 1`, [upto]);
    return { clicks: Number(clicks), behind: await behind(upto) };
  });
}

/** What conversions' changes move (reportMoves: each kind at its quarter, summed). */
const upsertMoves = statement(
  'reports-upsert-conversion-moves',
  tallyUpsert(`
    SELECT r.kind, r.at, r."advertiserId" AS advertiser_id, r."offerId" AS offer_id, r."affiliateId" AS affiliate_id, r.event, r.sub2, r.sub3, r.sub4,
           r.sub5, r.currency, r."payoutCurrency" AS payout_currency, r."revenueCurrency" AS revenue_currency, 0::bigint AS clicks, r.approved::bigint,
           r.pending::bigint, r.rejected::bigint, r.amount, r.revenue, r.payout, r."pendingPayout" AS pending_payout
      FROM json_to_recordset($1::json) AS r(kind smallint, at timestamptz, "advertiserId" int, "offerId" int, "affiliateId" int, event varchar,
           sub2 varchar, sub3 varchar, sub4 varchar, sub5 varchar, currency varchar, "payoutCurrency" varchar, "revenueCurrency" varchar,
           approved int, pending int, rejected int, amount numeric, revenue numeric, payout numeric, "pendingPayout" numeric)
     WHERE ${SHARED_REPORTS_LOCK}`),
);

/**
 * The writers' statements touch a few rows, but Postgres estimates them as large (a CROSS JOIN
 * with the zones and the spans over a JSON parameter), and with JIT on (the default) it would spend
 * some 200 ms compiling each one. Off for the rest of the writer's transaction.
 */
export const NO_JIT = 'SET LOCAL jit = off';

/** Moves the report rows by these moves of conversions' changes, inside the caller's transaction. */
export async function moveReportRows(db: Queryable, moves: ReportMove[]): Promise<void> {
  if (moves.length === 0) return;
  await db.query(NO_JIT);
  await upsertMoves(db, [JSON.stringify(moves)]);
}

// ——— Reading ———

const kindOf = (countBy: CountBy) => (countBy === 'click' ? 2 : 1);

/** A parameter standing for the fold's mark, read in the report's own snapshot (readReport). */
export const FOLD_MARK = Symbol('report_click_folds.xid');

class Params {
  values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** Filters on a branch's columns (the event filter narrows conversions; clicks have none and stay). */
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

const MEASURE_LIST = MEASURES.join(', ');

/** Raw clicks (and conversions) of [from, to) as rows of every column a branch reads. */
function rawSql(query: ReportQuery, p: Params): string {
  const from = p.add(query.from);
  const to = p.add(query.to);
  const at = query.countBy === 'click' ? 'clicked_at' : 'created_at';
  const clickWhere = [`c.created_at >= ${from}`, `c.created_at < ${to}`, ...filterSql({ ...query.filters, event: undefined }, p, 'true')];
  const conversionWhere = [`${at} >= ${from}`, `${at} < ${to}`, ...filterSql(query.filters, p, 'false')];
  return `SELECT c.created_at AS at, COALESCE(o.advertiser_id, 0) AS advertiser_id, c.offer_id, c.affiliate_id, ''::varchar AS event,
                 c.sub1, c.sub2, c.sub3, c.sub4, c.sub5, ''::varchar AS currency, ''::varchar AS payout_currency, ''::varchar AS revenue_currency,
                 ${CLICK_MEASURES}
            FROM clicks c LEFT JOIN offers o ON o.id = c.offer_id WHERE ${clickWhere.join(' AND ')}
          UNION ALL
          SELECT ${at} AS at, advertiser_id, offer_id, affiliate_id, event, sub1, sub2, sub3, sub4, sub5, currency, payout_currency,
                 COALESCE(revenue_currency, '') AS revenue_currency, 0, (status = 'approved')::int, (status = 'pending')::int, (status = 'rejected')::int,
                 CASE WHEN status = 'approved' THEN amount ELSE 0 END, CASE WHEN status = 'approved' THEN COALESCE(revenue, 0) ELSE 0 END,
                 CASE WHEN status = 'approved' THEN payout ELSE 0 END, CASE WHEN status = 'pending' THEN payout ELSE 0 END
            FROM conversions WHERE ${conversionWhere.join(' AND ')}`;
}

/**
 * The clicks not folded yet (report_xid at or past the fold's mark), as rows of every column a
 * branch reads: what the report rows lack. A few (the folder runs every second or so), found by
 * the BRIN index on report_xid alone (materialized: nothing else in the statement steers the
 * plan to another index or a scan of every click).
 */
function unfoldedSql(p: Params, zone: string): string {
  // The report tables' own types, typmods included: a UNION ALL whose branches differ in a column's type is summed whole, not merged in order.
  const money = MEASURES.slice(4)
    .map((m) => `0::numeric(24,4) AS ${m}`)
    .join(', ');
  return `unfolded AS MATERIALIZED (
    SELECT c.created_at AS at, (c.created_at AT TIME ZONE ${zone}::text)::date AS day, COALESCE(o.advertiser_id, 0) AS advertiser_id,
           c.offer_id, c.affiliate_id, ''::varchar(64) AS event, c.sub2, c.sub3, c.sub4, c.sub5, ${SUB2_KEY.replace('sub2', 'c.sub2')}::varchar(256) AS sub2_key,
           ''::varchar(3) AS currency, ''::varchar(3) AS payout_currency, ''::varchar(3) AS revenue_currency,
           1::bigint AS clicks, 0::bigint AS approved, 0::bigint AS pending, 0::bigint AS rejected, ${money}
      FROM clicks c LEFT JOIN offers o ON o.id = c.offer_id WHERE c.report_xid >= ${p.add(FOLD_MARK)}::bigint)`;
}

const TIME_GROUPS: readonly string[] = ['hour', 'day', 'week', 'month'];

/** A group key's SQL: over `at` (timestamptz) or `day` (a zone's date). */
function keySql(group: ReportGroup, dayRows: boolean, tz: () => string): string {
  if (!TIME_GROUPS.includes(group)) return group;
  const local = dayRows ? '' : `(at AT TIME ZONE ${tz()}::text)`;
  switch (group) {
    case 'hour':
      // The UTC instant the zone's hour begins: the same local hour twice at a DST change stays two.
      return `at - (${local} - date_trunc('hour', ${local}))`;
    case 'day':
      return dayRows ? 'day' : `${local}::date`;
    case 'week':
      return dayRows ? `date_trunc('week', day)::date` : `date_trunc('week', ${local})::date`;
    default:
      return dayRows ? `date_trunc('month', day)::date` : `date_trunc('month', ${local})::date`;
  }
}

export interface PlannedReport {
  source: ReportSource;
  totalsSource: ReportSource;
  /** Whether the rows stream out of day rows' indexes in group order (then they are summed as they come, never hashed whole first). */
  streams: boolean;
  /** The rows of every group (ordered by its keys), one per currency triple. */
  rows: { text: string; values: unknown[] };
  /** The same rows summed without groups: the totals. */
  totals: { text: string; values: unknown[] };
}

/**
 * The SQL of a report's rows (or its totals: no groups) over a source: the source's rows as
 * branches of a UNION ALL (a range of days, or the blocks that tile it; plus the clicks not folded
 * yet), each ordered by the group keys, merged and summed per group in that order. Day rows come
 * out of their index already in order: the first page is read without the rest.
 */
function buildSql(query: ReportQuery, source: ReportSource, groups: ReportGroup[]) {
  const p = new Params();
  const kind = kindOf(query.countBy);
  const dayRows = source !== 'quarters' && source !== 'raw';
  let tz: string | undefined;
  const zone = () => (tz ??= p.add(query.tz));
  // Per group: the column it is ordered and grouped by (k), and the one shown when they differ (v).
  const rollup = DAY_ROLLUPS.find((r) => r.source === source);
  const keys = groups.map((g, i) => {
    const sorted = source === 'affiliate_days' && g === 'sub2' ? 'sub2_key' : keySql(g, dayRows, zone);
    // sub2 is one value per sub2_key: min() shows it without grouping by it (the index's order stays the plan's).
    return {
      k: `${sorted} AS k${i}`,
      v: sorted === 'sub2_key' ? `sub2 AS v${i}` : null,
      shown: sorted === 'sub2_key' ? `min(v${i})` : TIME_GROUPS.includes(g) && g !== 'hour' ? `k${i}::text` : `k${i}`,
    };
  });
  const nulls = dayRows && source !== 'days' ? '' : ' NULLS FIRST';
  const order = [...groups.map((_, i) => `k${i}${nulls}`), CURRENCIES].join(', ');
  const columns = [...keys.flatMap((k) => (k.v ? [k.k, k.v] : [k.k])), CURRENCIES, MEASURE_LIST].join(', ');
  const branch = (rel: string, where: string[]) =>
    `(SELECT ${columns} FROM ${rel}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}${groups.length ? ` ORDER BY ${order}` : ''})`;

  const branches: string[] = [];
  if (source === 'raw') {
    branches.push(branch(`(${rawSql(query, p)}) r`, []));
  } else if (source === 'quarters') {
    const where = [`kind IN (0, ${kind})`, `bucket >= ${p.add(query.from)}`, `bucket < ${p.add(query.to)}`, ...filterSql(query.filters, p, 'kind = 0')];
    branches.push(branch(`(SELECT bucket AS at, * FROM report_quarters) q`, where));
  } else {
    const fromDay = localDate(query.from, query.tz);
    const toDay = localDate(query.to, query.tz);
    const table = rollup?.table ?? 'report_days';
    // Rows of the clicks (kind 0) and of the count_by (kind 1 or 2): as a filter, or two ranges where the kind leads the key.
    const kinds = rollup?.kindFirst ? ['kind = 0', `kind = ${kind}`] : [rollup ? `kind <> ${3 - kind}` : `kind IN (0, ${kind})`];
    const add = (where: string[]) => {
      for (const k of kinds) branches.push(branch(table, [`zone = ${zone()}`, ...where, k, ...filterSql(query.filters, p, 'kind = 0')]));
    };
    const timeGrouped = groups.some((g) => TIME_GROUPS.includes(g));
    if (rollup?.blocks && !timeGrouped) {
      for (const block of dayBlocks(fromDay, toDay)) add([`span = ${block.span}`, `day = ${p.add(block.day)}::date`]);
    } else {
      add([...(rollup?.blocks ? ['span = 1'] : []), `day >= ${p.add(fromDay)}::date`, `day < ${p.add(toDay)}::date`]);
    }
  }
  let unfolded = '';
  if (source !== 'raw') {
    unfolded = `WITH ${unfoldedSql(p, zone())} `;
    const where = [`at >= ${p.add(query.from)}`, `at < ${p.add(query.to)}`, ...filterSql({ ...query.filters, event: undefined }, p, 'true')];
    branches.push(branch('unfolded', where));
  }
  const groupBy = [...keys.map((_, i) => `k${i}`), CURRENCIES].join(', ');
  const shown = keys.map((k, i) => `${k.shown} AS g${i}`);
  return {
    text: `${unfolded}SELECT ${[...shown, CURRENCIES, sums].join(', ')} FROM (${branches.join('\n UNION ALL ')}) s GROUP BY ${groupBy}${groups.length ? ` ORDER BY ${order}` : ''}`,
    values: p.values,
  };
}

/** The SQL of a report over its source (its totals over the cheapest rows that hold its filters). */
export function planReportSql(query: ReportQuery, source: ReportSource): PlannedReport {
  const totals = totalsSource(query, source);
  const streams = source !== 'quarters' && source !== 'raw' && query.groupBy.length > 0;
  return { source, totalsSource: totals, streams, rows: buildSql(query, source, query.groupBy), totals: buildSql(query, totals, []) };
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
    const row = sum.measures() as ReportRow;
    // The keys first, as the answer shows them, then the measures.
    const shown: Record<string, unknown> = {};
    for (let i = 0; i < this.groups.length; i++) shown[this.groups[i]] = reportKeyValue(this.groups[i], keys[i], this.tz);
    return Object.assign(shown, row) as ReportRow;
  }
}

const sameKeys = (a: unknown[], b: unknown[]) =>
  a.every((v, i) => (v instanceof Date && b[i] instanceof Date ? v.getTime() === (b[i] as Date).getTime() : v === b[i]));

/** A planned statement with the fold's mark in place of FOLD_MARK. */
const withMark = (sql: { text: string; values: unknown[] }, mark: string) => ({ text: sql.text, values: sql.values.map((v) => (v === FOLD_MARK ? mark : v)) });

/** The fold's mark in the transaction's snapshot (clicks at or past it are read raw). */
async function foldMark(client: Queryable): Promise<string> {
  const { rows } = await client.query<{ xid: string }>(`SELECT xid::text AS xid FROM report_click_folds WHERE id = 1`);
  return rows[0]?.xid ?? '0';
}

/**
 * How a report reads: its rows come out of indexes in order (the report rows', the BRIN of the
 * clicks not folded yet), on one core. Postgres' estimates would pick otherwise at times: a BRIN
 * whose column has no statistics yet looks dearer than reading every click, and JIT compiles a
 * plan whose estimate looks large (hundreds of milliseconds) for reading a few thousand rows.
 */
const READ_SETTINGS = [
  'SET LOCAL jit = off',
  'SET LOCAL enable_seqscan = off',
  'SET LOCAL max_parallel_workers_per_gather = 0',
  `SET LOCAL idle_in_transaction_session_timeout = '60s'`,
].join('; ');

/** Reports read in one snapshot, with READ_SETTINGS (or more: rowSettings). */
async function beginReading(client: PgClient, settings = READ_SETTINGS): Promise<void> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  await client.query(settings);
}

/** The settings of the connection that reads a report's rows. Day rows are summed in their order as they stream (a page needs only its groups), never hashed whole first. */
const rowSettings = (plan: PlannedReport) => (plan.streams ? `${READ_SETTINGS}; SET LOCAL enable_hashagg = off` : READ_SETTINGS);

/** `read` in a reading transaction of its own (the fold's mark of its snapshot handed in), rolled back after. */
async function reading<T>(pool: PgPool, settings: string, read: (client: PgClient, mark: string) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await beginReading(client, settings);
    return await read(client, await foldMark(client));
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

/** The totals of a planned report. */
export function reportTotals(pool: PgPool, plan: PlannedReport): Promise<ReportMeasures> {
  return reading(pool, READ_SETTINGS, async (client, mark) => {
    const sum = new MeasureSum();
    for (const row of (await client.query(withMark(plan.totals, mark))).rows) sum.add(row);
    return sum.measures();
  });
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of a planned report's rows or totals, read the way a report reads
 * them: the same settings, snapshot and mark, and the rows as the cursor they are read through
 * (planned for a fast start; run to the end here, where a report stops at its page).
 */
export function explainReport(pool: PgPool, plan: PlannedReport, part: 'rows' | 'totals'): Promise<string[]> {
  return reading(pool, part === 'rows' ? rowSettings(plan) : READ_SETTINGS, async (client, mark) => {
    const { text, values } = withMark(plan[part], mark);
    const statement = part === 'rows' ? `DECLARE report_rows NO SCROLL CURSOR FOR ${text}` : text;
    const { rows } = await client.query<{ 'QUERY PLAN': string }>({ text: `EXPLAIN (ANALYZE, BUFFERS) ${statement}`, values });
    return rows.map((r) => r['QUERY PLAN']);
  });
}

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
    await beginReading(lead);
    const mark = await foldMark(lead);
    const [{ snapshot }] = (await lead.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot')).rows;
    const reader = await pool.connect();
    clients.push(reader);
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // Not a parameter: SET takes none. The value is Postgres' own (e.g. 00000003-0000001B-1).
    await reader.query(`SET TRANSACTION SNAPSHOT '${snapshot.replace(/[^0-9A-Fa-f-]/g, '')}'`);
    await reader.query(rowSettings(plan));
    const totals = async () => {
      const sum = new MeasureSum();
      for (const row of (await lead.query(withMark(plan.totals, mark))).rows) sum.add(row);
      await handlers.totals(sum.measures());
    };
    const rows = () => cursorRows(reader, withMark(plan.rows, mark), groups, tz, page, handlers.row);
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
  sql: { text: string; values: unknown[] },
  groups: ReportGroup[],
  tz: string,
  { skip, take }: ReportPage,
  each: (row: ReportRow) => void | Promise<void>,
): Promise<{ more: boolean }> {
  await client.query({ text: `DECLARE report_rows NO SCROLL CURSOR FOR ${sql.text}`, values: sql.values });
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
  // As many rows as the groups still wanted take (a group is a row per currency triple: clicks
  // alone, and each currency they converted in), from the rows per group seen so far: a page of
  // a thousand groups reads about its own rows, not the next page's.
  let fetched = 0;
  for (;;) {
    const perGroup = seen > 0 ? fetched / seen : 2;
    const wanted = skip + take + 1 - seen;
    const batch = Math.min(5_000, Math.max(100, Math.ceil(wanted * perGroup * 1.05) + 1));
    const { rows } = await client.query(`FETCH ${batch} FROM report_rows`);
    fetched += rows.length;
    for (const raw of rows) if (!(await hand(folder.add(raw)))) return { more: true };
    if (rows.length < batch) break;
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
