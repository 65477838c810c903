import { type PgPool, inTransaction } from '@trackway/db';
import {
  CLICK_MEASURES,
  CURRENCIES,
  DAY_ROLLUPS,
  DIMS,
  LOCK_KEY,
  MEASURES,
  NO_JIT,
  QUARTER,
  SUBS_KEY,
  rollupDaysFromQuarters,
  sums,
  zoneKnown,
} from './reports';

// reports:rebuild (docs/reports.md): report rows recomputed from the raw rows, one UTC day per
// transaction, each under the reports lock taken alone (writers wait for it, then add what they
// committed after it: nothing is counted twice or missed), the blocks of days that hold a day
// moved by the day's difference in the same transaction. Clicks not folded yet are left to the
// folder. Click counts before the oldest click still stored are kept (history dropped by retention
// keeps its numbers); conversions are never dropped.

const DAY_MS = 86_400_000;
/**
 * The reports lock, taken alone, and JIT off for the rest of the transaction: a day's statements
 * are estimated large, and compiling each cost more than it saved (the quick bench's rebuild of
 * 92 days: 27–31 s with JIT, 18.5 s without).
 */
const EXCLUSIVE_LOCK = `SELECT pg_advisory_xact_lock(${LOCK_KEY}); ${NO_JIT}`;

/**
 * The quarters of [$1, $2) from the raw rows ($3: where stored clicks begin; before it, click rows
 * are kept). Clicks the folder has not reached (report_xid at or past its mark) are its to count.
 */
const REBUILD_QUARTERS = [
  `DELETE FROM report_quarters WHERE bucket >= $1::timestamptz AND bucket < $2::timestamptz AND (kind <> 0 OR bucket >= $3::timestamptz)`,
  `INSERT INTO report_quarters (kind, bucket, ${DIMS}, subs_key, advertiser_id, sub2, sub3, sub4, sub5, ${MEASURES.join(', ')})
   SELECT kind, ${QUARTER('at')} AS bucket, ${DIMS}, ${SUBS_KEY}, advertiser_id, sub2, sub3, sub4, sub5, ${sums}
     FROM (SELECT 0::smallint AS kind, c.created_at AS at, COALESCE(o.advertiser_id, 0) AS advertiser_id, c.offer_id, c.affiliate_id, '' AS event,
                  c.sub2, c.sub3, c.sub4, c.sub5, '' AS currency, '' AS payout_currency, '' AS revenue_currency, ${CLICK_MEASURES}
             FROM clicks c LEFT JOIN offers o ON o.id = c.offer_id
            WHERE c.created_at >= greatest($1::timestamptz, $3::timestamptz) AND c.created_at < $2
              AND (c.report_xid IS NULL OR c.report_xid < (SELECT xid FROM report_click_folds WHERE id = 1))
           UNION ALL
           SELECT k.kind, CASE k.kind WHEN 1 THEN v.created_at ELSE v.clicked_at END, v.advertiser_id, v.offer_id, v.affiliate_id, v.event,
                  v.sub2, v.sub3, v.sub4, v.sub5, v.currency, v.payout_currency, COALESCE(v.revenue_currency, ''), 0,
                  (v.status = 'approved')::int, (v.status = 'pending')::int, (v.status = 'rejected')::int,
                  CASE WHEN v.status = 'approved' THEN v.amount ELSE 0 END, CASE WHEN v.status = 'approved' THEN COALESCE(v.revenue, 0) ELSE 0 END,
                  CASE WHEN v.status = 'approved' THEN v.payout ELSE 0 END, CASE WHEN v.status = 'pending' THEN v.payout ELSE 0 END
             FROM (VALUES (1::smallint), (2::smallint)) AS k(kind)
             JOIN conversions v ON (k.kind = 1 AND v.created_at >= $1::timestamptz AND v.created_at < $2::timestamptz) OR (k.kind = 2 AND v.clicked_at >= $1::timestamptz AND v.clicked_at < $2::timestamptz)) t
    GROUP BY kind, bucket, ${DIMS}, advertiser_id, sub2, sub3, sub4, sub5
    ORDER BY kind, bucket, offer_id, affiliate_id, event, 9, ${CURRENCIES}`,
];

/**
 * A zone's day rows of the local days $2..$3 (inclusive), then summed again from the quarters whose
 * local date is one of them ($1: the zone; $4, $5: the UTC day being rebuilt, to find those
 * quarters by index). By local date, not by converting local midnights to instants: where midnight
 * happens twice (Atlantic/Azores, Cuba), that conversion would pick one of the two.
 */
const ZONE_TABLES = ['report_days', ...DAY_ROLLUPS.map((r) => r.table)];
const SUM_DAYS = [
  `DELETE FROM report_days WHERE zone = $1 AND day BETWEEN $2::date AND $3::date`,
  `INSERT INTO report_days (zone, kind, day, ${DIMS}, subs_key, advertiser_id, sub2, sub3, sub4, sub5, ${MEASURES.join(', ')})
   SELECT $1::text, kind, (bucket AT TIME ZONE $1::text)::date AS day, ${DIMS}, subs_key, advertiser_id, sub2, sub3, sub4, sub5, ${sums}
     FROM report_quarters WHERE bucket >= $4::timestamptz - interval '2 days' AND bucket < $5::timestamptz + interval '2 days' AND (bucket AT TIME ZONE $1::text)::date BETWEEN $2::date AND $3::date
    GROUP BY kind, day, ${DIMS}, subs_key, advertiser_id, sub2, sub3, sub4, sub5`,
  ...DAY_ROLLUPS.flatMap(rollupDaysFromQuarters),
];

/** How many parameters a statement takes ($1…$n): Postgres refuses more. */
const parameters = (text: string) => Math.max(0, ...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));

export interface RebuildOptions {
  /** From (inclusive) and to (exclusive); default: every raw row's time, to the day after now. Whole UTC days are rebuilt. */
  from?: Date;
  to?: Date;
  /** Called after each day, with the day's start and how many days are done of how many. */
  progress?: (day: Date, done: number, of: number) => void;
}

const dayFloor = (at: Date) => new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS);

/** Recomputes every report row of the range from the raw rows; answers the days rebuilt. */
export async function rebuildReports(pool: PgPool, options: RebuildOptions = {}): Promise<{ from: Date; to: Date; days: number }> {
  const { rows } = await pool.query<{ first: Date | null; clicks_from: Date | null }>(
    `SELECT LEAST((SELECT min(created_at) FROM clicks), (SELECT min(created_at) FROM conversions), (SELECT min(clicked_at) FROM conversions)) AS first,
            (SELECT ${QUARTER('min(created_at)')} FROM clicks) AS clicks_from`,
  );
  const clicksFrom = rows[0].clicks_from ?? new Date(8.64e15);
  const from = dayFloor(options.from ?? rows[0].first ?? new Date());
  const to = dayFloor(new Date((options.to ?? new Date(Date.now() + DAY_MS)).getTime() + DAY_MS - 1));
  const of = Math.max(0, Math.round((to.getTime() - from.getTime()) / DAY_MS));
  for (let i = 0; i < of; i++) {
    const a = new Date(from.getTime() + i * DAY_MS);
    const b = new Date(a.getTime() + DAY_MS);
    await inTransaction(pool, async (client) => {
      await client.query(EXCLUSIVE_LOCK);
      for (const text of REBUILD_QUARTERS) await client.query(text, [a, b, clicksFrom]);
      const zones = await client.query<{ zone: string }>('SELECT zone FROM report_zones ORDER BY zone');
      for (const { zone } of zones.rows) await rebuildZoneDays(client, zone, a, b);
    });
    options.progress?.(a, i + 1, of);
  }
  return { from, to, days: of };
}

/** A zone's day rows for the local days that [a, b) touches, from the quarters. */
async function rebuildZoneDays(client: Parameters<Parameters<typeof inTransaction>[1]>[0], zone: string, a: Date, b: Date): Promise<void> {
  const {
    rows: [span],
  } = await client.query<{ first: string; last: string }>(
    `SELECT ($2::timestamptz AT TIME ZONE $1::text)::date::text AS first, (($3::timestamptz - interval '1 millisecond') AT TIME ZONE $1::text)::date::text AS last`,
    [zone, a, b],
  );
  const values = [zone, span.first, span.last, a, b];
  for (const text of SUM_DAYS) await client.query(text, values.slice(0, parameters(text)));
}

/**
 * Adds a zone to report_zones: writers keep its day rows from now on, then its past is built from
 * the quarters one UTC day at a time, and reports read its day rows once that is done (ready_at).
 */
export async function addReportZone(pool: PgPool, zone: string, progress?: RebuildOptions['progress']): Promise<void> {
  // Every writer computes the zone's days once it is listed: a name Postgres does not know would fail them all.
  if (!(await zoneKnown(pool, zone))) throw new Error(`${zone} is not a time zone this database knows (pg_timezone_names; names are case-sensitive)`);
  await inTransaction(pool, async (client) => {
    await client.query(EXCLUSIVE_LOCK);
    await client.query(`INSERT INTO report_zones (zone) VALUES ($1) ON CONFLICT (zone) DO NOTHING`, [zone]);
    // Too small for autovacuum to analyze: writers' plans need its statistics (a few zones, not a thousand).
    await client.query('ANALYZE report_zones');
  });
  // Up to tomorrow at least: a writer that was waiting for the lock when the zone was listed read the
  // list before it, and counts its clicks of today under the zone only through this backfill.
  const { rows } = await pool.query<{ first: Date | null; last: Date }>(
    `SELECT COALESCE(min(bucket), now()) AS first, greatest(max(bucket), now() + interval '1 day') AS last FROM report_quarters`,
  );
  if (rows[0].first) {
    const from = dayFloor(rows[0].first);
    const days = Math.round((dayFloor(rows[0].last).getTime() - from.getTime()) / DAY_MS) + 1;
    for (let i = 0; i < days; i++) {
      const a = new Date(from.getTime() + i * DAY_MS);
      await inTransaction(pool, async (client) => {
        await client.query(EXCLUSIVE_LOCK);
        await rebuildZoneDays(client, zone, a, new Date(a.getTime() + DAY_MS));
      });
      progress?.(a, i + 1, days);
    }
  }
  await pool.query(`UPDATE report_zones SET ready_at = now() WHERE zone = $1 AND ready_at IS NULL`, [zone]);
}

/** Removes a zone and its day rows (reports in it read the quarters). */
export async function dropReportZone(pool: PgPool, zone: string): Promise<boolean> {
  return inTransaction(pool, async (client) => {
    await client.query(EXCLUSIVE_LOCK);
    const { rowCount } = await client.query(`DELETE FROM report_zones WHERE zone = $1`, [zone]);
    await client.query('ANALYZE report_zones');
    for (const table of ZONE_TABLES) await client.query(`DELETE FROM ${table} WHERE zone = $1`, [zone]);
    return (rowCount ?? 0) > 0;
  });
}
