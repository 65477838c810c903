import { deliveryIdFloor } from '@trackway/domain';
import type { ApiDeps } from '../deps';
import { type Html, count, html, when } from './html';
import { type PageContext, csrfField } from './layout';

/** The window of "recent" delivery success, and of the failures listed for replay. */
const STATS_HOURS = 24;
const FAILED_DAYS = 7;
const FAILED_SHOWN = 50;
const ENDPOINTS_SHOWN = 500;

interface EndpointStats {
  id: string;
  kind: 'webhook' | 'partner_postback';
  url: string;
  description: string | null;
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: Date | null;
  affiliate_id: number | null;
  succeeded: number;
  failed: number;
  pending: number;
}

/** Succeeded out of settled (pending ones are not decided yet), to one decimal; null with none settled. */
export function successPercent(s: { succeeded: number; failed: number }): string | null {
  const settled = s.succeeded + s.failed;
  return settled === 0 ? null : ((s.succeeded * 100) / settled).toFixed(1);
}

/** Webhook endpoints and partner postbacks (one table, one delivery engine), with their recent success and failures. */
/** How much earlier than its creation a delivery's id may read (its event's time): a fan-out's lag, generously. */
const ID_SLACK_MS = 86_400_000;

export async function endpointsBody(deps: Pick<ApiDeps, 'prisma'>, context: PageContext): Promise<Html> {
  const since = new Date(Date.now() - STATS_HOURS * 3_600_000);
  const failedSince = new Date(Date.now() - FAILED_DAYS * 86_400_000);
  // Bounded by id as well (a delivery's id carries its event's time, a little before it was
  // created): only the partitions of those days are read, along (endpoint_id, id) and the failed
  // deliveries' partial index.
  const idSince = (at: Date) => deliveryIdFloor(new Date(at.getTime() - ID_SLACK_MS));
  const [endpoints, failed] = await Promise.all([
    deps.prisma.$queryRaw<EndpointStats[]>`
      SELECT e.id, e.kind::text AS kind, e.url, e.description, e.enabled, e.disabled_reason, e.failing_since, e.affiliate_id,
             (count(d.id) FILTER (WHERE d.status = 'succeeded'))::int AS succeeded,
             (count(d.id) FILTER (WHERE d.status = 'failed'))::int AS failed,
             (count(d.id) FILTER (WHERE d.status = 'pending'))::int AS pending
        FROM webhook_endpoints e
        LEFT JOIN deliveries d ON d.endpoint_id = e.id AND d.id >= ${idSince(since)} AND d.created_at >= ${since}
       GROUP BY e.id
       ORDER BY e.kind, e.created_at DESC, e.id
       LIMIT ${ENDPOINTS_SHOWN}`,
    deps.prisma.delivery.findMany({
      where: { status: 'failed', id: { gte: idSince(failedSince) }, createdAt: { gte: failedSince } },
      orderBy: { id: 'desc' },
      take: FAILED_SHOWN,
      include: {
        attempts: { orderBy: { number: 'desc' }, take: 1, select: { at: true, statusCode: true, error: true } },
        endpoint: { select: { kind: true, url: true, enabled: true } },
      },
    }),
  ]);
  const table = (kind: EndpointStats['kind']) => {
    const rows = endpoints.filter((e) => e.kind === kind);
    if (rows.length === 0) return html`<p class="none">None yet.</p>`;
    return html`<div class="scroll"><table class="data">
<thead><tr><th>${kind === 'webhook' ? 'Endpoint' : 'Partner postback'}</th><th>URL</th><th>State</th><th>Succeeded</th><th>Failed</th><th>Pending</th><th>Success</th></tr></thead>
<tbody>${rows.map((e) => {
      const percent = successPercent(e);
      const m = (field: string) => `endpoints.${e.id}.${field}`;
      return html`<tr data-endpoint="${e.id}">
<td><code>${e.id}</code>${e.description ? html`<br><small>${e.description}</small>` : ''}${e.affiliate_id === null ? '' : html`<br><small>affiliate ${e.affiliate_id}</small>`}</td>
<td class="url">${e.url}</td>
<td>${e.enabled ? (e.failing_since ? html`<span class="warn">failing since ${when(e.failing_since)} UTC</span>` : 'enabled') : html`<span class="bad">disabled</span>${e.disabled_reason ? html`<br><small>${e.disabled_reason}</small>` : ''}`}</td>
<td class="n"><span data-metric="${m('succeeded')}" data-value="${e.succeeded}">${count(e.succeeded)}</span></td>
<td class="n"><span data-metric="${m('failed')}" data-value="${e.failed}">${count(e.failed)}</span></td>
<td class="n"><span data-metric="${m('pending')}" data-value="${e.pending}">${count(e.pending)}</span></td>
<td class="n"><span data-metric="${m('success_percent')}" data-value="${percent ?? ''}">${percent === null ? '—' : `${percent} %`}</span></td>
</tr>`;
    })}</tbody></table></div>`;
  };
  return html`
<p>Deliveries created in the last ${STATS_HOURS} hours, by their state now. Success counts succeeded out of settled (succeeded or failed).</p>
<section aria-labelledby="webhooks-title"><h2 id="webhooks-title">Webhook endpoints</h2>${table('webhook')}</section>
<section aria-labelledby="partners-title"><h2 id="partners-title">Partner postbacks</h2>${table('partner_postback')}</section>
<section aria-labelledby="failed-title"><h2 id="failed-title">Failed deliveries (last ${FAILED_DAYS} days, newest ${FAILED_SHOWN})</h2>
<p>Replay sends the same event again with the same webhook-id and the full retry schedule, as <code>POST /v1/deliveries/{id}/retry</code> does.</p>
${
  failed.length === 0
    ? html`<p class="none">No failed deliveries.</p>`
    : html`<div class="scroll"><table class="data">
<thead><tr><th>Created (UTC)</th><th>Delivery</th><th>Event</th><th>To</th><th>Attempts</th><th>Last answer</th><th></th></tr></thead>
<tbody>${failed.flatMap((d) => {
        // A delivery whose endpoint was deleted while a fan-out wrote it: nothing to show or replay.
        if (!d.endpoint) return [];
        const last = d.attempts[0];
        return html`<tr data-delivery="${d.id}">
<td>${when(d.createdAt)}</td><td><code>${d.id}</code>${d.replayCount > 0 ? html`<br><small>replayed ${d.replayCount}×</small>` : ''}</td>
<td>${d.eventType}<br><small><code>${d.eventId}</code></small></td>
<td><code>${d.endpointId}</code><br><small class="url">${d.endpoint.url}</small></td>
<td class="n">${d.attemptCount}</td>
<td>${last ? html`${last.statusCode === null ? (last.error ?? 'no answer') : `HTTP ${last.statusCode}`}<br><small>${when(last.at)} UTC</small>` : html`<span class="none">none</span>`}</td>
<td class="actions">${
          d.endpoint.enabled
            ? html`<form method="post" action="/console/deliveries/${d.id}/replay" class="inline">${csrfField(context)}<button type="submit" data-action="replay" data-delivery="${d.id}">Replay</button></form>`
            : html`<small>endpoint disabled</small>`
        }</td>
</tr>`;
      })}</tbody></table></div>`
}
</section>`;
}
