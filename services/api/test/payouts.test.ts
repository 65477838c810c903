// POST /v1/payouts and mark-sent: inactive affiliates, the currency's case, emptied payouts.
import { newId } from '@trackway/domain';
import { type Fixture, createFixture } from '@trackway/testing';
import request from 'supertest';
import { type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
beforeAll(async () => {
  h = await startApi();
});
afterAll(() => h.close());

const post = (path: string, body: object) => request(h.app).post(path).set(h.auth).send(body);

/** An approved conversion with its approved commission, for the fixture's affiliate. */
async function approvedCommission(fx: Fixture, currency = 'USD') {
  const id = newId('conversion');
  const commissionId = newId('commission');
  await h.db.prisma.conversion.create({
    data: {
      id,
      advertiserId: fx.advertiserId,
      offerId: fx.offerId,
      affiliateId: fx.affiliateId,
      clickId: 'c',
      orderId: `O-${id}`,
      event: 'conversion',
      status: 'approved',
      amount: '10',
      currency,
      payout: '5',
      payoutCurrency: currency,
      clickedAt: new Date(),
      commission: { create: { id: commissionId, affiliateId: fx.affiliateId, amount: '5', currency, status: 'approved' } },
    },
  });
  return { conversionId: id, commissionId };
}

describe('POST /v1/payouts', () => {
  it('refuses an inactive affiliate with 409 affiliate_inactive, unless allow_inactive is true', async () => {
    const fx = await createFixture(h.db.prisma);
    await approvedCommission(fx);
    await request(h.app).patch(`/v1/affiliates/${fx.affiliateId}`).set(h.auth).send({ status: 'inactive' }).expect(200);
    const refused = await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD' }).expect(409);
    expect(refused.body.error.code).toBe('affiliate_inactive');
    await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD', allow_inactive: false }).expect(409);
    expect(await h.db.prisma.payout.count({ where: { affiliateId: fx.affiliateId } })).toBe(0);
    const paid = await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD', allow_inactive: true }).expect(201);
    expect(paid.body).toMatchObject({ affiliate_id: fx.affiliateId, amount: '5.00', status: 'pending' });
    expect((await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD', allow_inactive: 'yes' }).expect(400)).body.error.fields).toEqual({
      allow_inactive: 'must be true or false, not a string',
    });
  });

  it('takes the currency in any case, as postbacks do; a code that is not ASCII is refused, never read as another', async () => {
    const fx = await createFixture(h.db.prisma);
    await approvedCommission(fx);
    const paid = await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'usd' }).expect(201);
    expect(paid.body.currency).toBe('USD');
    await approvedCommission(fx);
    await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'uSd' }).expect(201);
    await approvedCommission(fx);
    // "uſd".toUpperCase() is "USD": the long s is not a letter of a currency code.
    for (const currency of ['uſd', 'ＵＳＤ', 'US', 'USDX', 'xxq']) {
      const res = await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency });
      expect([currency, res.status, Object.keys(res.body.error?.fields ?? {})]).toEqual([currency, 400, ['currency']]);
    }
    expect(await h.db.prisma.commission.count({ where: { affiliateId: fx.affiliateId, payoutId: null } })).toBe(1);
  });
  it('pays 2,500 commissions (several batches of 1,000) in one payout: every one, the exact sum, as GET shows it', async () => {
    const fx = await createFixture(h.db.prisma);
    const pairs = Array.from({ length: 2500 }, (_, i) => ({
      conversionId: newId('conversion'),
      commissionId: newId('commission'),
      amount: `${(i % 9) + 1}.${i % 10}5`,
    }));
    const rows = JSON.stringify(pairs);
    await h.db.pool.query(
      `INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency, clicked_at, updated_at)
       SELECT "conversionId", $2, $3, $4, 'c', 'O-' || "conversionId", 'conversion', 'approved', amount, 'USD', amount, 'USD', now(), now()
         FROM json_to_recordset($1::json) AS r("conversionId" varchar, amount numeric)`,
      [rows, fx.advertiserId, fx.offerId, fx.affiliateId],
    );
    await h.db.pool.query(
      `INSERT INTO commissions (id, conversion_id, affiliate_id, amount, currency, status, updated_at)
       SELECT "commissionId", "conversionId", $2, amount, 'USD', 'approved', now() FROM json_to_recordset($1::json) AS r("commissionId" varchar, "conversionId" varchar, amount numeric)`,
      [rows, fx.affiliateId],
    );
    const cents = pairs.reduce((total, p) => total + Math.round(Number(p.amount) * 100), 0);
    const created = await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD' }).expect(201);
    expect(created.body).toMatchObject({ affiliate_id: fx.affiliateId, currency: 'USD', status: 'pending', amount: (cents / 100).toFixed(2), has_more: false });
    expect(created.body.commission_ids).toEqual(pairs.map((p) => p.commissionId).sort());
    const got = await request(h.app).get(`/v1/payouts/${created.body.id}`).set(h.auth).expect(200);
    expect(got.body).toEqual({ ...created.body, has_more: undefined, updated_at: got.body.updated_at });
    await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD' }).expect(422);
  });
});

describe('POST /v1/payouts/{id}/mark-sent', () => {
  it('refuses a payout that reversals emptied (0.00, no commissions) with 409 payout_empty, and emits no payout.sent', async () => {
    const fx = await createFixture(h.db.prisma);
    const { commissionId } = await approvedCommission(fx);
    const { body: payout } = await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD' }).expect(201);
    // What a reversal does to a pending payout (ledger's DETACH and RECOMPUTE): its commission leaves, its amount is 0.
    await h.db.prisma.commission.update({ where: { id: commissionId }, data: { status: 'voided', payoutId: null } });
    await h.db.prisma.payout.update({ where: { id: payout.id }, data: { amount: '0' } });
    const refused = await post(`/v1/payouts/${payout.id}/mark-sent`, { reference: 'WIRE-0' }).expect(409);
    expect(refused.body.error.code).toBe('payout_empty');
    expect((await h.db.prisma.payout.findUniqueOrThrow({ where: { id: payout.id } })).status).toBe('pending');
    const sent = await h.db.prisma.outboxEvent.findMany({ where: { type: 'payout.sent' } });
    expect(sent.filter((e) => (e.payload as { data: { payout: { id: string } } }).data.payout.id === payout.id)).toEqual([]);
  });

  it('marks a payout with commissions sent, once', async () => {
    const fx = await createFixture(h.db.prisma);
    const { commissionId } = await approvedCommission(fx);
    const { body: payout } = await post('/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD' }).expect(201);
    const sent = await post(`/v1/payouts/${payout.id}/mark-sent`, { reference: 'WIRE-1' }).expect(200);
    expect(sent.body).toMatchObject({ status: 'sent', reference: 'WIRE-1', commission_ids: [commissionId] });
    expect((await post(`/v1/payouts/${payout.id}/mark-sent`, { reference: 'WIRE-1' }).expect(409)).body.error.code).toBe('already_sent');
    await post('/v1/payouts/po_01JD8Z6Q60F3H5J7L9N1Q3S5ZZ/mark-sent', { reference: 'WIRE-1' }).expect(404);
  });
});
