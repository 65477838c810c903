import {
  CLICK_ROW_WAIT_MS,
  type ClickClaims,
  type ConversionState,
  type OfferTerms,
  type PartnerSubscriber,
  changeConversion,
  maskPartnerUrl,
  partnerRequest,
  partnerEventTypesProblem,
  partnerTargets,
  partnerUrlProblem,
  planConversion,
  waitsForClickRow,
} from '../src';

const now = new Date('2026-12-07T12:00:00.000Z');
const ago = (ms: number) => new Date(now.getTime() - ms);

describe('sub IDs: a postback waits for its click row only while it may still land', () => {
  const received = ago(5_000);
  it.each([
    ['a click queued before the postback came is still queued: waits', { oldest: received.getTime() - 1_000, waiting: 0 }, true],
    ['no click queued (its row is lost, or never was): at once', { oldest: null, waiting: 0 }, false],
    ['only clicks queued after the postback came (not its own): at once', { oldest: received.getTime() + 3_000, waiting: 0 }, false],
    ['a click queued just after (ingest queues after redirecting): waits', { oldest: received.getTime() + 1_500, waiting: 0 }, true],
    ['after an outage: received an hour ago, its click still queued: waits', { oldest: received.getTime() - 3_600_000, waiting: 0 }, true],
    ['waited 30 s since first put back: recorded without them', { oldest: received.getTime() - 1_000, waiting: CLICK_ROW_WAIT_MS }, false],
    ['waited 29.9 s: waits', { oldest: received.getTime() - 1_000, waiting: CLICK_ROW_WAIT_MS - 100 }, true],
  ])('%s', (_name, c, expected) => {
    expect(waitsForClickRow({ receivedAt: received, oldestClickQueuedAt: c.oldest, waitingSince: ago(c.waiting), now })).toBe(expected);
  });
  it('takes a shorter limit', () => {
    expect(waitsForClickRow({ receivedAt: received, oldestClickQueuedAt: 0, waitingSince: ago(2_000), now, limitMs: 1_000 })).toBe(false);
  });
});

const offer: OfferTerms = {
  id: 7,
  advertiserId: 1,
  currency: 'USD',
  payoutType: 'fixed',
  payoutAmount: '5',
  payoutPercent: null,
  attributionWindowDays: 30,
  minCtitSeconds: 10,
  amountCap: null,
  status: 'active',
};
const click: ClickClaims = {
  offerId: 7,
  affiliateId: 3,
  clickedAt: ago(3_600_000),
  subs: { sub1: 'aff-click-1', sub2: 'campaign', sub3: null, sub4: null, sub5: null },
};
const postback = (over: Partial<{ amount: string; currency: string; status: 'approved' | 'pending' | 'rejected' }> = {}) => ({
  postbackId: 'pb_01JD8Z6Q4Z2K9M1P5S3W7Y0B2D',
  advertiserId: 1,
  receivedAt: now,
  clickId: 'click-1',
  orderId: 'ORDER-1',
  event: 'sale',
  amount: '200.00',
  status: 'approved' as const,
  ...over,
});
const plan = (terms: Partial<OfferTerms>, over?: Parameters<typeof postback>[0], claims: ClickClaims = click) =>
  planConversion({ postback: postback(over), click: claims, offer: { ...offer, ...terms }, affiliate: { status: 'active' }, existing: null, now });

describe('what the network earns: revenue priced like the payout', () => {
  it.each([
    ['no revenue rule', {}, undefined, null, null],
    ['fixed, in the offer currency', { revenueType: 'fixed' as const, revenueAmount: '8' }, { currency: 'EUR' }, '8', 'USD'],
    ['percent of the sale, in the sale currency', { revenueType: 'percent' as const, revenuePercent: '12.5' }, { currency: 'EUR' }, '25', 'EUR'],
    ['percent rounds half-up to 4 places', { revenueType: 'percent' as const, revenuePercent: '33.33333' }, { amount: '0.01' }, '0.0033', 'USD'],
  ])('%s', (_name, terms, over, revenue, currency) => {
    const c = plan(terms, over).after!;
    expect(c.revenue === null ? null : String(c.revenue)).toBe(revenue);
    expect(c.revenueCurrency).toBe(currency);
  });

  it('is in every conversion event, beside the payout; the click sub IDs too', () => {
    const { events } = plan({ revenueType: 'fixed', revenueAmount: '8' });
    const created = events.find((e) => e.type === 'conversion.created')!.data as { conversion: Record<string, unknown> };
    expect(created.conversion).toMatchObject({ payout: '5.00', revenue: '8.00', revenue_currency: 'USD', sub1: 'aff-click-1', sub2: 'campaign', sub3: null });
  });

  it('a conversion whose click row never arrived is recorded without subs', () => {
    const c = plan({}, undefined, { ...click, subs: undefined }).after!;
    expect([c.sub1, c.sub2, c.sub3, c.sub4, c.sub5]).toEqual([null, null, null, null, null]);
  });

  it('follows amount changes: a percent revenue is repriced, a fixed one stays; previous_revenue in conversion.updated', () => {
    const percent = plan({ revenueType: 'percent', revenuePercent: '10', payoutType: 'percent', payoutPercent: '5' }).after as ConversionState;
    const change = changeConversion(
      percent,
      {
        status: 'approved',
        holdReason: null,
        amount: { value: '300', offer: { payoutType: 'percent', payoutPercent: '5', revenueType: 'percent', revenuePercent: '10' } },
      },
      now,
    );
    if (change.refused) throw new Error('refused');
    expect(String(change.after.revenue)).toBe('30');
    expect(String(change.after.payout)).toBe('15');
    const updated = change.events.find((e) => e.type === 'conversion.updated')!.data;
    expect(updated).toMatchObject({ previous_revenue: '20.00', conversion: { revenue: '30.00' } });

    const fixed = plan({ revenueType: 'fixed', revenueAmount: '8' }).after as ConversionState;
    const kept = changeConversion(
      fixed,
      {
        status: 'approved',
        holdReason: null,
        amount: { value: '300', offer: { payoutType: 'fixed', payoutPercent: null, revenueType: 'fixed', revenuePercent: null } },
      },
      now,
    );
    if (kept.refused) throw new Error('refused');
    expect(String(kept.after.revenue)).toBe('8');
  });
});

describe('partner postback URLs', () => {
  it.each([
    ['https://t.example.com/postback?cid={sub1}&payout={payout}&token=abc', null],
    ['https://t.example.com/{affiliate_id}/pb?x={click_id}#{event}', null],
    ['ftp://t.example.com/?cid={sub1}', 'must be an http(s) URL'],
    ['https://t.example.com/?cid={subid}', 'has unknown macros: {subid}'],
    ['https://{sub1}.example.com/', 'macros may only be in the path, query or fragment'],
    ['https://t.example.com:{offer_id}/', 'must be an http(s) URL'],
    ['https://user:pass@t.example.com/', 'must not contain credentials'],
    ['https://t.example.com/?cid={sub1}&token=***', 'holds a masked value'],
    ['https://t.example.com/pb?***', 'holds a masked value'],
  ])('%s', (url, problem) => {
    const found = partnerUrlProblem(url);
    if (problem === null) expect(found).toBeNull();
    else expect(found).toContain(problem);
  });

  it('masks query values that are not macros, on every read after creation', () => {
    expect(maskPartnerUrl('https://t.example.com/pb/abc?token=s3cr3t&cid={sub1}&p={payout}&empty=&{sub2}#x')).toBe(
      'https://t.example.com/pb/abc?token=***&cid={sub1}&p={payout}&empty=&{sub2}#x',
    );
    expect(maskPartnerUrl('https://t.example.com/pb?s3cr3t')).toBe('https://t.example.com/pb?***');
    expect(maskPartnerUrl('https://t.example.com/pb?a=x{sub1}')).toBe('https://t.example.com/pb?a=***');
    expect(maskPartnerUrl('https://t.example.com/pb')).toBe('https://t.example.com/pb');
  });
});

const event = (over: Record<string, unknown> = {}, type = 'conversion.approved') => ({
  type,
  timestamp: '2026-12-07T12:00:00.000Z',
  data: {
    conversion: {
      id: 'cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC',
      offer_id: 7,
      affiliate_id: 3,
      click_id: 'AQAAAAEAAAAH',
      event: 'sale',
      status: 'approved',
      amount: '49.90',
      payout: '5.00',
      payout_currency: 'USD',
      revenue: '8.00',
      sub1: 'aff/click 1&x',
      sub2: null,
      ...over,
    },
  },
});

describe('partner postback requests', () => {
  const all =
    'https://t.example.com/pb?c={click_id}&s1={sub1}&s2={sub2}&cv={conversion_id}&e={event}&t={event_type}&st={status}&p={payout}&cur={payout_currency}&o={offer_id}&a={affiliate_id}&ts={timestamp}&amt={amount}';

  it('fills every macro percent-encoded; money as the API writes it; a missing value is "" and listed', () => {
    const request = partnerRequest({ url: all, method: 'GET', preset: null }, event(), { shareAmount: false })!;
    expect(request).toEqual({
      method: 'GET',
      url: 'https://t.example.com/pb?c=AQAAAAEAAAAH&s1=aff%2Fclick%201%26x&s2=&cv=cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC&e=sale&t=conversion.approved&st=approved&p=5.00&cur=USD&o=7&a=3&ts=1796644800&amt=',
      body: null,
      missing: ['sub2', 'amount'],
    });
    expect(request.url).not.toContain('8.00');
  });

  it('{amount} only where the offer shares it', () => {
    expect(partnerRequest({ url: 'https://t.example.com/?a={amount}', method: 'GET', preset: null }, event(), { shareAmount: true })).toMatchObject({
      url: 'https://t.example.com/?a=49.90',
      missing: [],
    });
  });

  it('a value can never change the host: a path macro is encoded too', () => {
    const request = partnerRequest({ url: 'https://t.example.com/{sub1}', method: 'GET', preset: null }, event({ sub1: '@evil.example:81/x?y#z' }), {
      shareAmount: false,
    })!;
    expect(new URL(request.url).host).toBe('t.example.com');
    expect(request.url).toBe('https://t.example.com/%40evil.example%3A81%2Fx%3Fy%23z');
  });

  it('POST sends the filled query as a form body to the URL without it', () => {
    expect(partnerRequest({ url: 'https://t.example.com/pb?cid={sub1}&p={payout}', method: 'POST', preset: null }, event(), { shareAmount: false })).toEqual({
      method: 'POST',
      url: 'https://t.example.com/pb',
      body: 'cid=aff%2Fclick%201%26x&p=5.00',
      missing: [],
    });
  });

  it("a preset appends its tracker's query to the base URL (keitaro: subid, tid, payout, status word)", () => {
    const request = partnerRequest({ url: 'https://k.example.com/abc123/postback', method: 'GET', preset: 'keitaro' }, event({ sub1: 'kt-1' }), {
      shareAmount: false,
    })!;
    const query = new URL(request.url).searchParams;
    expect(query.get('subid')).toBe('kt-1');
    expect(query.get('payout')).toBe('5.00');
    expect(query.get('status')).toBe('sale');
    expect(new URL(request.url).pathname).toBe('/abc123/postback');
    const rejected = partnerRequest({ url: 'https://k.example.com/abc123/postback?', method: 'GET', preset: 'keitaro' }, event({ status: 'rejected' }), {
      shareAmount: false,
    })!;
    expect(new URL(rejected.url).searchParams.get('status')).toBe('rejected');
  });
});

describe('event types a preset can tell its tracker', () => {
  it.each([
    [null, ['conversion.created', 'conversion.rejected'], null],
    ['keitaro', ['conversion.approved', 'conversion.rejected'], null],
    ['voluum', ['conversion.approved'], null],
    ['voluum', ['conversion.approved', 'conversion.rejected'], 'conversion.rejected'],
    ['everflow', ['conversion.created'], 'conversion.created'],
  ] as const)('%s %j', (preset, types, named) => {
    const problem = partnerEventTypesProblem(preset, types);
    if (named === null) expect(problem).toBeNull();
    else expect(problem).toContain(named);
  });
});

describe('which partner postbacks an event goes to', () => {
  const pp = (id: string, affiliateId: number, offerId: number | null, eventTypes: string[]): PartnerSubscriber => ({ id, affiliateId, offerId, eventTypes });
  const list = [
    pp('global-approved', 3, null, ['conversion.approved']),
    pp('global-rejected', 3, null, ['conversion.rejected']),
    pp('offer7-approved', 3, 7, ['conversion.approved']),
    pp('other-affiliate', 4, null, ['conversion.approved']),
  ];
  it.each([
    ['an offer-level postback replaces the global one for its types', 'conversion.approved', 3, 7, ['offer7-approved']],
    ['the global one serves the types the offer-level one does not subscribe', 'conversion.rejected', 3, 7, ['global-rejected']],
    ['another offer of the affiliate: the global one', 'conversion.approved', 3, 8, ['global-approved']],
    ['another affiliate: only its own', 'conversion.approved', 4, 7, ['other-affiliate']],
    ['a type nobody subscribes', 'conversion.created', 3, 7, []],
  ])('%s', (_name, type, affiliate, offerId, expected) => {
    expect(partnerTargets(list, type, affiliate, offerId).map((p) => p.id)).toEqual(expected);
  });
});
