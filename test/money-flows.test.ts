// What a network is paid and pays when advertisers send the flows trackers really send: a later
// postback's amount (a lead, then the sale), one order under any case of its event name, and
// conversions of an affiliate or offer that was stopped. Through ingest, the attribution worker
// and the admin API, against Postgres.
import { type Receiver, startReceiver, waitFor } from '@trackway/testing';
import request from 'supertest';
import { adminApi, createProgram } from './support/program';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let receiver: Receiver;

beforeAll(async () => {
  stack = await startStack();
  stack.startAttribution();
  await stack.startDelivery();
  receiver = await startReceiver();
  await stack.subscribe(receiver.url, ['*']);
});
afterAll(async () => {
  await receiver.close();
  await stack.close();
});

const api = {
  get: (path: string) => adminApi(stack).get(path),
  post: (path: string, body?: object) => adminApi(stack).post(path, body),
  patch: (path: string, body: object) => adminApi(stack).patch(path, body),
};
const PERCENT = { payout: { type: 'percent', percent: '10' } };
const setUp = (offer: Record<string, unknown> = PERCENT, advertiserFields: Record<string, unknown> = {}) => createProgram(stack, offer, advertiserFields);

const eventsOf = (conversionId: string, type: string) =>
  receiver.requests
    .map((r) => JSON.parse(r.body))
    .filter((e) => e.type === type && (e.data.conversion?.id ?? e.data.commission?.conversion_id) === conversionId);

describe("a later postback's amount", () => {
  it('pending 10.00, then approved 100.00 on a 10 % offer: the conversion is 100.00 with payout 10.00, its commission follows', async () => {
    const { postback, conversion } = await setUp();
    const lead = await postback({ order_id: 'A-1', amount: '10.00', status: 'pending' });
    const sale = await postback({ order_id: 'A-1', amount: '100.00', status: 'approved' });
    expect(sale).toMatchObject({ status: 'accepted', reason: null, conversion_id: lead.conversion_id, params: { amount: '100' } });
    expect(await conversion(lead.conversion_id!)).toMatchObject({ amount: '100.00', payout: '10.00', status: 'approved' });
    const commissions = await stack.db.prisma.commission.findMany({ where: { conversionId: lead.conversion_id! } });
    expect(commissions.map((c) => [c.amount.toString(), c.status])).toEqual([['10', 'approved']]);
    const updated = await waitFor(() => eventsOf(lead.conversion_id!, 'conversion.updated')[0], { what: 'conversion.updated' });
    expect(updated.data).toMatchObject({ previous_amount: '10.00', previous_payout: '1.00', conversion: { amount: '100.00', payout: '10.00' } });
    const commissionUpdated = await waitFor(() => eventsOf(lead.conversion_id!, 'commission.updated')[0], { what: 'commission.updated' });
    expect(commissionUpdated.data).toMatchObject({ previous_amount: '1.00', commission: { amount: '10.00', status: 'approved' } });
  });

  it('a lead at 0, then the sale at 50.00: the commission is created then', async () => {
    const { postback, conversion } = await setUp();
    const lead = await postback({ order_id: 'B-1', amount: '0', status: 'lead' });
    expect(await conversion(lead.conversion_id!)).toMatchObject({ amount: '0.00', payout: '0.00', status: 'pending' });
    expect(await stack.db.prisma.commission.count({ where: { conversionId: lead.conversion_id! } })).toBe(0);
    expect(await postback({ order_id: 'B-1', amount: '50.00', status: 'sale' })).toMatchObject({ status: 'accepted' });
    expect(await conversion(lead.conversion_id!)).toMatchObject({ amount: '50.00', payout: '5.00', status: 'approved' });
    const commissions = await stack.db.prisma.commission.findMany({ where: { conversionId: lead.conversion_id! } });
    expect(commissions.map((c) => [c.amount.toString(), c.status])).toEqual([['5', 'approved']]);
    await waitFor(() => eventsOf(lead.conversion_id!, 'commission.created')[0], { what: 'commission.created' });
  });

  it("Keitaro's flow (status=lead&payout=0, then status=sale&payout=50) pays on the sale", async () => {
    const { postback, conversion, clickId } = await setUp(undefined, { postback_format: { preset: 'keitaro' } });
    const lead = await postback({ subid: clickId, status: 'lead', payout: '0' });
    const sale = await postback({ subid: clickId, status: 'sale', payout: '50' });
    expect(sale).toMatchObject({ status: 'accepted', conversion_id: lead.conversion_id });
    expect(await conversion(lead.conversion_id!)).toMatchObject({ order_id: null, amount: '50.00', payout: '5.00', status: 'approved' });
  });

  it('the same status with a new amount is an update; a postback without an amount changes none', async () => {
    const { postback, conversion } = await setUp();
    const first = await postback({ order_id: 'C-1', amount: '20.00' });
    expect(await postback({ order_id: 'C-1', amount: '25.00' })).toMatchObject({ status: 'accepted' });
    expect(await conversion(first.conversion_id!)).toMatchObject({ amount: '25.00', payout: '2.50' });
    const bare = await postback({ order_id: 'C-1' });
    expect(bare).toMatchObject({ status: 'duplicate', params: { amount: null } });
    expect(await conversion(first.conversion_id!)).toMatchObject({ amount: '25.00', payout: '2.50' });
    expect(await postback({ order_id: 'C-1', amount: '25.0' })).toMatchObject({ status: 'duplicate' });
  });

  it('moves a payout not yet sent with its commission; once the payout is sent the amount is locked', async () => {
    const { affiliate, postback, conversion } = await setUp();
    const first = await postback({ order_id: 'D-1', amount: '100.00' });
    const payout = (await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(201)).body;
    expect(payout.amount).toBe('10.00');
    expect(await postback({ order_id: 'D-1', amount: '200.00' })).toMatchObject({ status: 'accepted' });
    expect((await api.get(`/v1/payouts/${payout.id}`).expect(200)).body).toMatchObject({ amount: '20.00', commission_ids: payout.commission_ids });
    await api.post(`/v1/payouts/${payout.id}/mark-sent`, { reference: 'WIRE-9' }).expect(200);
    expect(await postback({ order_id: 'D-1', amount: '300.00' })).toMatchObject({ status: 'rejected', reason: 'amount_locked' });
    expect(await conversion(first.conversion_id!)).toMatchObject({ amount: '200.00', payout: '20.00' });
    expect((await api.get(`/v1/payouts/${payout.id}`).expect(200)).body).toMatchObject({ amount: '20.00', status: 'sent' });
  });

  it("refuses an amount in another currency than the conversion's: currency_mismatch, nothing changed", async () => {
    const { postback, conversion } = await setUp();
    const first = await postback({ order_id: 'E-1', amount: '10.00', status: 'pending' });
    expect(await postback({ order_id: 'E-1', amount: '100.00', currency: 'eur', status: 'approved' })).toMatchObject({
      status: 'rejected',
      reason: 'currency_mismatch',
    });
    expect(await conversion(first.conversion_id!)).toMatchObject({ amount: '10.00', currency: 'USD', status: 'pending' });
  });
});

describe('event names in any case', () => {
  it('makes event=sale, Sale and SALE one conversion, and keeps what was sent on each postback', async () => {
    const { postback, conversion } = await setUp({ payout: { type: 'fixed', amount: '5.00' } });
    const outcomes = [];
    for (const event of ['sale', 'Sale', 'SALE']) outcomes.push(await postback({ order_id: 'F-1', amount: '30.00', event }));
    expect(outcomes.map((o) => o.status)).toEqual(['accepted', 'duplicate', 'duplicate']);
    expect(new Set(outcomes.map((o) => o.conversion_id)).size).toBe(1);
    expect(outcomes.map((o) => o.params.event)).toEqual(['sale', 'Sale', 'SALE']);
    expect(await conversion(outcomes[0].conversion_id!)).toMatchObject({ event: 'sale' });
    expect(await stack.db.prisma.commission.count({ where: { conversionId: outcomes[0].conversion_id! } })).toBe(1);
  });
});

describe('an affiliate or offer made inactive', () => {
  it.each([
    ['affiliate', 'affiliate_inactive', 'inactive_affiliate'],
    ['offer', 'offer_inactive', 'inactive_offer'],
  ])('the %s: a postback on an older click is recorded, held pending and flagged, until a person approves it', async (kind, holdReason, rule) => {
    const { affiliate, offer, postback, conversion } = await setUp({ payout: { type: 'fixed', amount: '5.00' } });
    await api.patch(kind === 'affiliate' ? `/v1/affiliates/${affiliate.id}` : `/v1/offers/${offer.id}`, { status: 'inactive' }).expect(200);
    const held = await postback({ order_id: 'G-1', amount: '40.00' });
    expect(held).toMatchObject({ status: 'accepted' });
    expect(await conversion(held.conversion_id!)).toMatchObject({ status: 'pending', hold_reason: holdReason, fraud_flags: [rule] });
    const commissions = await stack.db.prisma.commission.findMany({ where: { conversionId: held.conversion_id! } });
    expect(commissions.map((c) => c.status)).toEqual(['pending']);
    // The advertiser's approval does not release it; a person does.
    expect(await postback({ order_id: 'G-1', amount: '40.00', status: 'approved' })).toMatchObject({ status: 'duplicate' });
    const reviewed = (await api.patch(`/v1/conversions/${held.conversion_id}`, { status: 'approved' }).expect(200)).body;
    expect(reviewed).toMatchObject({ status: 'approved', hold_reason: null });
  });

  it("holds an advertiser's approval of a conversion recorded before the affiliate was stopped", async () => {
    const { affiliate, postback, conversion } = await setUp({ payout: { type: 'fixed', amount: '5.00' } });
    const pending = await postback({ order_id: 'H-1', amount: '40.00', status: 'pending' });
    await api.patch(`/v1/affiliates/${affiliate.id}`, { status: 'inactive' }).expect(200);
    // The attribution worker's cache hears of the change at once (the api announces it).
    await waitFor(
      async () => {
        const outcome = await postback({ order_id: `probe-${Date.now()}`, amount: '1.00', status: 'pending' });
        return (await conversion(outcome.conversion_id!)).hold_reason === 'affiliate_inactive';
      },
      { what: 'the affiliate seen inactive' },
    );
    expect(await postback({ order_id: 'H-1', status: 'approved' })).toMatchObject({ status: 'accepted' });
    expect(await conversion(pending.conversion_id!)).toMatchObject({
      status: 'pending',
      hold_reason: 'affiliate_inactive',
      fraud_flags: ['inactive_affiliate'],
    });
  });
});

describe('amounts racing payouts', () => {
  it('keeps every payout equal to its commissions, and a sent payout as it was sent, while amounts change beside payouts being made and sent', async () => {
    const { affiliate, click, advertiser } = await setUp();
    const clicks = await Promise.all(Array.from({ length: 20 }, () => click()));
    const send = (i: number, amount: string) =>
      request(stack.ingest)
        .get('/postback')
        .query({ key: advertiser.postback_key, click_id: clicks[i], order_id: `R-${i}`, amount })
        .expect(202);
    await Promise.all(clicks.map((_, i) => send(i, '10.00')));
    await waitFor(async () => (await stack.db.prisma.commission.count({ where: { affiliateId: affiliate.id } })) === 20, { what: 'the first commissions' });

    const sentAs = new Map<string, string>();
    const payouts = async () => {
      for (let round = 0; round < 6; round++) {
        const made = await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' });
        if (made.status !== 201) continue;
        const sent = await api.post(`/v1/payouts/${made.body.id}/mark-sent`, { reference: `W-${round}` });
        if (sent.status === 200) sentAs.set(made.body.id, sent.body.amount);
      }
    };
    const amounts = async () => {
      for (let round = 1; round <= 5; round++) await Promise.all(clicks.map((_, i) => send(i, `${10 + round * (i + 1)}.00`)));
    };
    await Promise.all([payouts(), amounts()]);
    await waitFor(async () => (await stack.db.prisma.postback.count({ where: { advertiserId: advertiser.id } })) === 120, {
      timeoutMs: 30_000,
      what: 'every outcome',
    });

    const rows = await stack.db.prisma.payout.findMany({ where: { affiliateId: affiliate.id }, include: { commissions: true } });
    expect(rows.length).toBeGreaterThan(0);
    for (const payout of rows) {
      const sum = payout.commissions.reduce((total, c) => total + Number(c.amount), 0);
      expect([payout.id, Number(payout.amount)]).toEqual([payout.id, sum]);
      if (payout.status === 'sent') expect([payout.id, payout.amount.toFixed(2)]).toEqual([payout.id, sentAs.get(payout.id)]);
    }
    // Every commission is its conversion's payout, unless its payout was sent first (then the amount was refused).
    const conversions = await stack.db.prisma.conversion.findMany({
      where: { affiliateId: affiliate.id },
      include: { commission: { include: { payout: true } } },
    });
    for (const c of conversions) expect([c.id, c.commission!.amount.toString()]).toEqual([c.id, c.payout.toString()]);
  });
});
