// Every event type produced by the real flows (postbacks, payouts, a 410, a test send),
// delivered to a local receiver and verified with the published standardwebhooks library.
import { EVENT_TYPES } from '@trackway/domain';
import { markPayoutSent } from '@trackway/ledger';
import { type Receiver, startReceiver, waitFor } from '@trackway/testing';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { adminApi, createProgram } from './support/program';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
const receivers: Receiver[] = [];

beforeAll(async () => {
  stack = await startStack();
  stack.startAttribution();
  await stack.startDelivery();
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await stack.close();
});

const api = { get: (path: string) => adminApi(stack).get(path), post: (path: string, body?: object) => adminApi(stack).post(path, body) };
const setUp = (offer: Record<string, unknown> = {}) => createProgram(stack, offer);

describe('events reach subscribers', () => {
  it('delivers every event type from the real flows, each verified by standardwebhooks', async () => {
    const everything = await startReceiver();
    const gone = await startReceiver(() => ({ status: 410 }));
    receivers.push(everything, gone);
    const all = (await api.post('/v1/webhook-endpoints', { url: everything.url, event_types: ['*'] }).expect(201)).body;
    await api.post('/v1/webhook-endpoints', { url: gone.url, event_types: ['conversion.created'] }).expect(201);

    const { affiliate, postback } = await setUp({ amount_cap: '100', payout: { type: 'percent', percent: '10' } });
    // conversion.created, conversion.approved, commission.created, fraud.flagged (over the cap)…
    expect(await postback({ order_id: 'E-1', amount: '150.00' })).toMatchObject({ status: 'accepted' });
    // …conversion.rejected (a reversal)…
    expect(await postback({ order_id: 'E-1', amount: '150.00', status: 'rejected' })).toMatchObject({ status: 'accepted' });
    // …payout.sent…
    await postback({ order_id: 'E-2', amount: '20.00' });
    const payout = (await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(201)).body;
    await api.post(`/v1/payouts/${payout.id}/mark-sent`, { reference: 'WIRE-1' }).expect(200);
    // …conversion.updated and commission.updated (a later postback's amount)…
    await postback({ order_id: 'E-3', amount: '10.00' });
    expect(await postback({ order_id: 'E-3', amount: '30.00' })).toMatchObject({ status: 'accepted' });
    // …webhook.test; endpoint.disabled comes from the 410 endpoint.
    await api.post(`/v1/webhook-endpoints/${all.id}/test`).expect(202);

    const seen = await waitFor(
      () => {
        const types = new Set(everything.requests.map((r) => JSON.parse(r.body).type));
        return EVENT_TYPES.every((t) => types.has(t)) ? types : null;
      },
      { timeoutMs: 20_000, what: 'every event type' },
    );
    expect([...seen].sort()).toEqual([...EVENT_TYPES].sort());
    const hook = new Webhook(all.secret);
    for (const r of everything.requests) {
      const verified = hook.verify(r.body, r.headers as Record<string, string>) as { id: string; type: string; timestamp: string; data: object };
      expect(verified.id).toBe(r.headers['webhook-id']);
      expect(Object.keys(verified)).toEqual(['id', 'type', 'timestamp', 'data']);
      expect(new Date(verified.timestamp).toISOString()).toBe(verified.timestamp);
    }
    const flagged = everything.requests.map((r) => JSON.parse(r.body)).find((e) => e.type === 'fraud.flagged');
    expect(flagged.data.fraud_flag).toMatchObject({ rule: 'amount_over_cap' });
  });
});

describe('payouts', () => {
  it("gathers an affiliate's approved, unpaid commissions once, and marks the payout sent", async () => {
    const { affiliate, postback } = await setUp();
    await postback({ order_id: 'P-1' });
    await postback({ order_id: 'P-2' });
    await postback({ order_id: 'P-3', status: 'pending' });
    // A fixed payout is in the offer's currency (USD), whatever the order's currency.
    await postback({ order_id: 'P-4', currency: 'EUR' });
    const created = await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(201);
    expect(created.body).toMatchObject({
      id: expect.stringMatching(/^po_/),
      affiliate_id: affiliate.id,
      currency: 'USD',
      amount: '15.00',
      status: 'pending',
      reference: null,
    });
    expect(created.body.commission_ids).toHaveLength(3);
    // A commission belongs to at most one payout: nothing is left to gather.
    const again = await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(422);
    expect(again.body.error.code).toBe('no_commissions');
    await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'EUR' }).expect(422);

    const sent = await api.post(`/v1/payouts/${created.body.id}/mark-sent`, { reference: 'WIRE-42' }).expect(200);
    expect(sent.body).toMatchObject({ status: 'sent', reference: 'WIRE-42', sent_at: expect.any(String) });
    await api.post(`/v1/payouts/${created.body.id}/mark-sent`, { reference: 'WIRE-43' }).expect(409);
    const event = await stack.db.prisma.outboxEvent.findFirstOrThrow({ where: { type: 'payout.sent' }, orderBy: { createdAt: 'desc' } });
    expect((event.payload as { data: { payout: { id: string } } }).data.payout.id).toBe(created.body.id);
    const listed = await api.get(`/v1/payouts?affiliate_id=${affiliate.id}&status=sent`).expect(200);
    expect(listed.body.data.map((p: { id: string }) => p.id)).toEqual([created.body.id]);
    expect((await api.get(`/v1/payouts/${created.body.id}`).expect(200)).body.commission_ids).toEqual(created.body.commission_ids);
  });

  it("never lets a reversed conversion's commission into a payout", async () => {
    const { affiliate, postback } = await setUp();
    await postback({ order_id: 'R-1' });
    await postback({ order_id: 'R-2' });
    await postback({ order_id: 'R-1', status: 'rejected' });
    const payout = await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(201);
    expect(payout.body.commission_ids).toHaveLength(1);
    expect(payout.body.amount).toBe('5.00');
    // Reversed after gathering, while the payout is still pending: taken out, amount recomputed.
    await postback({ order_id: 'R-2', status: 'rejected' });
    const after = await api.get(`/v1/payouts/${payout.body.id}`).expect(200);
    expect(after.body).toMatchObject({ amount: '0.00', commission_ids: [] });
    const voided = await stack.db.prisma.commission.findMany({ where: { affiliateId: affiliate.id } });
    expect(voided.map((c) => [c.status, c.payoutId])).toEqual([
      ['voided', null],
      ['voided', null],
    ]);
  });

  it('never changes a payout being marked sent when a reversal races it', async () => {
    const { affiliate, postback } = await setUp();
    const first = await postback({ order_id: 'RACE-1' });
    await postback({ order_id: 'RACE-2' });
    const payout = (await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(201)).body;
    expect(payout.amount).toBe('10.00');
    // Mark it sent in a transaction held open, so the reversal arrives in the middle.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const marking = stack.db.prisma.$transaction(
      async (tx) => {
        const marked = await markPayoutSent(tx, payout.id, 'WIRE-RACE', new Date());
        await gate;
        return marked;
      },
      { timeout: 20_000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const reversal = request(stack.api).patch(`/v1/conversions/${first.conversion_id}`).set(stack.auth).send({ status: 'rejected' });
    const reversed = reversal.then((res) => res);
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    expect((await marking)?.payout.status).toBe('sent');
    expect((await reversed).status).toBe(200);
    const after = (await api.get(`/v1/payouts/${payout.id}`).expect(200)).body;
    expect(after).toMatchObject({ status: 'sent', amount: '10.00' });
    expect(after.commission_ids).toHaveLength(2);
  });

  it('pays commissions too large for one payout in several payouts, oldest first, never a 500', async () => {
    // Two of the largest amounts a postback may carry, at 100 %: their sum does not fit the
    // payouts.amount column (numeric(18,4)).
    const { affiliate, postback } = await setUp({ payout: { type: 'percent', percent: '100' } });
    const largest = '99999999999999.9999';
    await postback({ order_id: 'BIG-1', amount: largest });
    await postback({ order_id: 'BIG-2', amount: largest });
    await postback({ order_id: 'SMALL-3', amount: '1.00' });
    const commissions = await stack.db.prisma.commission.findMany({ where: { affiliateId: affiliate.id }, orderBy: { id: 'asc' } });
    expect(commissions.map((c) => c.amount.toString())).toEqual([largest, largest, '1']);

    const first = await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(201);
    expect(first.body).toMatchObject({ amount: largest, commission_ids: [commissions[0].id], has_more: true });
    const second = await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(201);
    expect(second.body).toMatchObject({ amount: largest, commission_ids: [commissions[1].id], has_more: true });
    const third = await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(201);
    expect(third.body).toMatchObject({ amount: '1.00', commission_ids: [commissions[2].id], has_more: false });
    await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(422);
    // Every cent is in exactly one payout.
    const paid = await stack.db.prisma.commission.findMany({ where: { affiliateId: affiliate.id } });
    expect(new Set(paid.map((c) => c.payoutId))).toEqual(new Set([first.body.id, second.body.id, third.body.id]));
  });

  it('answers 422 with nothing to pay, 400 for bad input and 404 for unknown payouts', async () => {
    const { affiliate } = await setUp();
    await api.post('/v1/payouts', { affiliate_id: affiliate.id, currency: 'USD' }).expect(422);
    expect((await api.post('/v1/payouts', { affiliate_id: 'x', currency: 'uſd' }).expect(400)).body.error.fields).toEqual({
      affiliate_id: expect.any(String),
      currency: expect.any(String),
    });
    await api.post('/v1/payouts', { affiliate_id: 999999, currency: 'USD' }).expect(400);
    await api.get('/v1/payouts/po_01J00000000000000000000000').expect(404);
    await api.post('/v1/payouts/po_01J00000000000000000000000/mark-sent', { reference: 'x' }).expect(404);
  });
});
