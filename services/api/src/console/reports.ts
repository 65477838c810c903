import type { ReportGroup, ReportQuery } from '@trackway/domain';
import { badRequest } from '@trackway/http';
import type { ApiDeps } from '../deps';
import { buildReport } from '../reporting';
import { type Html, count, html, metric, money } from './html';
import { type FormValues, linkTo } from './params';

/** What the reports page groups by, with its tab's label. */
export const REPORT_BY = {
  offer_id: 'Offer',
  affiliate_id: 'Affiliate',
  advertiser_id: 'Advertiser',
  event: 'Event',
  sub1: 'Sub 1',
  sub2: 'Sub 2',
  sub3: 'Sub 3',
  sub4: 'Sub 4',
  sub5: 'Sub 5',
} as const satisfies Partial<Record<ReportGroup, string>>;
export type ReportBy = keyof typeof REPORT_BY;

/** Rows the page shows; the CSV has them all. */
export const PAGE_ROWS = 1000;

/** The page's `by`, or a 400 naming it. */
export function reportBy(raw: unknown): ReportBy {
  if (raw === undefined) return 'offer_id';
  if (typeof raw === 'string' && Object.hasOwn(REPORT_BY, raw)) return raw as ReportBy;
  throw badRequest({ by: `takes ${Object.keys(REPORT_BY).join(', ')}` });
}

/** Names of the offers, affiliates or advertisers a page shows, by id. */
async function namesOf(deps: Pick<ApiDeps, 'prisma'>, by: ReportBy, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const where = { id: { in: ids } };
  const select = { id: true, name: true } as const;
  const rows =
    by === 'offer_id'
      ? await deps.prisma.offer.findMany({ where, select })
      : by === 'affiliate_id'
        ? await deps.prisma.affiliate.findMany({ where, select })
        : by === 'advertiser_id'
          ? await deps.prisma.advertiser.findMany({ where, select })
          : [];
  return new Map(rows.map((row) => [row.id, row.name]));
}

export async function reportsBody(deps: Pick<ApiDeps, 'pool' | 'prisma' | 'logger'>, query: ReportQuery, form: FormValues, by: ReportBy): Promise<Html> {
  const report = await buildReport(deps, { query: { ...query, groupBy: [by] }, limit: PAGE_ROWS, offset: 0 });
  const keys = report.rows.map((row) => row[by] ?? null);
  const names = await namesOf(
    deps,
    by,
    keys.filter((key): key is number => typeof key === 'number'),
  );
  const label = (key: string | number | null) =>
    key === null
      ? html`<span class="none">${by === 'event' ? '(clicks)' : '(none)'}</span>`
      : html`${key}${names.has(key as number) ? html` <span class="name">${names.get(key as number)!}</span>` : ''}`;
  const name = (key: string | number | null, field: string) => `rows.${key === null ? '' : key}.${field}`;
  return html`
<nav class="tabs" aria-label="Group by">${Object.entries(REPORT_BY).map(
    ([key, text]) => html`<a href="${linkTo('/console/reports', form, { by: key })}"${key === by ? html` aria-current="page"` : ''}>${text}</a>`,
  )}</nav>
<p class="actions"><a class="button" href="${linkTo('/console/reports.csv', form, { by })}" download>Download CSV</a>
${report.incomplete_results ? html`<span class="note" data-incomplete="true">Showing the first ${count(PAGE_ROWS)} rows; the CSV has every row.</span>` : ''}</p>
<section><div class="scroll"><table class="data">
<thead><tr><th>${REPORT_BY[by]}</th><th>Clicks</th><th>Conversions</th><th>Approved</th><th>Pending</th><th>Rejected</th><th>CR %</th><th>Revenue</th><th>Payout</th><th>Profit</th><th>EPC</th></tr></thead>
<tbody>${
    report.rows.length === 0
      ? html`<tr><td colspan="11" class="none">Nothing in this range.</td></tr>`
      : report.rows.map((row, i) => {
          const key = keys[i];
          const m = (field: string) => name(key, field);
          return html`<tr><th scope="row">${label(key)}</th><td>${metric(m('clicks'), row.clicks)}</td><td>${metric(m('conversions'), row.conversions)}</td><td>${metric(m('approved'), row.approved)}</td><td>${metric(m('pending'), row.pending)}</td><td>${metric(m('rejected'), row.rejected)}</td><td>${metric(m('cr'), row.cr, row.cr === null ? '—' : row.cr.toFixed(2))}</td><td>${money(m('revenue'), row.revenue)}</td><td>${money(m('payout'), row.payout)}</td><td>${money(m('profit'), row.profit)}</td><td>${money(m('epc'), row.epc)}</td></tr>`;
        })
  }</tbody>
<tfoot><tr><th scope="row">All</th><td>${metric('totals.clicks', report.totals.clicks)}</td><td>${metric('totals.conversions', report.totals.conversions)}</td><td>${metric('totals.approved', report.totals.approved)}</td><td>${metric('totals.pending', report.totals.pending)}</td><td>${metric('totals.rejected', report.totals.rejected)}</td><td>${metric('totals.cr', report.totals.cr, report.totals.cr === null ? '—' : report.totals.cr.toFixed(2))}</td><td>${money('totals.revenue', report.totals.revenue)}</td><td>${money('totals.payout', report.totals.payout)}</td><td>${money('totals.profit', report.totals.profit)}</td><td>${money('totals.epc', report.totals.epc)}</td></tr></tfoot>
</table></div></section>`;
}
