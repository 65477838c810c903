import {
  type AffiliateStanding,
  type ClickClaims,
  type CommissionState,
  type ConversionState,
  type OfferTerms,
  type PostbackFacts,
  conversionKey,
  conversionWrites,
  formatMoney,
  normalizeEvent,
  planBatch,
  planConversion,
  planReview,
} from '../src';

const DAY_MS = 86_400_000;
const now = new Date('2026-11-30T12:00:00.000Z');
const offer: OfferTerms = {
  id: 7,
  advertiserId: 1,
  currency: 'USD',
  payoutType: 'fixed',
  payoutAmount: '5',
  payoutPercent: null,
  attributionWindowDays: 30,
  minCtitSeconds: 10,
  amountCap: '1000',
  status: 'active',
};
const active: AffiliateStanding = { status: 'active' };
const click = (ageMs = 60_000): ClickClaims => ({ offerId: 7, affiliateId: 3, clickedAt: new Date(now.getTime() - ageMs) });
let n = 0;
const postback = (overrides: Partial<PostbackFacts> = {}): PostbackFacts => ({
  postbackId: `pb_01JD8Z6Q4Z2K9M1P5S3W7Y0${String(n++).padStart(3, '0')}`,
  advertiserId: 1,
  receivedAt: now,
  clickId: 'click-1',
  orderId: 'ORDER-1',
  event: 'conversion',
  amount: '49.90',
  status: 'approved',
  ...overrides,
});
const commission = (overrides: Partial<CommissionState> = {}): CommissionState => ({
  id: 'com_01JD8Z6Q5XG1S7C2W9E4K8M3PA',
  conversionId: 'cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC',
  affiliateId: 3,
  amount: '5.0000',
  currency: 'USD',
  status: 'pending',
  createdAt: new Date(now.getTime() - DAY_MS),
  payoutId: null,
  payoutSent: false,
  ...overrides,
});
const existing = (overrides: Partial<ConversionState> = {}): ConversionState => ({
  id: 'cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC',
  advertiserId: 1,
  offerId: 7,
  affiliateId: 3,
  clickId: 'click-1',
  orderId: 'ORDER-1',
  event: 'conversion',
  status: 'pending',
  holdReason: null,
  amount: '49.9000',
  currency: 'USD',
  payout: '5.0000',
  payoutCurrency: 'USD',
  clickedAt: new Date(now.getTime() - 60_000),
  createdAt: new Date(now.getTime() - DAY_MS),
  updatedAt: new Date(now.getTime() - DAY_MS),
  fraudFlags: [],
  // As stored: a conversion that is not rejected and earns a payout has its commission.
  commission: overrides.status === 'rejected' ? null : commission({ status: overrides.status === 'approved' ? 'approved' : 'pending' }),
  ...overrides,
});
const types = (events: { type: string }[]) => events.map((e) => e.type);

describe('planConversion: a new order', () => {
  type Case = [
    string,
    { postback?: Partial<PostbackFacts>; offer?: Partial<OfferTerms>; clickAgeMs?: number },
    { status: string; holdReason: string | null; commission: string | null; events: string[]; flags: string[] },
  ];
  const cases: Case[] = [
    [
      'approved, fixed payout',
      {},
      { status: 'approved', holdReason: null, commission: 'approved', events: ['conversion.created', 'conversion.approved', 'commission.created'], flags: [] },
    ],
    [
      'pending',
      { postback: { status: 'pending' } },
      { status: 'pending', holdReason: null, commission: 'pending', events: ['conversion.created', 'commission.created'], flags: [] },
    ],
    [
      'rejected: no commission',
      { postback: { status: 'rejected' } },
      { status: 'rejected', holdReason: null, commission: null, events: ['conversion.created', 'conversion.rejected'], flags: [] },
    ],
    [
      'zero payout: no commission',
      { offer: { payoutType: 'percent', payoutAmount: null, payoutPercent: '10' }, postback: { amount: '0' } },
      { status: 'approved', holdReason: null, commission: null, events: ['conversion.created', 'conversion.approved'], flags: [] },
    ],
    [
      'CTIT too short: held pending',
      { clickAgeMs: 3_000 },
      {
        status: 'pending',
        holdReason: 'ctit_too_short',
        commission: 'pending',
        events: ['conversion.created', 'fraud.flagged', 'commission.created'],
        flags: ['ctit_too_short'],
      },
    ],
    [
      'CTIT too short but rejected: not held',
      { clickAgeMs: 3_000, postback: { status: 'rejected' } },
      {
        status: 'rejected',
        holdReason: null,
        commission: null,
        events: ['conversion.created', 'fraud.flagged', 'conversion.rejected'],
        flags: ['ctit_too_short'],
      },
    ],
    [
      'over the cap: flagged, kept',
      { postback: { amount: '1000.01' } },
      {
        status: 'approved',
        holdReason: null,
        commission: 'approved',
        events: ['conversion.created', 'fraud.flagged', 'conversion.approved', 'commission.created'],
        flags: ['amount_over_cap'],
      },
    ],
  ];

  it.each(cases)('%s', (_name, input, expected) => {
    const plan = planConversion({
      postback: postback(input.postback),
      click: click(input.clickAgeMs),
      offer: { ...offer, ...input.offer },
      affiliate: active,
      existing: null,
      now,
    });
    expect(plan.outcome).toEqual({ status: 'accepted', reason: null, conversionId: plan.after!.id, conversionStatus: expected.status });
    expect(plan.after).toMatchObject({
      status: expected.status,
      holdReason: expected.holdReason,
      affiliateId: 3,
      offerId: 7,
      fraudFlags: expected.flags,
      createdAt: now,
    });
    expect(plan.after!.commission?.status ?? null).toBe(expected.commission);
    expect(types(plan.events)).toEqual(expected.events);
    expect(plan.fraudFlags.map((f) => [f.rule, f.conversionId])).toEqual(expected.flags.map((rule) => [rule, plan.after!.id]));
  });

  it('computes a percent payout in the conversion currency, defaulting to the offer currency', () => {
    const percent = { ...offer, payoutType: 'percent' as const, payoutAmount: null, payoutPercent: '12.5', currency: 'EUR' };
    const eur = planConversion({ postback: postback({ amount: '0.10' }), click: click(), offer: percent, affiliate: active, existing: null, now });
    expect(eur.after).toMatchObject({ currency: 'EUR', payout: '0.0125', payoutCurrency: 'EUR' });
    const gbp = planConversion({
      postback: postback({ amount: '19.99', currency: 'GBP' }),
      click: click(),
      offer: percent,
      affiliate: active,
      existing: null,
      now,
    });
    expect(gbp.after).toMatchObject({ currency: 'GBP', payout: '2.4988', payoutCurrency: 'GBP' });
    // A fixed payout is in the offer's currency, whatever the order's.
    const fixed = planConversion({ postback: postback({ currency: 'GBP' }), click: click(), offer, affiliate: active, existing: null, now });
    expect(fixed.after!.commission).toMatchObject({ amount: '5', currency: 'USD' });
  });

  it('records a postback without an amount as 0: a lead', () => {
    const percent = { ...offer, payoutType: 'percent' as const, payoutAmount: null, payoutPercent: '10' };
    const plan = planConversion({
      postback: postback({ amount: undefined, status: 'pending' }),
      click: click(),
      offer: percent,
      affiliate: active,
      existing: null,
      now,
    });
    expect(plan.after).toMatchObject({ amount: '0', payout: '0', commission: null });
  });

  it('shows the conversion in its events as created: money as decimal strings, flags by rule', () => {
    const plan = planConversion({ postback: postback({ amount: '1500' }), click: click(), offer, affiliate: active, existing: null, now });
    expect(plan.events[0].data).toMatchObject({
      conversion: { amount: '1500.00', payout: '5.00', status: 'approved', fraud_flags: ['amount_over_cap'], created_at: now.toISOString() },
    });
    expect(plan.events[2].data).toMatchObject({ previous_status: null });
    for (const event of plan.events) expect(event).toMatchObject({ id: expect.stringMatching(/^evt_[0-9A-Z]{26}$/), timestamp: now.toISOString() });
  });
});

describe('planConversion: refused', () => {
  const cases: Array<[string, ClickClaims | null, OfferTerms | null, string]> = [
    ['a forged click', null, offer, 'unknown_click'],
    ['a click whose offer does not exist', click(), null, 'unknown_click'],
    ["another advertiser's offer", click(), { ...offer, advertiserId: 2 }, 'unknown_click'],
    ['a click older than the window', click(31 * DAY_MS), offer, 'click_expired'],
  ];
  it.each(cases)('%s → rejected, flagged, no conversion', (_name, claims, terms, reason) => {
    const plan = planConversion({ postback: postback(), click: claims, offer: terms, affiliate: active, existing: null, now });
    expect(plan.outcome).toEqual({ status: 'rejected', reason, conversionId: null });
    expect(plan.fraudFlags.map((f) => [f.rule, f.conversionId])).toEqual([[reason, null]]);
    expect(types(plan.events)).toEqual(['fraud.flagged']);
    expect(plan.after).toBeNull();
  });

  it('refuses an unknown click even when the order exists: it is never attributed to anything', () => {
    const before = existing();
    const plan = planConversion({ postback: postback(), click: null, offer, affiliate: active, existing: before, now });
    expect(plan.outcome).toEqual({ status: 'rejected', reason: 'unknown_click', conversionId: null });
    expect(plan.after).toBe(before);
  });
});

describe('planConversion: a repeat of an existing order', () => {
  const cases: Array<[string, Partial<ConversionState>, PostbackFacts['status'], string, string | null, string[]]> = [
    ['same status', { status: 'approved' }, 'approved', 'duplicate', null, []],
    ['pending → approved', { status: 'pending' }, 'approved', 'accepted', null, ['conversion.approved']],
    ['pending → rejected', { status: 'pending' }, 'rejected', 'accepted', null, ['conversion.rejected']],
    ['approved → rejected (a reversal)', { status: 'approved' }, 'rejected', 'accepted', null, ['conversion.rejected']],
    ['rejected → approved', { status: 'rejected' }, 'approved', 'rejected', 'invalid_transition', []],
    ['approved → pending', { status: 'approved' }, 'pending', 'rejected', 'invalid_transition', []],
    ['held pending → approved by the advertiser', { status: 'pending', holdReason: 'ctit_too_short' }, 'approved', 'duplicate', null, []],
    ['held pending → rejected', { status: 'pending', holdReason: 'ctit_too_short' }, 'rejected', 'accepted', null, ['conversion.rejected']],
  ];
  it.each(cases)('%s', (_name, current, requested, status, reason, events) => {
    const before = existing(current);
    const plan = planConversion({
      postback: postback({ status: requested, amount: undefined }),
      click: click(),
      offer,
      affiliate: active,
      existing: before,
      now,
    });
    expect(plan.outcome).toMatchObject({ status, reason, conversionId: before.id });
    expect(types(plan.events)).toEqual(events);
    expect(plan.fraudFlags).toEqual([]);
    if (status === 'accepted') {
      expect(plan.after).toMatchObject({ id: before.id, status: requested, holdReason: before.holdReason, updatedAt: now });
      expect(plan.events[0].data).toMatchObject({ previous_status: before.status, conversion: { id: before.id, status: requested } });
    } else {
      expect(plan.after).toBe(before);
    }
  });

  it('accepts a status change after the window closed: only new conversions expire', () => {
    const plan = planConversion({
      postback: postback({ status: 'approved' }),
      click: click(40 * DAY_MS),
      offer,
      affiliate: active,
      existing: existing({ status: 'pending' }),
      now,
    });
    expect(plan.outcome.status).toBe('accepted');
    expect(plan.fraudFlags).toEqual([]);
  });

  it("keeps the conversion's fraud flags in its JSON", () => {
    const plan = planConversion({
      postback: postback({ status: 'rejected', amount: undefined }),
      click: click(),
      offer,
      affiliate: active,
      existing: existing({ status: 'approved', fraudFlags: ['amount_over_cap'] }),
      now,
    });
    expect(plan.events[0].data).toMatchObject({ conversion: { fraud_flags: ['amount_over_cap'], amount: '49.90', payout: '5.00' } });
  });
});

describe('planBatch', () => {
  const verified = () => click();
  const plan = (postbacks: PostbackFacts[], known: ConversionState[] = []) =>
    planBatch({ postbacks, click: verified, offer: () => offer, affiliate: () => active, existing: new Map(known.map((c) => [conversionKey(c), c])), now });

  it('decides a creation, a status change, a reversal and an invalid transition of one order in queue order', () => {
    const batch = plan([postback({ status: 'pending' }), postback({ status: 'approved' }), postback({ status: 'rejected' }), postback({ status: 'approved' })]);
    expect(batch.plans.map((p) => [p.outcome.status, p.outcome.reason])).toEqual([
      ['accepted', null],
      ['accepted', null],
      ['accepted', null],
      ['rejected', 'invalid_transition'],
    ]);
    const id = batch.plans[0].outcome.conversionId;
    expect(new Set(batch.plans.map((p) => p.outcome.conversionId))).toEqual(new Set([id]));
    // One row, inserted in its final state; its commission follows it.
    expect(batch.newConversions).toEqual([expect.objectContaining({ id, status: 'rejected' })]);
    expect(batch.newCommissions).toEqual([expect.objectContaining({ conversionId: id, status: 'voided' })]);
    expect(batch.changedConversions).toEqual([]);
    expect(batch.reversed).toEqual([]);
    expect(types(batch.events)).toEqual(['conversion.created', 'commission.created', 'conversion.approved', 'conversion.rejected']);
    expect(batch.events[2].data).toMatchObject({ previous_status: 'pending' });
    expect(batch.events[3].data).toMatchObject({ previous_status: 'approved' });
  });

  it('makes copies of one postback one conversion and duplicates', () => {
    const first = postback();
    const batch = plan([first, { ...first, postbackId: postback().postbackId }, { ...first, postbackId: postback().postbackId }]);
    expect(batch.plans.map((p) => p.outcome.status)).toEqual(['accepted', 'duplicate', 'duplicate']);
    expect(batch.newConversions).toHaveLength(1);
    expect(batch.newCommissions).toHaveLength(1);
    expect(types(batch.events)).toEqual(['conversion.created', 'conversion.approved', 'commission.created']);
  });

  it('folds several changes of an existing conversion into its final status, and marks a reversal', () => {
    const known = existing({ status: 'pending', commission: commission() });
    const batch = plan([postback({ status: 'approved' }), postback({ status: 'approved' }), postback({ status: 'rejected' })], [known]);
    expect(batch.plans.map((p) => p.outcome.status)).toEqual(['accepted', 'duplicate', 'accepted']);
    expect(batch.newConversions).toEqual([]);
    expect(batch.changedConversions).toEqual([expect.objectContaining({ id: known.id, status: 'rejected', updatedAt: now })]);
    expect(batch.changedCommissions).toEqual([expect.objectContaining({ id: known.commission!.id, status: 'voided', amount: '5' })]);
    expect(batch.commissionsAsRead).toEqual([{ id: known.commission!.id, payoutId: null, payoutSent: false }]);
    expect(batch.reversed).toEqual([known.id]);
  });

  it('treats a late postback for an order created earlier in the batch as a repeat, not as expired', () => {
    const created = postback({ status: 'pending' });
    const late = postback({ status: 'approved', receivedAt: new Date(now.getTime() + 40 * DAY_MS) });
    const batch = plan([created, late]);
    expect(batch.plans.map((p) => p.outcome.status)).toEqual(['accepted', 'accepted']);
    expect(batch.newConversions).toEqual([expect.objectContaining({ status: 'approved' })]);
  });

  it('keeps orders apart, and sorts new rows by their unique key (so concurrent batches never deadlock)', () => {
    const batch = plan([postback({ orderId: 'B' }), postback({ orderId: 'A' }), postback({ orderId: 'C', event: 'lead' }), postback({ orderId: 'C' })]);
    expect(batch.plans.map((p) => p.outcome.status)).toEqual(['accepted', 'accepted', 'accepted', 'accepted']);
    const keys = batch.newConversions.map((c) => conversionKey(c));
    expect(keys).toEqual([...keys].sort());
    expect(batch.newConversions.map((c) => `${c.orderId}/${c.event}`)).toEqual(['A/conversion', 'B/conversion', 'C/conversion', 'C/lead']);
    // Events stay in queue order.
    expect(
      batch.events.filter((e) => e.type === 'conversion.created').map((e) => (e.data as { conversion: { order_id: string } }).conversion.order_id),
    ).toEqual(['B', 'A', 'C', 'C']);
  });

  it('records rejected postbacks with their flags and no conversion', () => {
    const forged = postback({ orderId: 'X' });
    const batch = planBatch({
      postbacks: [postback(), forged],
      click: (p) => (p.orderId === 'X' ? null : click()),
      offer: () => offer,
      affiliate: () => active,
      existing: new Map(),
      now,
    });
    expect(batch.plans.map((p) => [p.outcome.status, p.outcome.reason])).toEqual([
      ['accepted', null],
      ['rejected', 'unknown_click'],
    ]);
    expect(batch.fraudFlags.map((f) => [f.rule, f.postbackId])).toEqual([['unknown_click', forged.postbackId]]);
    expect(batch.newConversions).toHaveLength(1);
  });
});

describe('planConversion: a later amount', () => {
  const percent: OfferTerms = { ...offer, payoutType: 'percent', payoutAmount: null, payoutPercent: '10', amountCap: null };
  const repeat = (current: Partial<ConversionState>, sent: Partial<PostbackFacts>, terms: OfferTerms = percent) =>
    planConversion({ postback: postback(sent), click: click(), offer: terms, affiliate: active, existing: existing(current), now });
  type Case = [
    string,
    { current: Partial<ConversionState>; sent: Partial<PostbackFacts>; terms?: OfferTerms },
    {
      outcome: [string, string | null];
      events: string[];
      conversion?: { status: string; amount: string; payout: string };
      commission?: { amount: string; status: string } | null;
    },
  ];
  const tenPercent = { amount: '10.0000', payout: '1.0000' };
  const cases: Case[] = [
    [
      'pending 10.00 then approved 100.00 on a 10 % offer: amount, payout and commission follow',
      { current: { ...tenPercent, commission: commission({ amount: '1.0000' }) }, sent: { amount: '100.00', status: 'approved' } },
      {
        outcome: ['accepted', null],
        events: ['conversion.updated', 'conversion.approved', 'commission.updated'],
        conversion: { status: 'approved', amount: '100', payout: '10' },
        commission: { amount: '10', status: 'approved' },
      },
    ],
    [
      'a lead at 0 then the sale at 50.00: the commission is created',
      { current: { amount: '0.0000', payout: '0.0000', commission: null }, sent: { amount: '50.00', status: 'approved' } },
      {
        outcome: ['accepted', null],
        events: ['conversion.updated', 'conversion.approved', 'commission.created'],
        conversion: { status: 'approved', amount: '50', payout: '5' },
        commission: { amount: '5', status: 'approved' },
      },
    ],
    [
      'the same status with a new amount is an update, not a duplicate',
      { current: { status: 'approved', ...tenPercent, commission: commission({ amount: '1.0000', status: 'approved' }) }, sent: { amount: '12.50' } },
      {
        outcome: ['accepted', null],
        events: ['conversion.updated', 'commission.updated'],
        conversion: { status: 'approved', amount: '12.5', payout: '1.25' },
        commission: { amount: '1.25', status: 'approved' },
      },
    ],
    [
      'created at 10 % (10.00 paid 1.00), the offer now at 20 %: a new 100.00 pays the current percent, 20.00, not the stored ratio',
      {
        current: { status: 'approved', ...tenPercent, commission: commission({ amount: '1.0000', status: 'approved' }) },
        sent: { amount: '100.00' },
        terms: { ...percent, payoutPercent: '20' },
      },
      {
        outcome: ['accepted', null],
        events: ['conversion.updated', 'commission.updated'],
        conversion: { status: 'approved', amount: '100', payout: '20' },
        commission: { amount: '20', status: 'approved' },
      },
    ],
    [
      'the same amount written another way is a duplicate',
      { current: { status: 'approved', ...tenPercent }, sent: { amount: '10.0' } },
      { outcome: ['duplicate', null], events: [] },
    ],
    [
      'no amount changes no amount',
      { current: { ...tenPercent, commission: commission({ amount: '1.0000' }) }, sent: { amount: undefined, status: 'approved' } },
      {
        outcome: ['accepted', null],
        events: ['conversion.approved'],
        conversion: { status: 'approved', amount: '10.0000', payout: '1.0000' },
        commission: { amount: '1', status: 'approved' },
      },
    ],
    [
      'a fixed offer keeps its payout: the amount changes, the commission does not',
      { current: { status: 'approved' }, sent: { amount: '99.00' }, terms: offer },
      {
        outcome: ['accepted', null],
        events: ['conversion.updated'],
        conversion: { status: 'approved', amount: '99', payout: '5' },
        commission: { amount: '5.0000', status: 'approved' },
      },
    ],
    [
      'a commission in a sent payout: amount_locked, nothing applied',
      {
        current: { status: 'approved', ...tenPercent, commission: commission({ amount: '1.0000', status: 'approved', payoutId: 'po_1', payoutSent: true }) },
        sent: { amount: '20.00' },
      },
      { outcome: ['rejected', 'amount_locked'], events: [] },
    ],
    [
      'a commission in a payout not yet sent moves with it',
      {
        current: { status: 'approved', ...tenPercent, commission: commission({ amount: '1.0000', status: 'approved', payoutId: 'po_1', payoutSent: false }) },
        sent: { amount: '20.00' },
      },
      {
        outcome: ['accepted', null],
        events: ['conversion.updated', 'commission.updated'],
        conversion: { status: 'approved', amount: '20', payout: '2' },
        commission: { amount: '2', status: 'approved' },
      },
    ],
    [
      'a paid commission whose amount would not move: the status change applies (a reversal after payout)',
      { current: { status: 'approved', commission: commission({ status: 'approved', payoutId: 'po_1', payoutSent: true }) }, sent: { status: 'rejected' } },
      {
        outcome: ['accepted', null],
        events: ['conversion.rejected'],
        conversion: { status: 'rejected', amount: '49.9000', payout: '5.0000' },
        commission: { amount: '5', status: 'voided' },
      },
    ],
    [
      "another currency than the conversion's: currency_mismatch, nothing applied",
      { current: { ...tenPercent }, sent: { amount: '100.00', currency: 'EUR' } },
      { outcome: ['rejected', 'currency_mismatch'], events: [] },
    ],
    [
      'a refund carrying 0 after the payout was sent: the reversal applies, the amount stays as recorded',
      {
        current: { status: 'approved', ...tenPercent, commission: commission({ amount: '1.0000', status: 'approved', payoutId: 'po_1', payoutSent: true }) },
        sent: { amount: '0', status: 'rejected' },
      },
      {
        outcome: ['accepted', null],
        events: ['conversion.rejected'],
        conversion: { status: 'rejected', amount: '10.0000', payout: '1.0000' },
        commission: { amount: '1', status: 'voided' },
      },
    ],
    [
      'a rejection in another currency: its status applies (no amount is)',
      { current: { ...tenPercent, commission: commission({ amount: '1.0000' }) }, sent: { amount: '10.00', currency: 'EUR', status: 'rejected' } },
      { outcome: ['accepted', null], events: ['conversion.rejected'], conversion: { status: 'rejected', amount: '10.0000', payout: '1.0000' } },
    ],
    [
      'a currency without an amount changes nothing and refuses nothing',
      { current: { status: 'approved', ...tenPercent }, sent: { amount: undefined, currency: 'EUR' } },
      { outcome: ['duplicate', null], events: [] },
    ],
    [
      'an invalid transition with a new amount: refused, nothing applied',
      { current: { status: 'rejected', ...tenPercent }, sent: { amount: '100.00', status: 'approved' } },
      { outcome: ['rejected', 'invalid_transition'], events: [] },
    ],
  ];

  it.each(cases)('%s', (_name, input, expected) => {
    const before = existing(input.current);
    const plan = repeat(input.current, input.sent, input.terms);
    expect([plan.outcome.status, plan.outcome.reason]).toEqual(expected.outcome);
    expect(types(plan.events)).toEqual(expected.events);
    if (!expected.conversion) {
      expect(plan.after).toStrictEqual(before);
      return;
    }
    expect(plan.after).toMatchObject(expected.conversion);
    if (expected.commission === null) expect(plan.after!.commission).toBeNull();
    else if (expected.commission) expect(plan.after!.commission).toMatchObject({ ...expected.commission, currency: 'USD', conversionId: before.id });
    const updated = plan.events.find((e) => e.type === 'conversion.updated');
    if (updated) {
      expect(updated.data).toMatchObject({
        previous_amount: formatMoney(before.amount),
        previous_payout: formatMoney(before.payout),
        conversion: { amount: formatMoney(plan.after!.amount), status: plan.after!.status },
      });
    }
    const commissionUpdated = plan.events.find((e) => e.type === 'commission.updated');
    if (commissionUpdated) expect(commissionUpdated.data).toMatchObject({ previous_amount: formatMoney(before.commission!.amount) });
  });

  it('flags a new amount above the cap once', () => {
    const capped = { ...percent, amountCap: '100' };
    const over = repeat({ status: 'approved' }, { amount: '150.00' }, capped);
    expect(over.fraudFlags.map((f) => [f.rule, f.conversionId])).toEqual([['amount_over_cap', 'cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC']]);
    expect(types(over.events)).toEqual(['conversion.updated', 'commission.updated', 'fraud.flagged']);
    expect(over.after!.fraudFlags).toEqual(['amount_over_cap']);
    const again = repeat({ status: 'approved', amount: '150.0000', fraudFlags: ['amount_over_cap'] }, { amount: '160.00' }, capped);
    expect(again.fraudFlags).toEqual([]);
  });
});

describe('planConversion: an inactive affiliate or offer', () => {
  const inactive: AffiliateStanding = { status: 'inactive' };
  it.each([
    ['an inactive affiliate', inactive, offer, 'affiliate_inactive', 'inactive_affiliate'],
    ['an affiliate that no longer exists', null, offer, 'affiliate_inactive', 'inactive_affiliate'],
    ['an inactive offer', active, { ...offer, status: 'inactive' as const }, 'offer_inactive', 'inactive_offer'],
  ])('%s: a new conversion is recorded, held pending, flagged', (_name, affiliate, terms, holdReason, rule) => {
    const plan = planConversion({ postback: postback(), click: click(), offer: terms, affiliate, existing: null, now });
    expect(plan.outcome).toMatchObject({ status: 'accepted', conversionStatus: 'pending' });
    expect(plan.after).toMatchObject({ status: 'pending', holdReason, fraudFlags: [rule] });
    expect(plan.after!.commission).toMatchObject({ status: 'pending' });
    expect(types(plan.events)).toEqual(['conversion.created', 'fraud.flagged', 'commission.created']);
  });

  it("holds an advertiser's approval of a pending conversion instead of applying it, once", () => {
    const plan = planConversion({ postback: postback({ amount: undefined }), click: click(), offer, affiliate: inactive, existing: existing(), now });
    expect(plan.outcome).toEqual({ status: 'accepted', reason: null, conversionId: existing().id });
    expect(plan.after).toMatchObject({ status: 'pending', holdReason: 'affiliate_inactive', fraudFlags: ['inactive_affiliate'] });
    expect(types(plan.events)).toEqual(['fraud.flagged']);
    const again = planConversion({ postback: postback({ amount: undefined }), click: click(), offer, affiliate: inactive, existing: plan.after, now });
    expect(again.outcome.status).toBe('duplicate');
  });

  it('lets a reversal and an amount through: only approvals are held', () => {
    const reversal = planConversion({
      postback: postback({ status: 'rejected', amount: undefined }),
      click: click(),
      offer,
      affiliate: inactive,
      existing: existing({ status: 'approved' }),
      now,
    });
    expect(reversal.after).toMatchObject({ status: 'rejected', holdReason: null });
  });
});

describe('planReview', () => {
  it.each([
    [
      'approves a held conversion, releasing the hold',
      { status: 'pending' as const, holdReason: 'ctit_too_short' },
      'approved' as const,
      'changed',
      ['conversion.approved'],
    ],
    ['rejects an approved one (a reversal)', { status: 'approved' as const }, 'rejected' as const, 'changed', ['conversion.rejected']],
    ['leaves one already in that status', { status: 'approved' as const }, 'approved' as const, 'unchanged', []],
    ['refuses rejected → approved', { status: 'rejected' as const }, 'approved' as const, 'invalid_transition', []],
  ])('%s', (_name, current, to, kind, events) => {
    const review = planReview(existing(current), to, now);
    expect(review.kind).toBe(kind);
    if (review.kind === 'changed') {
      expect(review.after).toMatchObject({ status: to, holdReason: null, updatedAt: now });
      expect(review.after.commission!.status).toBe(to === 'approved' ? 'approved' : 'voided');
      expect(types(review.events)).toEqual(events);
    }
  });
});

describe('conversionWrites', () => {
  it('writes each row once in its final state, and reprices the payouts not yet sent that hold a commission whose amount moved', () => {
    const inPending = existing({
      id: 'cnv_A',
      orderId: 'A',
      status: 'approved',
      commission: commission({ id: 'com_A', status: 'approved', payoutId: 'po_P' }),
    });
    const reversed = existing({ id: 'cnv_B', orderId: 'B', status: 'approved', commission: commission({ id: 'com_B', status: 'approved', payoutId: 'po_Q' }) });
    const untouched = existing({ id: 'cnv_C', orderId: 'C' });
    const before = new Map([inPending, reversed, untouched].map((c) => [conversionKey(c), c]));
    const after = new Map<string, ConversionState | null>([
      [conversionKey(inPending), { ...inPending, amount: '60', payout: '6', commission: { ...inPending.commission!, amount: '6' } }],
      [conversionKey(reversed), { ...reversed, status: 'rejected', commission: { ...reversed.commission!, status: 'voided' } }],
      [conversionKey(untouched), untouched],
    ]);
    const writes = conversionWrites(before, after, []);
    expect(writes.newConversions).toEqual([]);
    expect(writes.changedConversions.map((c) => c.id)).toEqual(['cnv_A', 'cnv_B']);
    expect(writes.changedCommissions.map((c) => [c.id, c.amount, c.status])).toEqual([
      ['com_A', '6', 'approved'],
      ['com_B', '5.0000', 'voided'],
    ]);
    expect(writes.commissionsAsRead).toEqual([
      { id: 'com_A', payoutId: 'po_P', payoutSent: false },
      { id: 'com_B', payoutId: 'po_Q', payoutSent: false },
    ]);
    expect(writes.reversed).toEqual(['cnv_B']);
    expect(writes.repricedPayouts).toEqual(['po_P']);
  });
});

describe('normalizeEvent', () => {
  it.each([
    ['sale', 'sale'],
    ['Sale', 'sale'],
    ['SALE', 'sale'],
    ['Goal_2.step-1:ok', 'goal_2.step-1:ok'],
  ])('%s → %s', (sent, normal) => {
    expect(normalizeEvent(sent)).toBe(normal);
  });

  it('makes sale, Sale and SALE one conversion in a batch', () => {
    const batch = planBatch({
      postbacks: ['sale', 'Sale', 'SALE'].map((event) => postback({ event: normalizeEvent(event) })),
      click: () => click(),
      offer: () => offer,
      affiliate: () => active,
      existing: new Map(),
      now,
    });
    expect(batch.plans.map((p) => p.outcome.status)).toEqual(['accepted', 'duplicate', 'duplicate']);
    expect(batch.newConversions.map((c) => c.event)).toEqual(['sale']);
  });
});
