import { REPORT_CSV_MAX_ROWS } from '@trackway/domain';
import { INCOMPLETE_TRAILER, buildReport, buildSummary, writeReportCsv } from '../reporting';
import { Report, ReportParams, ReportSummary, ReportSummaryParams, reportRequest, summaryRequest } from '../report-representations';
import { resource, route } from '../route';

export default resource(
  {
    tag: 'Reports',
    base: '/v1/reports',
    description: 'Clicks, conversions, revenue, payout and profit by time, advertiser, offer, affiliate, event and sub ID, exact (docs/reports.md).',
  },
  [
    route({
      method: 'get',
      path: '/v1/reports',
      summary: 'Run a report',
      description:
        'Rows grouped by group_by over [from, to) in tz, sorted by their keys, with totals. Money is over approved conversions and never summed across currencies. format=csv streams every row (up to 1,000,000) with a header line.',
      query: ReportParams,
      answer: { status: 200, description: 'A page of rows (next_cursor for the rest), or the CSV.', schema: Report },
      stream: {
        contentType: 'text/csv',
        description: `With format=csv: a header line, then one line per row (up to ${REPORT_CSV_MAX_ROWS.toLocaleString('en')}); money columns per currency (payout_usd). The trailer ${INCOMPLETE_TRAILER} says whether rows were cut.`,
        when: (params) => params.format === 'csv',
        write: ({ query, deps }, res) => writeReportCsv(deps, reportRequest(query).query, res),
      },
      handler: ({ query, deps }) => buildReport(deps, reportRequest(query)),
    }),
    route({
      method: 'get',
      path: '/v1/reports/summary',
      summary: 'Today, yesterday, this month, last month',
      description: "The totals of four periods of the zone in one answer (a dashboard's first row).",
      query: ReportSummaryParams,
      answer: { status: 200, description: 'The four periods.', schema: ReportSummary },
      handler: ({ query, deps }) => buildSummary(deps, summaryRequest(query)),
    }),
  ],
);
