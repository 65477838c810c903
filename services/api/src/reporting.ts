import { once } from 'node:events';
import {
  type CountBy,
  REPORT_CSV_MAX_ROWS,
  type ReportFilters,
  type ReportMeasures,
  type ReportQuery,
  csvCurrencies,
  csvHeader,
  csvRow,
  localDate,
  summaryPeriods,
  zonedDateTime,
} from '@trackway/domain';
import { type ReportRow, planReportSql, reportTotals, sourceFor, streamReportRows } from '@trackway/ledger';
import type { Response } from 'express';
import type { ApiDeps } from './deps';
import { encodeReportCursor } from './report-representations';

// Reports as the API and the console answer them: the SQL is @trackway/ledger's, the rules the
// domain's; this file only runs them and shapes the answer.

type Deps = Pick<ApiDeps, 'pool'>;

/** One JSON page of a report, with its totals (of every row, not only the page's). */
export async function buildReport(deps: Deps, { query, limit, offset }: { query: ReportQuery; limit: number; offset: number }) {
  const plan = planReportSql(query, await sourceFor(deps.pool, query));
  const rows: ReportRow[] = [];
  const [totals, { more }] = await Promise.all([
    reportTotals(deps.pool, plan),
    streamReportRows(deps.pool, plan, query.groupBy, query.tz, { skip: offset, take: limit }, (row) => void rows.push(row)),
  ]);
  return {
    from: zonedDateTime(query.from, query.tz),
    to: zonedDateTime(query.to, query.tz),
    tz: query.tz,
    count_by: query.countBy,
    group_by: query.groupBy,
    rows,
    totals,
    incomplete_results: more,
    next_cursor: more ? encodeReportCursor(offset + limit) : null,
  };
}

/** Today, yesterday, this month and last month in the zone, each with its totals. */
export async function buildSummary(deps: Deps, { tz, countBy, filters }: { tz: string; countBy: CountBy; filters: ReportFilters }, now = new Date()) {
  const periods = summaryPeriods(now, tz);
  const entries = await Promise.all(
    Object.entries(periods).map(async ([name, { from, to }]) => {
      const query: ReportQuery = { from, to, tz, groupBy: [], filters, countBy };
      const totals: ReportMeasures = await reportTotals(deps.pool, planReportSql(query, await sourceFor(deps.pool, query)));
      return [name, { from: zonedDateTime(from, tz), to: zonedDateTime(to, tz), ...totals }] as const;
    }),
  );
  const by = Object.fromEntries(entries) as Record<keyof typeof periods, { from: string; to: string } & ReportMeasures>;
  return { tz, count_by: countBy, ...by };
}

export const INCOMPLETE_TRAILER = 'Trackway-Incomplete-Results';

/**
 * A report as CSV, streamed: a header line (a column per currency for each money field, the
 * currencies of the totals), then every row up to REPORT_CSV_MAX_ROWS. Whether the rows were cut is
 * known only at the end: the trailer Trackway-Incomplete-Results says it (true or false).
 */
export async function writeReportCsv(deps: Deps, query: ReportQuery, res: Response): Promise<void> {
  const plan = planReportSql(query, await sourceFor(deps.pool, query));
  const totals = await reportTotals(deps.pool, plan);
  const currencies = csvCurrencies(totals);
  const name = `report-${localDate(query.from, query.tz)}-${localDate(new Date(query.to.getTime() - 1), query.tz)}.csv`;
  res.status(200);
  res.setHeader('Content-Type', 'text/csv; charset=utf-8');
  res.setHeader('Content-Disposition', `attachment; filename="${name}"`);
  res.setHeader('Trailer', INCOMPLETE_TRAILER);
  res.write(csvHeader(query.groupBy, currencies));
  let chunk = '';
  const flush = async () => {
    if (chunk === '') return;
    const ok = res.write(chunk);
    chunk = '';
    if (!ok) await once(res, 'drain');
  };
  try {
    const { more } = await streamReportRows(deps.pool, plan, query.groupBy, query.tz, { skip: 0, take: REPORT_CSV_MAX_ROWS }, async (row) => {
      chunk += csvRow(query.groupBy, row, currencies);
      if (chunk.length > 64 * 1024) await flush();
    });
    await flush();
    res.addTrailers({ [INCOMPLETE_TRAILER]: String(more) });
    res.end();
  } catch (error) {
    // The status line is sent: the client sees a cut body (no final chunk), never a complete-looking file.
    res.destroy(error as Error);
  }
}
