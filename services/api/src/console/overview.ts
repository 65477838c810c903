import {
  REPORT_JSON_MAX_ROWS,
  type ReportMeasures,
  type ReportQuery,
  isLocalMidnight,
  localDate,
  startOfLocalDate,
  zoneOffsetMinutes,
  zonedDateTime,
} from '@trackway/domain';
import type { ApiDeps } from '../deps';
import { buildReport, buildSummary } from '../reporting';
import { type Html, html, jsonScript, metric, money } from './html';
import { type FormValues, addDays } from './params';

/** At most this long, a range is charted per hour; longer, per day. */
const HOURLY_MAX_MS = 2 * 86_400_000 + 3_600_000; // two days, and the hour a DST change adds

const HOUR_MS = 3_600_000;

/** The totals of a range (or a period), each number a metric named `<prefix>.<field>[.<currency>]`. */
export function totalsTiles(prefix: string, totals: ReportMeasures): Html {
  const tile = (label: string, value: Html) => html`<div class="tile"><div class="label">${label}</div><div class="value">${value}</div></div>`;
  return html`<div class="tiles">
${tile('Clicks', metric(`${prefix}.clicks`, totals.clicks))}
${tile('Conversions', metric(`${prefix}.conversions`, totals.conversions))}
${tile('Approved', metric(`${prefix}.approved`, totals.approved))}
${tile('Pending', metric(`${prefix}.pending`, totals.pending))}
${tile('Rejected', metric(`${prefix}.rejected`, totals.rejected))}
${tile('CR %', metric(`${prefix}.cr`, totals.cr, totals.cr === null ? '—' : totals.cr.toFixed(2)))}
${tile('Revenue', money(`${prefix}.revenue`, totals.revenue))}
${tile('Payout', money(`${prefix}.payout`, totals.payout))}
${tile('Profit', money(`${prefix}.profit`, totals.profit))}
${tile('Sales', money(`${prefix}.amount`, totals.amount))}
${tile('Pending payout', money(`${prefix}.pending_payout`, totals.pending_payout))}
${tile('EPC', money(`${prefix}.epc`, totals.epc))}
</div>`;
}

/** The buckets of the range (every one, also those without a row): local days, or local hours. */
function buckets(query: ReportQuery, unit: 'day' | 'hour'): number[] {
  const out: number[] = [];
  if (unit === 'day') {
    for (let day = localDate(query.from, query.tz); ; day = addDays(day, 1)) {
      const at = startOfLocalDate(day, query.tz).getTime();
      if (at >= query.to.getTime()) break;
      out.push(at);
    }
    return out;
  }
  // The local hour `from` falls in, then every hour after (the zone's offset may be a half hour).
  const minutes = (((zoneOffsetMinutes(query.from, query.tz) % 60) + 60) % 60) + query.from.getUTCMinutes();
  for (let at = query.from.getTime() - (minutes % 60) * 60_000; at < query.to.getTime(); at += HOUR_MS) out.push(at);
  return out;
}

/** The range in words: whole days as dates, the last one included; otherwise its instants in the zone. */
function rangeTitle({ from, to, tz }: ReportQuery): string {
  if (!isLocalMidnight(from, tz) || !isLocalMidnight(to, tz)) return `${zonedDateTime(from, tz)} to ${zonedDateTime(to, tz)} (exclusive)`;
  const first = localDate(from, tz);
  const last = localDate(new Date(to.getTime() - 1), tz);
  const days = Math.round((to.getTime() - from.getTime()) / 86_400_000);
  return `${first === last ? first : `${first} to ${last}`} · ${days} ${days === 1 ? 'day' : 'days'} · ${tz}`;
}

type Row = Awaited<ReturnType<typeof buildReport>>['rows'][number];

/** The chart's data for console.js: time (s), then clicks, conversions, and revenue and payout per currency. */
function chartData(query: ReportQuery, unit: 'day' | 'hour', rows: Row[], totals: ReportMeasures) {
  const instant = (row: Row) => (unit === 'day' ? startOfLocalDate(String(row.day), query.tz).getTime() : Date.parse(String(row.hour)));
  const byTime = new Map(rows.map((row) => [instant(row), row]));
  const x = [...new Set([...buckets(query, unit), ...byTime.keys()])].sort((a, b) => a - b);
  const currencies = [...new Set([...Object.keys(totals.revenue), ...Object.keys(totals.payout)])].sort();
  const series = [
    { label: 'Clicks', scale: 'count', values: x.map((t) => byTime.get(t)?.clicks ?? 0) },
    { label: 'Conversions', scale: 'count', values: x.map((t) => byTime.get(t)?.conversions ?? 0) },
    ...currencies.flatMap((currency) =>
      (['revenue', 'payout'] as const)
        .filter((field) => currency in totals[field])
        .map((field) => ({
          label: `${field === 'revenue' ? 'Revenue' : 'Payout'} ${currency}`,
          scale: 'money',
          // For drawing only: the page's numbers are the API's strings.
          values: x.map((t) => Number(byTime.get(t)?.[field][currency] ?? 0)),
        })),
    ),
  ];
  return { tz: query.tz, unit, x: x.map((t) => t / 1000), series };
}

export async function overviewBody(deps: Pick<ApiDeps, 'pool' | 'logger'>, query: ReportQuery, form: FormValues): Promise<Html> {
  const unit = query.to.getTime() - query.from.getTime() <= HOURLY_MAX_MS ? 'hour' : 'day';
  const { advertiser_id, offer_id, affiliate_id } = query.filters;
  const summaryFilters = Object.fromEntries(Object.entries({ advertiser_id, offer_id, affiliate_id }).filter(([, v]) => v !== undefined));
  const [report, summary] = await Promise.all([
    buildReport(deps, { query: { ...query, groupBy: [unit] }, limit: REPORT_JSON_MAX_ROWS, offset: 0 }),
    buildSummary(deps, { tz: query.tz, countBy: query.countBy, filters: summaryFilters }),
  ]);
  const periods = [
    ['today', 'Today'],
    ['yesterday', 'Yesterday'],
    ['this_month', 'This month'],
    ['last_month', 'Last month'],
  ] as const;
  const subs = (['event', 'sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const).filter((key) => form[key] !== undefined);
  return html`
<section aria-labelledby="range-title">
<h2 id="range-title">${rangeTitle(query)}</h2>
${totalsTiles('totals', report.totals)}
</section>
<section aria-labelledby="chart-title">
<h2 id="chart-title">Per ${unit}</h2>
<div id="chart" class="chart" role="img" aria-label="Clicks, conversions, revenue and payout per ${unit}"></div>
<noscript><p class="none">The chart needs JavaScript; the table below has the same numbers.</p></noscript>
${jsonScript('chart-data', chartData(query, unit, report.rows, report.totals))}
<div class="scroll"><table class="data">
<thead><tr><th>${unit === 'day' ? 'Day' : 'Hour'}</th><th>Clicks</th><th>Conversions</th><th>Approved</th><th>Pending</th><th>Rejected</th><th>Revenue</th><th>Payout</th><th>Profit</th></tr></thead>
<tbody>${
    report.rows.length === 0
      ? html`<tr><td colspan="9" class="none">Nothing in this range.</td></tr>`
      : report.rows.map((row) => {
          const key = (unit === 'day' ? row.day : row.hour)!;
          const name = (field: string) => `rows.${key}.${field}`;
          return html`<tr><th scope="row">${key}</th><td>${metric(name('clicks'), row.clicks)}</td><td>${metric(name('conversions'), row.conversions)}</td><td>${metric(name('approved'), row.approved)}</td><td>${metric(name('pending'), row.pending)}</td><td>${metric(name('rejected'), row.rejected)}</td><td>${money(name('revenue'), row.revenue)}</td><td>${money(name('payout'), row.payout)}</td><td>${money(name('profit'), row.profit)}</td></tr>`;
        })
  }</tbody>
</table></div>
</section>
<section aria-labelledby="summary-title">
<h2 id="summary-title">Today, yesterday, this month, last month (${query.tz})</h2>
${subs.length > 0 ? html`<p class="none">These periods are not filtered by ${subs.join(', ')} (the summary takes advertiser, offer and affiliate filters only).</p>` : ''}
<div class="scroll"><table class="data">
<thead><tr><th>Period</th><th>Clicks</th><th>Conversions</th><th>Approved</th><th>Pending</th><th>Revenue</th><th>Payout</th><th>Profit</th></tr></thead>
<tbody>${periods.map(([period, label]) => {
    const p = summary[period];
    const name = (field: string) => `summary.${period}.${field}`;
    return html`<tr><th scope="row">${label}</th><td>${metric(name('clicks'), p.clicks)}</td><td>${metric(name('conversions'), p.conversions)}</td><td>${metric(name('approved'), p.approved)}</td><td>${metric(name('pending'), p.pending)}</td><td>${money(name('revenue'), p.revenue)}</td><td>${money(name('payout'), p.payout)}</td><td>${money(name('profit'), p.profit)}</td></tr>`;
  })}</tbody>
</table></div>
</section>`;
}
