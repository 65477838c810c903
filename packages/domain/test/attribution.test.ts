import { type ClickClaims, type ConversionState, type OfferTerms, type PostbackFacts, conversionKey, planBatch, planConversion } from '../src';

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
};
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
      existing: null,
      now,
    });
    expect(plan.outcome).toEqual({ status: 'accepted', reason: null, conversionId: plan.created!.conversion.id, conversionStatus: expected.status });
    expect(plan.created!.conversion).toMatchObject({
      status: expected.status,
      holdReason: expected.holdReason,
      affiliateId: 3,
      offerId: 7,
      fraudFlags: expected.flags,
      createdAt: now,
    });
    expect(plan.created!.commission?.status ?? null).toBe(expected.commission);
    expect(types(plan.events)).toEqual(expected.events);
    expect(plan.fraudFlags.map((f) => [f.rule, f.conversionId])).toEqual(expected.flags.map((rule) => [rule, plan.created!.conversion.id]));
    expect(plan.after).toBe(plan.created!.conversion);
  });

  it('computes a percent payout in the conversion currency, defaulting to the offer currency', () => {
    const percent = { ...offer, payoutType: 'percent' as const, payoutAmount: null, payoutPercent: '12.5', currency: 'EUR' };
    const eur = planConversion({ postback: postback({ amount: '0.10' }), click: click(), offer: percent, existing: null, now });
    expect(eur.created!.conversion).toMatchObject({ currency: 'EUR', payout: '0.0125', payoutCurrency: 'EUR' });
    const gbp = planConversion({ postback: postback({ amount: '19.99', currency: 'GBP' }), click: click(), offer: percent, existing: null, now });
    expect(gbp.created!.conversion).toMatchObject({ currency: 'GBP', payout: '2.4988', payoutCurrency: 'GBP' });
    // A fixed payout is in the offer's currency, whatever the order's.
    const fixed = planConversion({ postback: postback({ currency: 'GBP' }), click: click(), offer, existing: null, now });
    expect(fixed.created!.commission).toMatchObject({ amount: '5', currency: 'USD' });
  });

  it('shows the conversion in its events as created: money as decimal strings, flags by rule', () => {
    const plan = planConversion({ postback: postback({ amount: '1500' }), click: click(), offer, existing: null, now });
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
    const plan = planConversion({ postback: postback(), click: claims, offer: terms, existing: null, now });
    expect(plan.outcome).toEqual({ status: 'rejected', reason, conversionId: null });
    expect(plan.created).toBeUndefined();
    expect(plan.fraudFlags.map((f) => [f.rule, f.conversionId])).toEqual([[reason, null]]);
    expect(types(plan.events)).toEqual(['fraud.flagged']);
    expect(plan.after).toBeNull();
  });

  it('refuses an unknown click even when the order exists: it is never attributed to anything', () => {
    const plan = planConversion({ postback: postback(), click: null, offer, existing: existing(), now });
    expect(plan.outcome).toEqual({ status: 'rejected', reason: 'unknown_click', conversionId: null });
    expect(plan.transition).toBeUndefined();
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
    const plan = planConversion({ postback: postback({ status: requested }), click: click(), offer, existing: before, now });
    expect(plan.outcome).toMatchObject({ status, reason, conversionId: before.id });
    expect(types(plan.events)).toEqual(events);
    expect(plan.created).toBeUndefined();
    expect(plan.fraudFlags).toEqual([]);
    if (status === 'accepted') {
      expect(plan.transition).toEqual({ conversionId: before.id, from: before.status, to: requested });
      expect(plan.after).toMatchObject({ status: requested, holdReason: before.holdReason, updatedAt: now });
      expect(plan.events[0].data).toMatchObject({ previous_status: before.status, conversion: { id: before.id, status: requested } });
    } else {
      expect(plan.transition).toBeUndefined();
      expect(plan.after).toBe(before);
    }
  });

  it('accepts a status change after the window closed: only new conversions expire', () => {
    const plan = planConversion({
      postback: postback({ status: 'approved' }),
      click: click(40 * DAY_MS),
      offer,
      existing: existing({ status: 'pending' }),
      now,
    });
    expect(plan.outcome.status).toBe('accepted');
    expect(plan.fraudFlags).toEqual([]);
  });

  it("keeps the conversion's fraud flags in its JSON", () => {
    const plan = planConversion({
      postback: postback({ status: 'rejected' }),
      click: click(),
      offer,
      existing: existing({ status: 'approved', fraudFlags: ['amount_over_cap'] }),
      now,
    });
    expect(plan.events[0].data).toMatchObject({ conversion: { fraud_flags: ['amount_over_cap'], amount: '49.90', payout: '5.00' } });
  });
});

describe('planBatch', () => {
  const verified = () => click();
  const plan = (postbacks: PostbackFacts[], known: ConversionState[] = []) =>
    planBatch({ postbacks, click: verified, offer: () => offer, existing: new Map(known.map((c) => [conversionKey(c), c])), now });

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
    const known = existing({ status: 'pending' });
    const batch = plan([postback({ status: 'approved' }), postback({ status: 'approved' }), postback({ status: 'rejected' })], [known]);
    expect(batch.plans.map((p) => p.outcome.status)).toEqual(['accepted', 'duplicate', 'accepted']);
    expect(batch.newConversions).toEqual([]);
    expect(batch.changedConversions).toEqual([{ id: known.id, status: 'rejected', updatedAt: now }]);
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
