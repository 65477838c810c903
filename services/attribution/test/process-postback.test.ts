import { type Fixture, createFixture } from '@trackway/testing';
import { type AttributionHarness, again, postbackJob, processPostback, startAttribution } from './helpers';

let h: AttributionHarness;
beforeAll(async () => {
  h = await startAttribution();
});
afterAll(() => h.close());

const DAY = 86_400_000;

async function eventsOf(conversionOrPostback: { conversionId?: string | null; postbackId?: string }) {
  const rows = await h.db.prisma.outboxEvent.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
  return rows
    .map((r) => r.payload as { type: string; data: Record<string, { id?: string; conversion_id?: string; postback_id?: string }> })
    .filter((e) => {
      const d = e.data.conversion ?? e.data.commission ?? e.data.fraud_flag;
      return (
        (conversionOrPostback.conversionId && (d?.id === conversionOrPostback.conversionId || d?.conversion_id === conversionOrPostback.conversionId)) ||
        (conversionOrPostback.postbackId && d?.postback_id === conversionOrPostback.postbackId)
      );
    })
    .map((e) => e.type);
}

function click(fx: Fixture, ageMs = 60_000) {
  return h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - ageMs) });
}

describe('a new conversion', () => {
  it('records conversion, commission, outcome and events in one go (fixed payout)', async () => {
    const fx = await createFixture(h.db.prisma, { payoutAmount: '5.00' });
    const job = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), amount: '49.99' });
    const { outcome, events } = await processPostback(h.attribution, job);
    expect(outcome).toMatchObject({ status: 'accepted', reason: null, conversionId: expect.stringMatching(/^cnv_/) });
    const conversion = await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: outcome.conversionId! }, include: { commission: true } });
    expect(conversion).toMatchObject({ status: 'approved', affiliateId: fx.affiliateId, offerId: fx.offerId, currency: 'USD', holdReason: null });
    expect(conversion.amount.toString()).toBe('49.99');
    expect(conversion.commission).toMatchObject({ status: 'approved', currency: 'USD' });
    expect(conversion.commission!.amount.toString()).toBe('5');
    expect(events.map((e) => e.type)).toEqual(['conversion.created', 'conversion.approved', 'commission.created']);
    expect(events[0]).toMatchObject({
      id: expect.stringMatching(/^evt_/),
      timestamp: expect.any(String),
      data: { conversion: { amount: '49.99', payout: '5.00' } },
    });
    const postback = await h.db.prisma.postback.findUniqueOrThrow({ where: { id: job.postbackId } });
    expect(postback).toMatchObject({ status: 'accepted', conversionId: conversion.id });
    expect(await h.db.prisma.outboxEvent.count({ where: { id: { in: events.map((e) => e.id) } } })).toBe(3);
  });

  it('computes a percent payout exactly, in the conversion currency, defaulting to the offer currency', async () => {
    const fx = await createFixture(h.db.prisma, { payoutType: 'percent', payoutPercent: '12.5', currency: 'EUR' });
    const { outcome } = await processPostback(h.attribution, postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), amount: '0.10' }));
    const conversion = await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: outcome.conversionId! } });
    expect(conversion.currency).toBe('EUR');
    expect(conversion.payout.toString()).toBe('0.0125');
    const gbp = await processPostback(h.attribution, postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), amount: '19.99', currency: 'GBP' }));
    const c2 = await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: gbp.outcome.conversionId! } });
    expect([c2.currency, c2.payoutCurrency, c2.payout.toString()]).toEqual(['GBP', 'GBP', '2.4988']);
  });

  it('creates no commission for a zero payout or a rejected conversion', async () => {
    const fx = await createFixture(h.db.prisma, { payoutType: 'percent', payoutPercent: '10' });
    const zero = await processPostback(h.attribution, postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), amount: '0' }));
    expect(zero.events.map((e) => e.type)).toEqual(['conversion.created', 'conversion.approved']);
    const rejected = await processPostback(h.attribution, postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), status: 'rejected' }));
    expect(rejected.events.map((e) => e.type)).toEqual(['conversion.created', 'conversion.rejected']);
    expect(await h.db.prisma.commission.count({ where: { conversionId: { in: [zero.outcome.conversionId!, rejected.outcome.conversionId!] } } })).toBe(0);
  });
});

describe('rejections and fraud rules', () => {
  it('rejects a forged click as unknown_click, with a fraud flag and event but no conversion', async () => {
    const fx = await createFixture(h.db.prisma);
    const genuine = click(fx);
    const forged = genuine.slice(0, -2) + (genuine.endsWith('AA') ? 'BB' : 'AA');
    const job = postbackJob({ advertiserId: fx.advertiserId, clickId: forged });
    const { outcome, events } = await processPostback(h.attribution, job);
    expect(outcome).toEqual({ status: 'rejected', reason: 'unknown_click', conversionId: null });
    expect(events.map((e) => e.type)).toEqual(['fraud.flagged']);
    expect(await h.db.prisma.fraudFlag.findMany({ where: { postbackId: job.postbackId } })).toEqual([
      expect.objectContaining({ rule: 'unknown_click', conversionId: null }),
    ]);
    expect(await h.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId } })).toBe(0);
  });

  it("rejects a genuine click on another advertiser's offer as unknown_click", async () => {
    const mine = await createFixture(h.db.prisma);
    const theirs = await createFixture(h.db.prisma);
    const { outcome } = await processPostback(h.attribution, postbackJob({ advertiserId: mine.advertiserId, clickId: click(theirs) }));
    expect(outcome.reason).toBe('unknown_click');
  });

  it('rejects a click older than the attribution window as click_expired, measured at receipt', async () => {
    const fx = await createFixture(h.db.prisma, { attributionWindowDays: 7 });
    const old = click(fx, 8 * DAY);
    const { outcome } = await processPostback(h.attribution, postbackJob({ advertiserId: fx.advertiserId, clickId: old }));
    expect(outcome).toMatchObject({ status: 'rejected', reason: 'click_expired' });
    // Received inside the window but processed after a long queue backlog: still counts.
    const backlog = await processPostback(
      h.attribution,
      postbackJob({ advertiserId: fx.advertiserId, clickId: old, receivedAt: new Date(Date.now() - 2 * DAY).toISOString() }),
    );
    expect(backlog.outcome.status).toBe('accepted');
  });

  it('holds a conversion sooner than min_ctit_seconds pending, flagged ctit_too_short, and a repeat cannot approve it', async () => {
    const fx = await createFixture(h.db.prisma, { minCtitSeconds: 10 });
    const job = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx, 2_000) });
    const { outcome, events } = await processPostback(h.attribution, job);
    expect(outcome.status).toBe('accepted');
    const conversion = await h.db.prisma.conversion.findUniqueOrThrow({
      where: { id: outcome.conversionId! },
      include: { commission: true, fraudFlags: true },
    });
    expect(conversion).toMatchObject({ status: 'pending', holdReason: 'ctit_too_short' });
    expect(conversion.commission?.status).toBe('pending');
    expect(conversion.fraudFlags.map((f) => f.rule)).toEqual(['ctit_too_short']);
    expect(events.map((e) => e.type).sort()).toEqual(['commission.created', 'conversion.created', 'fraud.flagged']);
    const repeat = await processPostback(h.attribution, again(job));
    expect(repeat.outcome.status).toBe('duplicate');
    expect((await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: conversion.id } })).status).toBe('pending');
  });

  it('flags an amount over the offer cap as amount_over_cap and keeps the conversion', async () => {
    const fx = await createFixture(h.db.prisma, { amountCap: '1000' });
    const { outcome, events } = await processPostback(h.attribution, postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), amount: '1000.01' }));
    const conversion = await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: outcome.conversionId! }, include: { fraudFlags: true } });
    expect(conversion.status).toBe('approved');
    expect(conversion.fraudFlags).toEqual([expect.objectContaining({ rule: 'amount_over_cap', details: { amount: '1000.01', amount_cap: '1000' } })]);
    expect(events.map((e) => e.type)).toContain('fraud.flagged');
    const atCap = await processPostback(h.attribution, postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), amount: '1000' }));
    expect(await h.db.prisma.fraudFlag.count({ where: { conversionId: atCap.outcome.conversionId! } })).toBe(0);
  });
});

describe('repeats: duplicates and the status machine', () => {
  it('treats a repeat with the same status as a duplicate that writes no event', async () => {
    const fx = await createFixture(h.db.prisma);
    const first = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx) });
    const a = await processPostback(h.attribution, first);
    const b = await processPostback(h.attribution, again(first));
    expect(b.outcome).toEqual({ status: 'duplicate', reason: null, conversionId: a.outcome.conversionId });
    expect(b.events).toEqual([]);
  });

  it('moves pending → approved, then approved → rejected (a reversal that voids the commission)', async () => {
    const fx = await createFixture(h.db.prisma);
    const base = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), status: 'pending' });
    const created = await processPostback(h.attribution, base);
    const id = created.outcome.conversionId!;
    expect(created.events.map((e) => e.type)).toEqual(['conversion.created', 'commission.created']);

    const approve = await processPostback(h.attribution, again(base, { status: 'approved' }));
    expect(approve.outcome).toMatchObject({ status: 'accepted', conversionId: id });
    expect(approve.events.map((e) => [e.type, e.data.previous_status])).toEqual([['conversion.approved', 'pending']]);
    expect((await h.db.prisma.commission.findUniqueOrThrow({ where: { conversionId: id } })).status).toBe('approved');

    const reverse = await processPostback(h.attribution, again(base, { status: 'rejected' }));
    expect(reverse.events.map((e) => e.type)).toEqual(['conversion.rejected']);
    expect((await h.db.prisma.commission.findUniqueOrThrow({ where: { conversionId: id } })).status).toBe('voided');
    expect((await h.db.prisma.conversion.findUniqueOrThrow({ where: { id } })).status).toBe('rejected');
  });

  it('accepts a status change after the attribution window closed: only new conversions expire', async () => {
    const fx = await createFixture(h.db.prisma, { attributionWindowDays: 30 });
    const clickId = click(fx, 20 * DAY);
    const at = (daysAfterClick: number) => new Date(Date.now() - 20 * DAY + daysAfterClick * DAY).toISOString();
    const base = postbackJob({ advertiserId: fx.advertiserId, clickId, status: 'pending', receivedAt: at(0) });
    const created = await processPostback(h.attribution, base);
    expect(created.outcome.status).toBe('accepted');
    // 34 days after the click (4 days past the window): the advertiser approves, then refunds.
    const late = new Date(Date.now() + 14 * DAY).toISOString();
    const approve = await processPostback(h.attribution, again(base, { status: 'approved', receivedAt: late }));
    expect(approve.outcome).toMatchObject({ status: 'accepted', conversionId: created.outcome.conversionId });
    expect(approve.events.map((e) => e.type)).toEqual(['conversion.approved']);
    const refund = await processPostback(h.attribution, again(base, { status: 'rejected', receivedAt: late }));
    expect(refund.events.map((e) => e.type)).toEqual(['conversion.rejected']);
    expect((await h.db.prisma.commission.findUniqueOrThrow({ where: { conversionId: created.outcome.conversionId! } })).status).toBe('voided');
    expect(await h.db.prisma.fraudFlag.count({ where: { conversionId: created.outcome.conversionId! } })).toBe(0);
    // A new order on the same expired click is still refused.
    const fresh = await processPostback(h.attribution, postbackJob({ advertiserId: fx.advertiserId, clickId, receivedAt: late }));
    expect(fresh.outcome).toMatchObject({ status: 'rejected', reason: 'click_expired' });
  });

  it('rejects a transition the state machine forbids as invalid_transition', async () => {
    const fx = await createFixture(h.db.prisma);
    const base = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), status: 'rejected' });
    const created = await processPostback(h.attribution, base);
    const back = await processPostback(h.attribution, again(base, { status: 'approved' }));
    expect(back.outcome).toEqual({ status: 'rejected', reason: 'invalid_transition', conversionId: created.outcome.conversionId });
    expect(back.events).toEqual([]);
    expect((await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: created.outcome.conversionId! } })).status).toBe('rejected');
  });

  it('is idempotent by postback id: running one job twice changes nothing the second time', async () => {
    const fx = await createFixture(h.db.prisma);
    const job = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx) });
    const first = await processPostback(h.attribution, job);
    const outboxBefore = await h.db.prisma.outboxEvent.count();
    const again = await processPostback(h.attribution, job);
    expect(again).toEqual({ outcome: { status: 'accepted', reason: null, conversionId: first.outcome.conversionId }, events: [], replayed: true });
    expect(await h.db.prisma.outboxEvent.count()).toBe(outboxBefore);
    expect(await eventsOf({ conversionId: first.outcome.conversionId })).toEqual(['conversion.created', 'conversion.approved', 'commission.created']);
  });
});

describe('jobs queued by an earlier version (no v)', () => {
  const percent = () => createFixture(h.db.prisma, { payoutType: 'percent', payoutPercent: '10' });
  const conversion = (id: string | null) => h.db.prisma.conversion.findUniqueOrThrow({ where: { id: id! }, include: { commission: true } });

  it('reads their amount of 0 as none (that ingest filled 0 in for a missing amount): a status-only postback keeps the amount', async () => {
    const fx = await percent();
    const lead = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), amount: '10.00', status: 'pending', v: 2 });
    const first = await processPostback(h.attribution, lead);
    const approval = await processPostback(h.attribution, again(lead, { amount: '0', status: 'approved', v: undefined }));
    expect(approval.outcome).toMatchObject({ status: 'accepted', conversionStatus: 'approved' });
    const row = await conversion(first.outcome.conversionId);
    expect([row.status, row.amount.toString(), row.payout.toString(), row.commission?.amount.toString()]).toEqual(['approved', '10', '1', '1']);
  });

  it('applies an amount of 0 that a job of this version carries: it was sent', async () => {
    const fx = await percent();
    const lead = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), amount: '10.00', status: 'pending', v: 2 });
    const first = await processPostback(h.attribution, lead);
    await processPostback(h.attribution, again(lead, { amount: '0', v: 2 }));
    const row = await conversion(first.outcome.conversionId);
    expect([row.amount.toString(), row.payout.toString(), row.commission?.amount.toString()]).toEqual(['0', '0', '0']);
  });

  it('compares their event in lower case: Sale for an order converted as sale is a duplicate of it, not a second conversion', async () => {
    const fx = await percent();
    const sale = postbackJob({ advertiserId: fx.advertiserId, clickId: click(fx), event: 'sale', v: 2 });
    const first = await processPostback(h.attribution, sale);
    expect(first.outcome.status).toBe('accepted');
    // As an earlier version queued it: no `v` key at all, the event as the advertiser sent it.
    const legacy = postbackJob({ advertiserId: fx.advertiserId, clickId: sale.clickId, orderId: sale.orderId, event: 'Sale' });
    expect('v' in legacy).toBe(false);
    const repeat = await processPostback(h.attribution, legacy);
    expect(repeat.outcome).toEqual({ status: 'duplicate', reason: null, conversionId: first.outcome.conversionId });
    expect(repeat.events).toEqual([]);
    const rows = await h.db.prisma.conversion.findMany({ where: { advertiserId: fx.advertiserId, orderId: sale.orderId } });
    expect(rows.map((r) => [r.id, r.event])).toEqual([[first.outcome.conversionId, 'sale']]);
  });

  it('stores their unread parameters with anything shaped like a key or signing secret redacted', async () => {
    const fx = await percent();
    const job = postbackJob({
      advertiserId: fx.advertiserId,
      clickId: click(fx),
      ignoredParams: { api_key: fx.postbackKey, nested: { auth: `Bearer ${fx.postbackKey}`, kept: 'x' } },
    });
    await processPostback(h.attribution, job);
    const row = await h.db.prisma.postback.findUniqueOrThrow({ where: { id: job.postbackId } });
    expect(row.ignoredParams).toEqual({ api_key: '[redacted]', nested: { auth: '[redacted]', kept: 'x' } });
  });
});
