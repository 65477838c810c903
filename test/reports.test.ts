// Reports through the whole system: clicks through ingest and the clicks worker, postbacks that
// repeat, approve, reverse and reprice, a held conversion a person approves, sent again and again;
// then GET /v1/reports, in every grouping and both count_by, equals the recount of the raw rows.
import type { ReportGroup, ReportQuery } from '@trackway/domain';
import { collectReport, planReportSql } from '@trackway/ledger';
import { waitFor } from '@trackway/testing';
import request from 'supertest';
import { adminApi, createProgram } from './support/program';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
  stack.startAttribution();
});
afterAll(() => stack.close());

async function recount(query: ReportQuery) {
  const { rows, totals } = await collectReport(stack.db.pool, planReportSql(query, 'raw'), query.groupBy, query.tz);
  return { rows, totals };
}

it('reports equal the recount after repeats, approvals, reversals, repricing and a review', async () => {
  const api = adminApi(stack);
  const { advertiser, affiliate, offer, click, postback } = await createProgram(stack, {
    payout: { type: 'percent', percent: '10' },
    revenue: { type: 'percent', percent: '15' },
  });
  const tagged = async (sub2: string) => {
    const res = await request(stack.ingest).get(`/click?offer_id=${offer.id}&affiliate_id=${affiliate.id}&sub1=p${Math.random()}&sub2=${sub2}`).expect(302);
    return new URL(res.headers.location).searchParams.get('click_id')!;
  };
  const clicks = [...(await Promise.all(Array.from({ length: 12 }, (_, i) => tagged(i % 3 ? 'spring' : 'fall')))), await click()];
  await waitFor(async () => (await stack.db.prisma.click.count()) === clicks.length + 1, { what: 'click rows' });
  const on = (clickId: string, params: Record<string, string>) =>
    request(stack.ingest)
      .get('/postback')
      .query({ key: advertiser.postback_key, click_id: clickId, ...params })
      .expect(202);
  // Orders: a sale (sent three times), a lead then its sale, a sale reversed, a sale repriced, a pending one.
  for (let i = 0; i < 3; i++) await on(clicks[0], { order_id: 'R-1', amount: '100.00' });
  await on(clicks[1], { order_id: 'R-2', amount: '10.00', status: 'pending' });
  await on(clicks[1], { order_id: 'R-2', amount: '80.00', status: 'approved' });
  await on(clicks[2], { order_id: 'R-3', amount: '50.00' });
  await on(clicks[2], { order_id: 'R-3', status: 'rejected' });
  await on(clicks[3], { order_id: 'R-4', amount: '60.00' });
  await on(clicks[3], { order_id: 'R-4', amount: '45.50' });
  await on(clicks[4], { order_id: 'R-5', amount: '20.00', status: 'pending', event: 'lead' });
  // Held for review (the affiliate stopped, once the orders above are attributed), then approved by a person.
  await waitFor(async () => (await stack.db.prisma.postback.count()) === 10, { what: 'the first postbacks attributed' });
  await api.patch(`/v1/affiliates/${affiliate.id}`, { status: 'inactive' }).expect(200);
  const held = await postback({ order_id: 'R-6', amount: '30.00' });
  await api.patch(`/v1/affiliates/${affiliate.id}`, { status: 'active' }).expect(200);
  await waitFor(async () => (await stack.db.prisma.postback.count()) === 11, { what: 'every postback attributed' });
  expect((await api.get(`/v1/conversions/${held.conversion_id}`).expect(200)).body).toMatchObject({ status: 'pending', hold_reason: 'affiliate_inactive' });
  await api.patch(`/v1/conversions/${held.conversion_id}`, { status: 'approved' }).expect(200);

  const today = new Date(Date.now() - (Date.now() % 86_400_000));
  const from = new Date(today.getTime() - 86_400_000);
  const to = new Date(today.getTime() + 2 * 86_400_000);
  const groupings: ReportGroup[][] = [[], ['day'], ['hour'], ['offer_id', 'affiliate_id'], ['event'], ['sub2'], ['sub1'], ['advertiser_id', 'month']];
  for (const tz of ['UTC', 'Asia/Kathmandu'])
    for (const countBy of ['conversion', 'click'] as const)
      for (const groupBy of groupings) {
        const query: ReportQuery = { from, to, tz, groupBy, countBy, filters: {} };
        const range = tz === 'UTC' ? `from=${from.toISOString()}&to=${to.toISOString()}` : `from=${from.toISOString()}&to=${to.toISOString()}&tz=${tz}`;
        const answer = (await api.get(`/v1/reports?${range}&group_by=${groupBy.join(',')}&count_by=${countBy}`).expect(200)).body;
        expect({ tz, countBy, groupBy, rows: answer.rows, totals: answer.totals }).toEqual({ tz, countBy, groupBy, ...(await recount(query)) });
      }
  const totals = (await api.get(`/v1/reports?from=${from.toISOString()}&to=${to.toISOString()}&group_by=`).expect(200)).body.totals;
  // 100 + 80 + 45.50 + 30 approved; 50 reversed; 20 pending (a lead).
  expect(totals).toMatchObject({
    clicks: 14,
    conversions: 5,
    approved: 4,
    pending: 1,
    rejected: 1,
    amount: { USD: '255.50' },
    payout: { USD: '25.55' },
    revenue: { USD: '38.325' },
    pending_payout: { USD: '2.00' },
  });
}, 60_000);
