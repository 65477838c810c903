import type { ApiDeps } from '../deps';
import { type Html, count, formatDecimal, html, when } from './html';
import { type PageContext, csrfField } from './layout';

/** Held conversions the page lists, newest first. */
const SHOWN = 200;

/** Conversions a fraud rule held for review (pending, with a hold reason), with Approve and Reject. */
export async function reviewBody(deps: Pick<ApiDeps, 'prisma'>, context: PageContext): Promise<Html> {
  const where = { status: 'pending' as const, holdReason: { not: null } };
  const [held, total] = await Promise.all([
    deps.prisma.conversion.findMany({
      where,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: SHOWN,
      include: { fraudFlags: { select: { rule: true }, orderBy: { createdAt: 'asc' } } },
    }),
    deps.prisma.conversion.count({ where }),
  ]);
  const [offers, affiliates] = await Promise.all([
    deps.prisma.offer.findMany({ where: { id: { in: [...new Set(held.map((c) => c.offerId))] } }, select: { id: true, name: true } }),
    deps.prisma.affiliate.findMany({ where: { id: { in: [...new Set(held.map((c) => c.affiliateId))] } }, select: { id: true, name: true } }),
  ]);
  const offerName = new Map(offers.map((o) => [o.id, o.name]));
  const affiliateName = new Map(affiliates.map((a) => [a.id, a.name]));
  const button = (id: string, status: 'approved' | 'rejected', label: string) =>
    html`<form method="post" action="/console/review/${id}" class="inline">${csrfField(context)}<input type="hidden" name="status" value="${status}"><button type="submit" class="${status}" data-action="${status}" data-conversion="${id}">${label}</button></form>`;
  return html`
<p><span data-metric="held" data-value="${total}">${count(total)}</span> held for review${total > SHOWN ? html`; the newest ${SHOWN} are shown` : ''}. Approving releases the hold (the same state machine, commissions and events as <code>PATCH /v1/conversions/{id}</code>); rejecting ends it.</p>
<section><div class="scroll"><table class="data">
<thead><tr><th>Recorded (UTC)</th><th>Conversion</th><th>Offer / affiliate</th><th>Amount / payout</th><th>Held by</th><th>Sub 1</th><th></th></tr></thead>
<tbody>${
    held.length === 0
      ? html`<tr><td colspan="7" class="none">Nothing is held for review.</td></tr>`
      : held.map(
          (c) => html`<tr data-conversion="${c.id}">
<td>${when(c.createdAt)}</td>
<td><code>${c.id}</code><br><small>order ${c.orderId} · ${c.event}</small></td>
<td>${offerName.get(c.offerId) ?? ''} <span class="name">(${c.offerId})</span><br><small>${affiliateName.get(c.affiliateId) ?? ''} (${c.affiliateId})</small></td>
<td class="n">${formatDecimal(c.amount.toFixed(2))} ${c.currency}<br><small>${formatDecimal(c.payout.toFixed(2))} ${c.payoutCurrency}</small></td>
<td>${c.holdReason}${c.fraudFlags.length > 0 ? html`<br><small>${c.fraudFlags.map((f) => f.rule).join(', ')}</small>` : ''}</td>
<td class="url">${c.sub1 ?? ''}</td>
<td class="actions">${button(c.id, 'approved', 'Approve')} ${button(c.id, 'rejected', 'Reject')}</td>
</tr>`,
        )
  }</tbody>
</table></div></section>`;
}
