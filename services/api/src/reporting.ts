import {
  type CountBy,
  type CsvCurrencies,
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
import { badRequest } from '@trackway/http';
import { type PlannedReport, type ReportRow, collectReport, planReportSql, readReport, reportTotals, sourceFor, zoneKnown } from '@trackway/ledger';
import type { Response } from 'express';
import type { ApiDeps } from './deps';
import { encodeReportCursor } from './report-representations';

// Reports as the API and the console answer them: the SQL is @trackway/ledger's, the rules the
// domain's; this file only runs them and shapes the answer.

type Deps = Pick<ApiDeps, 'pool' | 'logger'>;

/** The report's SQL over its cheapest rows; a 400 for a zone Postgres does not know (Node's list and Postgres' may differ). */
async function planned(deps: Deps, query: ReportQuery): Promise<PlannedReport> {
  if (!(await zoneKnown(deps.pool, query.tz)))
    throw badRequest({ tz: 'is not a time zone this database knows: IANA names, exactly as written there (Europe/Berlin, Asia/Kolkata, UTC)' });
  return planReportSql(query, await sourceFor(deps.pool, query));
}

/** One JSON page of a report, with its totals (of every row, not only the page's, from the same snapshot). */
export async function buildReport(deps: Deps, { query, limit, offset }: { query: ReportQuery; limit: number; offset: number }) {
  const { rows, totals, more } = await collectReport(deps.pool, await planned(deps, query), query.groupBy, query.tz, { skip: offset, take: limit });
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
      const totals: ReportMeasures = await reportTotals(deps.pool, await planned(deps, query));
      return [name, { from: zonedDateTime(from, tz), to: zonedDateTime(to, tz), ...totals }] as const;
    }),
  );
  const by = Object.fromEntries(entries) as Record<keyof typeof periods, { from: string; to: string } & ReportMeasures>;
  return { tz, count_by: countBy, ...by };
}

export const INCOMPLETE_TRAILER = 'Trackway-Incomplete-Results';

class ClientGone extends Error {}

/** Until the response can take more, or is closed (a client gone never drains it). */
const drainedOrClosed = (res: Response) =>
  new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });

/**
 * A report as CSV, streamed: a header line (a column per currency for each money field, the
 * currencies of the totals, read in the rows' snapshot), then every row up to REPORT_CSV_MAX_ROWS.
 * Whether the rows were cut is known only at the end: the trailer Trackway-Incomplete-Results says
 * it. A client that goes away ends the read at once (its database connections go back to the pool).
 */
export async function writeReportCsv(deps: Deps, query: ReportQuery, res: Response): Promise<void> {
  const plan = await planned(deps, query);
  const name = `report-${localDate(query.from, query.tz)}-${localDate(new Date(query.to.getTime() - 1), query.tz)}.csv`;
  let currencies: CsvCurrencies | undefined;
  let chunk = '';
  const write = async (text: string, force = false) => {
    chunk += text;
    if (chunk.length < 64 * 1024 && !force) return;
    if (res.destroyed) throw new ClientGone();
    const ok = res.write(chunk);
    chunk = '';
    if (!ok) await drainedOrClosed(res);
    if (res.destroyed) throw new ClientGone();
  };
  try {
    const { more } = await readReport(
      deps.pool,
      plan,
      query.groupBy,
      query.tz,
      { skip: 0, take: REPORT_CSV_MAX_ROWS },
      {
        totalsFirst: true,
        totals: async (totals) => {
          currencies = csvCurrencies(totals);
          res.status(200);
          res.setHeader('Content-Type', 'text/csv; charset=utf-8');
          res.setHeader('Content-Disposition', `attachment; filename="${name}"`);
          res.setHeader('Trailer', INCOMPLETE_TRAILER);
          await write(csvHeader(query.groupBy, currencies), true);
        },
        row: (row: ReportRow) => write(csvRow(query.groupBy, row, currencies!)),
      },
    );
    await write('', true);
    res.addTrailers({ [INCOMPLETE_TRAILER]: String(more) });
    res.end();
  } catch (error) {
    if (!res.headersSent) throw error; // the error envelope, as for any route
    if (!(error instanceof ClientGone)) deps.logger.error({ err: error }, 'report CSV cut off by an error after its header was sent');
    // The status line is sent: the client sees a cut body (no final chunk), never a complete-looking file.
    res.destroy(error as Error);
  }
}
