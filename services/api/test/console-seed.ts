// What the console's tests show: an advertiser, two offers and an affiliate made through the API;
// clicks and conversions written by the real writers (so report rows exist, as in production);
// held conversions; a webhook endpoint and a partner postback, each with a failed delivery.
import { inTransaction } from '@trackway/db';
import { type ConversionState, conversionWrites, newId } from '@trackway/domain';
import { foldClicks, insertClicks, writeConversions } from '@trackway/ledger';
import request from 'supertest';
import type { ApiHarness } from './helpers';

export interface ConsoleSeed {
  advertiserId: number;
  offerId: number;
  eurOfferId: number;
  affiliateId: number;
  /** Conversions held for review (pending, with a hold reason), oldest first. */
  held: string[];
  endpointId: string;
  partnerPostbackId: string;
  /** Failed deliveries: the webhook endpoint's, then the partner postback's. */
  failedDeliveries: string[];
  /** A sub1 that is HTML: the pages must show it as text. */
  hostileSub: string;
}

const DAY_MS = 86_400_000;

/** Noon (UTC) `days` ago, plus `minutes`. */
const daysAgo = (now: Date, days: number, minutes = 0) =>
  new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) - days * DAY_MS + 12 * 3_600_000 + minutes * 60_000);

export async function seedConsole(h: ApiHarness, now = new Date()): Promise<ConsoleSeed> {
  const api = (method: 'post' | 'patch', path: string, body: object) => request(h.app)[method](path).set(h.auth).send(body);
  const advertiserId = (await api('post', '/v1/advertisers', { name: 'Shop' }).expect(201)).body.id as number;
  const affiliateId = (await api('post', '/v1/affiliates', { name: 'Coupons & Co' }).expect(201)).body.id as number;
  const offer = { advertiser_id: advertiserId, destination_url: 'https://shop.example/land', payout: { type: 'fixed', amount: '10.00' } };
  const offerId = (await api('post', '/v1/offers', { ...offer, name: 'Spring sale', currency: 'USD' }).expect(201)).body.id as number;
  const eurOfferId = (await api('post', '/v1/offers', { ...offer, name: 'Euro shop', currency: 'EUR' }).expect(201)).body.id as number;
  const hostileSub = '<img src=x onerror=alert(1)>';

  const clicks = [
    ...Array.from({ length: 12 }, (_, i) => ({ offerId, subs: { sub1: `p${i}`, sub2: 'spring' }, clickedAt: daysAgo(now, 1, i) })),
    ...Array.from({ length: 6 }, (_, i) => ({ offerId, subs: { sub1: i === 0 ? hostileSub : `q${i}`, sub2: 'summer' }, clickedAt: daysAgo(now, 3, i) })),
    ...Array.from({ length: 3 }, (_, i) => ({ offerId: eurOfferId, subs: { sub2: 'euro' }, clickedAt: daysAgo(now, 6, i) })),
  ].map((c, i) => ({ clickId: `click-${i}`, affiliateId, ip: null, userAgent: null, ...c }));
  await insertClicks(h.db.pool, [JSON.stringify(clicks)]);
  await foldClicks(h.db.pool);

  const conversion = (fields: Partial<ConversionState>): ConversionState => ({
    id: newId('conversion'),
    advertiserId,
    offerId,
    affiliateId,
    clickId: 'click-0',
    orderId: newId('event'),
    event: 'sale',
    status: 'approved',
    holdReason: null,
    amount: '100',
    currency: 'USD',
    payout: '10',
    payoutCurrency: 'USD',
    revenue: '15',
    revenueCurrency: 'USD',
    sub1: 'p0',
    sub2: 'spring',
    sub3: null,
    sub4: null,
    sub5: null,
    clickedAt: daysAgo(now, 1),
    createdAt: daysAgo(now, 1, 30),
    updatedAt: now,
    fraudFlags: [],
    commission: null,
    ...fields,
  });
  const held = [
    conversion({ status: 'pending', holdReason: 'ctit_too_short', amount: '80', payout: '8', createdAt: daysAgo(now, 2, 10) }),
    conversion({
      status: 'pending',
      holdReason: 'ctit_too_short',
      amount: '60',
      payout: '6',
      sub1: hostileSub,
      sub2: 'summer',
      createdAt: daysAgo(now, 1, 40),
    }),
  ];
  const list = [
    conversion({}),
    conversion({ amount: '250', payout: '25', revenue: '40', createdAt: daysAgo(now, 3, 20), sub1: hostileSub, sub2: 'summer' }),
    conversion({ status: 'rejected', createdAt: daysAgo(now, 1, 50) }),
    conversion({
      offerId: eurOfferId,
      currency: 'EUR',
      amount: '70',
      payout: '3.5',
      payoutCurrency: 'EUR',
      revenue: null,
      revenueCurrency: null,
      sub1: null,
      sub2: 'euro',
      createdAt: daysAgo(now, 6, 30),
    }),
    ...held,
  ];
  await inTransaction(h.db.pool, (client) =>
    writeConversions(client, conversionWrites(new Map(), new Map(list.map((c) => [c.orderId, c])), [{ events: [] }]), new Date()),
  );

  // Deliveries as the engine leaves them: a test event each, one failed after three attempts, one succeeded.
  const endpointId = (await api('post', '/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook', event_types: ['*'], description: 'CRM' }).expect(201)).body
    .id as string;
  const partnerPostbackId = (
    await api('post', '/v1/partner-postbacks', { affiliate_id: affiliateId, url: 'http://127.0.0.1:9/pb?cid={sub1}&payout={payout}&token=s3cr3t' }).expect(201)
  ).body.id as string;
  const failedDeliveries: string[] = [];
  for (const [path, id] of [
    ['webhook-endpoints', endpointId],
    ['partner-postbacks', partnerPostbackId],
  ] as const) {
    const failed = (await api('post', `/v1/${path}/${id}/test`, {}).expect(202)).body.delivery_id as string;
    const succeeded = (await api('post', `/v1/${path}/${id}/test`, {}).expect(202)).body.delivery_id as string;
    await h.db.prisma.delivery.update({ where: { id: failed }, data: { status: 'failed', attemptCount: 3, nextAttemptAt: null } });
    await h.db.prisma.deliveryAttempt.createMany({
      data: [1, 2, 3].map((number) => ({ deliveryId: failed, number, at: new Date(now.getTime() - (4 - number) * 60_000), durationMs: 40, statusCode: 500 })),
    });
    await h.db.prisma.delivery.update({ where: { id: succeeded }, data: { status: 'succeeded', attemptCount: 1, nextAttemptAt: null } });
    failedDeliveries.push(failed);
  }
  return { advertiserId, offerId, eurOfferId, affiliateId, held: held.map((c) => c.id), endpointId, partnerPostbackId, failedDeliveries, hostileSub };
}

type Measures = Record<string, unknown>;

/**
 * The numbers a console page should show for report answers, under the names its data-metric
 * attributes give them: `<prefix>.<field>` for counts and CR, `<prefix>.<field>.<currency>` for money.
 */
export function expectedMetrics(prefix: string, measures: Measures, out: Record<string, string> = {}): Record<string, string> {
  for (const [field, value] of Object.entries(measures)) {
    if (value !== null && typeof value === 'object')
      for (const [currency, amount] of Object.entries(value)) out[`${prefix}.${field}.${currency}`] = String(amount);
    else out[`${prefix}.${field}`] = value === null ? '' : String(value);
  }
  return out;
}

/** data-metric → data-value of every number in a page's HTML. */
export function metricsIn(html: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [, name, value] of html.matchAll(/data-metric="([^"]*)" data-value="([^"]*)"/g)) out[unescapeHtml(name)] = unescapeHtml(value);
  return out;
}

const unescapeHtml = (text: string) =>
  text.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e] ?? '');
