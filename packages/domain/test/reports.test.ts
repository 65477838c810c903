import fc from 'fast-check';
import {
  type ConversionRow,
  MeasureSum,
  type ReportQuery,
  csvCurrencies,
  csvHeader,
  csvRow,
  fromE4,
  toE4,
  isLocalMidnight,
  isTimeZone,
  localDate,
  type ReportDelta,
  type ReportMove,
  reportDelta,
  reportMoves,
  reportRangeProblem,
  reportSource,
  totalsSource,
  dayBlocks,
  startOfLocalDate,
  summaryPeriods,
  zoneOffsetMinutes,
  zonedDateTime,
} from '../src';

describe('zones', () => {
  it.each([
    ['2026-11-10', 'UTC', '2026-11-10T00:00:00.000Z'],
    ['2026-11-10', 'Asia/Kolkata', '2026-11-09T18:30:00.000Z'],
    ['2026-11-10', 'Asia/Kathmandu', '2026-11-09T18:15:00.000Z'],
    ['2026-11-10', 'America/St_Johns', '2026-11-10T03:30:00.000Z'],
    // DST: New York is -05:00 on Mar 8 (midnight before the change), -04:00 on Mar 9.
    ['2026-03-08', 'America/New_York', '2026-03-08T05:00:00.000Z'],
    ['2026-03-09', 'America/New_York', '2026-03-09T04:00:00.000Z'],
    ['2026-10-25', 'Europe/Berlin', '2026-10-24T22:00:00.000Z'],
    ['2026-10-26', 'Europe/Berlin', '2026-10-25T23:00:00.000Z'],
    // Midnight that does not exist (DST at 00:00 in Santiago): the first instant of the day.
    ['2026-09-06', 'America/Santiago', '2026-09-06T04:00:00.000Z'],
  ])('%s begins in %s at %s', (date, tz, iso) => {
    const at = startOfLocalDate(date, tz);
    expect(at.toISOString()).toBe(iso);
    expect(localDate(at, tz)).toBe(date);
  });

  it.each([
    ['2026-11-10T09:00:00Z', 'Asia/Kathmandu', '2026-11-10T14:45:00+05:45', 345],
    ['2026-03-08T07:00:00Z', 'America/New_York', '2026-03-08T03:00:00-04:00', -240],
    ['2026-03-08T06:59:00Z', 'America/New_York', '2026-03-08T01:59:00-05:00', -300],
    ['2026-11-10T09:00:00Z', 'UTC', '2026-11-10T09:00:00+00:00', 0],
  ])('%s in %s is %s', (iso, tz, zoned, offset) => {
    expect(zonedDateTime(new Date(iso), tz)).toBe(zoned);
    expect(zoneOffsetMinutes(new Date(iso), tz)).toBe(offset);
  });

  it.each([
    ['Europe/Berlin', true],
    ['Asia/Kolkata', true],
    ['UTC', true],
    ['Etc/GMT+5', true],
    ['Mars/Olympus', false],
    ['+05:30', false],
    ['', false],
    ['Europe/Berlin; DROP TABLE', false],
  ])('%s is a zone: %s', (tz, yes) => expect(isTimeZone(tz)).toBe(yes));
});

describe('a report range', () => {
  const d = (iso: string) => new Date(iso);
  it.each([
    ['2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', null],
    ['2026-11-01T00:15:00Z', '2026-11-01T00:30:00Z', null],
    ['2026-11-01T00:07:00Z', '2026-11-02T00:00:00Z', 'from'],
    ['2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z', 'to'],
    ['2026-11-02T00:00:00Z', '2026-11-01T00:00:00Z', 'to'],
    ['2025-10-30T00:00:00Z', '2026-11-02T00:00:00Z', 'to'],
    ['2025-11-01T00:00:00Z', '2026-11-01T00:00:00Z', null],
  ])('%s → %s: problem on %s', (from, to, field) => {
    expect(reportRangeProblem(d(from), d(to))?.field ?? null).toBe(field);
  });

  it('the summary: today, yesterday, this month and last month in the zone', () => {
    const periods = summaryPeriods(new Date('2026-12-01T20:00:00Z'), 'Asia/Kolkata');
    expect(Object.fromEntries(Object.entries(periods).map(([k, p]) => [k, [localDate(p.from, 'Asia/Kolkata'), localDate(p.to, 'Asia/Kolkata')]]))).toEqual({
      today: ['2026-12-02', '2026-12-03'],
      yesterday: ['2026-12-01', '2026-12-02'],
      this_month: ['2026-12-01', '2027-01-01'],
      last_month: ['2026-11-01', '2026-12-01'],
    });
    for (const p of Object.values(periods)) expect([isLocalMidnight(p.from, 'Asia/Kolkata'), isLocalMidnight(p.to, 'Asia/Kolkata')]).toEqual([true, true]);
  });
});

describe('which rows answer a report', () => {
  const base: ReportQuery = {
    from: new Date('2026-11-01T00:00:00Z'),
    to: new Date('2026-11-02T00:00:00Z'),
    tz: 'UTC',
    groupBy: ['day', 'offer_id'],
    countBy: 'conversion',
    filters: {},
  };
  it.each([
    ['day × offer in a kept zone', base, true, 'offer_days'],
    ['by day alone', { ...base, groupBy: ['day'] }, true, 'totals'],
    ['by event and month', { ...base, groupBy: ['event', 'month'] }, true, 'totals'],
    ['by advertiser', { ...base, groupBy: ['advertiser_id'] }, true, 'offer_days'],
    ['by affiliate and sub2', { ...base, groupBy: ['affiliate_id', 'sub2'] }, true, 'affiliate_days'],
    ['by affiliate', { ...base, groupBy: ['affiliate_id'] }, true, 'affiliate_days'],
    ['by affiliate, filtered by event', { ...base, groupBy: ['affiliate_id'], filters: { event: 'sale' } }, true, 'offer_affiliate_days'],
    ['filtered by affiliate', { ...base, filters: { affiliate_id: [3] } }, true, 'offer_affiliate_days'],
    ['by affiliate and sub2 of an offer', { ...base, groupBy: ['affiliate_id', 'sub2'], filters: { offer_id: [2] } }, true, 'days'],
    ['by sub3', { ...base, groupBy: ['sub3'] }, true, 'days'],
    ['by hour', { ...base, groupBy: ['hour'] }, true, 'quarters'],
    ['a zone without day rows', { ...base, tz: 'Asia/Kolkata' }, false, 'quarters'],
    ['not whole days', { ...base, from: new Date('2026-11-01T06:00:00Z') }, true, 'quarters'],
    ['by sub1', { ...base, groupBy: ['sub1'] }, true, 'raw'],
    ['filtered by sub1', { ...base, filters: { sub1: 'x' } }, true, 'raw'],
  ] as const)('%s → %s', (_what, query, kept, source) => {
    expect(reportSource(query as ReportQuery, kept)).toBe(source);
  });

  it.each([
    ['rows by offer × affiliate, no filter', { ...base, groupBy: ['offer_id', 'affiliate_id'] }, 'offer_affiliate_days', 'totals'],
    ['rows by affiliate × sub2, filtered by offer', { ...base, groupBy: ['affiliate_id', 'sub2'], filters: { offer_id: [2] } }, 'days', 'offer_days'],
    ['rows by sub3, filtered by sub2', { ...base, groupBy: ['sub3'], filters: { sub2: 'x' } }, 'days', 'affiliate_days'],
    ['quarter rows', { ...base, groupBy: ['hour'] }, 'quarters', 'quarters'],
    ['raw rows', { ...base, groupBy: ['sub1'] }, 'raw', 'raw'],
  ] as const)('%s: totals from %s', (_what, query, rows, totals) => {
    expect(totalsSource(query as unknown as ReportQuery, rows)).toBe(totals);
  });
});

describe('blocks of days', () => {
  // Day numbers since 1970-01-01: 2026-11-07 is 20764 (a multiple of 4), 2026-10-10 is 20736 (of 64).
  it.each([
    ['one day', '2026-11-08', '2026-11-09', [[1, '2026-11-08']]],
    ['nothing', '2026-11-08', '2026-11-08', []],
    [
      '30 days',
      '2026-11-07',
      '2026-12-07',
      [
        [4, '2026-11-07'],
        [16, '2026-11-11'],
        [4, '2026-11-27'],
        [4, '2026-12-01'],
        [1, '2026-12-05'],
        [1, '2026-12-06'],
      ],
    ],
    ['64 days from a block start', '2026-10-10', '2026-12-13', [[64, '2026-10-10']]],
  ])('%s', (_what, from, to, expected) => {
    const blocks = dayBlocks(from, to);
    expect(blocks.map((b) => [b.span, b.day])).toEqual(expected);
  });

  it('tiles any range exactly, each block aligned to its span', () => {
    fc.assert(
      fc.property(fc.integer({ min: 19_000, max: 21_000 }), fc.integer({ min: 0, max: 366 }), (start, length) => {
        const date = (n: number) => new Date(n * 86_400_000).toISOString().slice(0, 10);
        const blocks = dayBlocks(date(start), date(start + length));
        let at = start;
        for (const b of blocks) {
          const n = Date.parse(`${b.day}T00:00:00Z`) / 86_400_000;
          expect(n).toBe(at);
          expect(n % b.span).toBe(0);
          at += b.span;
        }
        expect(at).toBe(start + length);
        // The fewest blocks: at most 3 of each smaller span at each end, and the 64-day blocks between.
        expect(blocks.length).toBeLessThanOrEqual(2 * 3 * 3 + Math.ceil(length / 64));
      }),
    );
  });
});

describe('what a conversion moves', () => {
  const row = (fields: Partial<ConversionRow>): ConversionRow => ({
    id: 'cv_1',
    advertiserId: 1,
    offerId: 2,
    affiliateId: 3,
    clickId: 'c',
    orderId: 'o',
    event: 'sale',
    status: 'pending',
    holdReason: null,
    amount: '100.00',
    currency: 'USD',
    payout: '10.00',
    payoutCurrency: 'USD',
    revenue: '15.00',
    revenueCurrency: 'USD',
    sub2: 'spring',
    clickedAt: new Date(0),
    createdAt: new Date(1),
    updatedAt: new Date(2),
    fraudFlags: [],
    ...fields,
  });
  const moved = (before: Partial<ConversionRow> | null, after: Partial<ConversionRow>) => {
    const d = reportDelta(before && row(before), row(after));
    return (
      d && {
        approved: d.approved,
        pending: d.pending,
        rejected: d.rejected,
        amount: d.amount,
        revenue: d.revenue,
        payout: d.payout,
        pendingPayout: d.pendingPayout,
      }
    );
  };
  it.each([
    ['a new pending one', null, {}, { approved: 0, pending: 1, rejected: 0, amount: '0', revenue: '0', payout: '0', pendingPayout: '10' }],
    [
      'approved',
      { status: 'pending' },
      { status: 'approved' },
      { approved: 1, pending: -1, rejected: 0, amount: '100', revenue: '15', payout: '10', pendingPayout: '-10' },
    ],
    [
      'reversed',
      { status: 'approved' },
      { status: 'rejected' },
      { approved: -1, pending: 0, rejected: 1, amount: '-100', revenue: '-15', payout: '-10', pendingPayout: '0' },
    ],
    [
      'repriced',
      { status: 'approved' },
      { status: 'approved', amount: '80.00', payout: '8.00', revenue: '12.00' },
      { approved: 0, pending: 0, rejected: 0, amount: '-20', revenue: '-3', payout: '-2', pendingPayout: '0' },
    ],
    [
      'without revenue',
      null,
      { status: 'approved', revenue: null, revenueCurrency: null },
      { approved: 1, pending: 0, rejected: 0, amount: '100', revenue: '0', payout: '10', pendingPayout: '0' },
    ],
    ['unchanged but for its timestamp', { status: 'approved' }, { status: 'approved', updatedAt: new Date(9) }, null],
    ['a rejected one repriced', { status: 'rejected' }, { status: 'rejected', amount: '1.00' }, null],
  ] as const)('%s', (_what, before, after, expected) => {
    expect(moved(before as Partial<ConversionRow> | null, after as Partial<ConversionRow>)).toEqual(expected);
  });
});

describe('a batch as the moves of each kind of report rows', () => {
  const at = (iso: string) => new Date(iso);
  const delta = (fields: Partial<ReportDelta>): ReportDelta => ({
    createdAt: at('2026-03-06T12:01:00Z'),
    clickedAt: at('2026-03-06T11:59:00Z'),
    advertiserId: 1,
    offerId: 2,
    affiliateId: 3,
    event: 'sale',
    sub2: 'spring',
    sub3: null,
    sub4: null,
    sub5: null,
    currency: 'USD',
    payoutCurrency: 'USD',
    revenueCurrency: 'USD',
    approved: 1,
    pending: 0,
    rejected: 0,
    amount: '49.90',
    revenue: '7.50',
    payout: '5.00',
    pendingPayout: '0',
    ...fields,
  });
  const brief = (m: ReportMove) => [m.kind, m.at.toISOString(), m.offerId, m.sub2, m.approved, m.pending, m.amount, m.pendingPayout];
  it.each([
    ['nothing', [], []],
    [
      'one: a move of each kind, at the quarters of the conversion and of its click',
      [delta({})],
      [
        [1, '2026-03-06T12:00:00.000Z', 2, 'spring', 1, 0, '49.9', '0'],
        [2, '2026-03-06T11:45:00.000Z', 2, 'spring', 1, 0, '49.9', '0'],
      ],
    ],
    [
      'two in the same quarters and dimensions: one move of each kind',
      [delta({}), delta({ createdAt: at('2026-03-06T12:14:59.999Z'), approved: 0, pending: 1, amount: '0', payout: '0', pendingPayout: '5.00' })],
      [
        [1, '2026-03-06T12:00:00.000Z', 2, 'spring', 1, 1, '49.9', '5'],
        [2, '2026-03-06T11:45:00.000Z', 2, 'spring', 1, 1, '49.9', '5'],
      ],
    ],
    [
      'clicks of other quarters: kind 1 still one move',
      [delta({}), delta({ clickedAt: at('2026-02-20T08:00:00Z') })],
      [
        [1, '2026-03-06T12:00:00.000Z', 2, 'spring', 2, 0, '99.8', '0'],
        [2, '2026-03-06T11:45:00.000Z', 2, 'spring', 1, 0, '49.9', '0'],
        [2, '2026-02-20T08:00:00.000Z', 2, 'spring', 1, 0, '49.9', '0'],
      ],
    ],
    [
      'the next quarter of the conversion: kind 1 apart, kind 2 together',
      [delta({}), delta({ createdAt: at('2026-03-06T12:15:00Z') })],
      [
        [1, '2026-03-06T12:00:00.000Z', 2, 'spring', 1, 0, '49.9', '0'],
        [1, '2026-03-06T12:15:00.000Z', 2, 'spring', 1, 0, '49.9', '0'],
        [2, '2026-03-06T11:45:00.000Z', 2, 'spring', 2, 0, '99.8', '0'],
      ],
    ],
    [
      'another offer, or a sub absent rather than empty: moves of their own',
      [delta({}), delta({ offerId: 9 }), delta({ sub2: '' }), delta({ sub2: null })],
      [
        [1, '2026-03-06T12:00:00.000Z', 2, 'spring', 1, 0, '49.9', '0'],
        [1, '2026-03-06T12:00:00.000Z', 9, 'spring', 1, 0, '49.9', '0'],
        [1, '2026-03-06T12:00:00.000Z', 2, '', 1, 0, '49.9', '0'],
        [1, '2026-03-06T12:00:00.000Z', 2, null, 1, 0, '49.9', '0'],
        [2, '2026-03-06T11:45:00.000Z', 2, 'spring', 1, 0, '49.9', '0'],
        [2, '2026-03-06T11:45:00.000Z', 9, 'spring', 1, 0, '49.9', '0'],
        [2, '2026-03-06T11:45:00.000Z', 2, '', 1, 0, '49.9', '0'],
        [2, '2026-03-06T11:45:00.000Z', 2, null, 1, 0, '49.9', '0'],
      ],
    ],
    [
      'an approval and a reversal on the same rows that cancel: nothing moves',
      [delta({}), delta({ approved: -1, amount: '-49.90', revenue: '-7.50', payout: '-5.00' })],
      [],
    ],
    [
      'money without a count (a repricing) still moves',
      [delta({ approved: 0, amount: '-0.01', revenue: '0', payout: '0' })],
      [
        [1, '2026-03-06T12:00:00.000Z', 2, 'spring', 0, 0, '-0.01', '0'],
        [2, '2026-03-06T11:45:00.000Z', 2, 'spring', 0, 0, '-0.01', '0'],
      ],
    ],
    [
      'sums past 20 significant digits are not rounded',
      [delta({ amount: '99999999999999.9999' }), delta({ amount: '99999999999999.9999' }), delta({ amount: '0.0001' })],
      [
        [1, '2026-03-06T12:00:00.000Z', 2, 'spring', 3, 0, '199999999999999.9999', '0'],
        [2, '2026-03-06T11:45:00.000Z', 2, 'spring', 3, 0, '199999999999999.9999', '0'],
      ],
    ],
  ] as const)('%s', (_what, deltas, expected) => {
    expect(reportMoves(deltas as readonly ReportDelta[]).map(brief)).toEqual(expected);
  });

  it('every report row of each kind moves by the same sums as with the conversions one by one', () => {
    const quarter = 15 * 60_000;
    const base = Date.UTC(2026, 2, 6);
    const cents = fc.integer({ min: -1_000_000, max: 1_000_000 });
    const dims = fc.record({
      advertiserId: fc.integer({ min: 1, max: 2 }),
      offerId: fc.integer({ min: 1, max: 2 }),
      affiliateId: fc.integer({ min: 1, max: 2 }),
      event: fc.constantFrom('sale', 'lead'),
      sub2: fc.constantFrom('a', '', null),
      sub3: fc.constantFrom('b', null),
      sub4: fc.constantFrom('c', null),
      sub5: fc.constantFrom('d', null),
      currency: fc.constantFrom('USD', 'EUR'),
      payoutCurrency: fc.constantFrom('USD', 'EUR'),
      revenueCurrency: fc.constantFrom('USD', ''),
    });
    // A tuple and, for each field, the tuple with that field alone changed ('' and null apart).
    const other = (v: string | number | null) => (typeof v === 'number' ? v + 1 : v === null ? '' : null);
    const variants = (base: Record<string, string | number | null>) => [base, ...Object.keys(base).map((f) => ({ ...base, [f]: other(base[f]) }))];
    const arb = fc.record({
      pool: dims.map((base) => variants(base) as Array<typeof base>),
      changes: fc.array(
        fc.record({
          pick: fc.nat(),
          created: fc.integer({ min: -quarter, max: 2 * quarter }),
          clicked: fc.integer({ min: -quarter, max: 2 * quarter }),
          approved: fc.integer({ min: -1, max: 1 }),
          pending: fc.integer({ min: -1, max: 1 }),
          rejected: fc.integer({ min: -1, max: 1 }),
          amount: cents,
          revenue: cents,
          payout: cents,
          pendingPayout: cents,
        }),
        { maxLength: 60 },
      ),
    });
    const money = (c: number) => (c / 100).toFixed(2);
    const toCents = (v: string) => Math.round(Number(v) * 100);
    fc.assert(
      fc.property(arb, ({ pool, changes }) => {
        const deltas: ReportDelta[] = changes.map(({ pick, created, clicked, amount, revenue, payout, pendingPayout, ...d }) => ({
          ...pool[pick % pool.length],
          ...d,
          createdAt: new Date(base + created),
          clickedAt: new Date(base + clicked),
          amount: money(amount),
          revenue: money(revenue),
          payout: money(payout),
          pendingPayout: money(pendingPayout),
        }));
        // The report rows each kind moves: keyed by every column a report table keys or carries.
        const rows = (moves: Array<{ kind: number; at: Date; d: Omit<ReportDelta, 'createdAt' | 'clickedAt'> }>) => {
          const out = new Map<string, number[]>();
          for (const { kind, at, d } of moves) {
            const key = JSON.stringify([
              kind,
              Math.floor(at.getTime() / quarter),
              d.advertiserId,
              d.offerId,
              d.affiliateId,
              d.event,
              d.sub2,
              d.sub3,
              d.sub4,
              d.sub5,
              d.currency,
              d.payoutCurrency,
              d.revenueCurrency,
            ]);
            const sums = out.get(key) ?? [0, 0, 0, 0, 0, 0, 0];
            [d.approved, d.pending, d.rejected, toCents(d.amount), toCents(d.revenue), toCents(d.payout), toCents(d.pendingPayout)].forEach((v, i) => {
              sums[i] += v;
            });
            out.set(key, sums);
          }
          return new Map([...out].filter(([, sums]) => sums.some((v) => v !== 0)));
        };
        const oneByOne = rows(
          deltas.flatMap(({ createdAt, clickedAt, ...d }) => [
            { kind: 1, at: createdAt, d },
            { kind: 2, at: clickedAt, d },
          ]),
        );
        const moves = reportMoves(deltas);
        const summed = rows(moves.map(({ kind, at, ...d }) => ({ kind, at, d })));
        expect(summed).toEqual(oneByOne);
        // One move per report row, each at its quarter's start.
        expect(summed.size).toBe(moves.length);
        expect(moves.every((m) => m.at.getTime() % quarter === 0)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('summed rows to an answer', () => {
  const sum = new MeasureSum();
  const rows = [
    {
      currency: '',
      payout_currency: '',
      revenue_currency: '',
      clicks: '300',
      approved: 0,
      pending: 0,
      rejected: 0,
      amount: '0',
      revenue: '0',
      payout: '0',
      pending_payout: '0',
    },
    {
      currency: 'USD',
      payout_currency: 'USD',
      revenue_currency: 'USD',
      clicks: 0,
      approved: '5',
      pending: '1',
      rejected: '2',
      amount: '500.5',
      revenue: '80',
      payout: '50',
      pending_payout: '10',
    },
    {
      currency: 'EUR',
      payout_currency: 'EUR',
      revenue_currency: '',
      clicks: 0,
      approved: '1',
      pending: '0',
      rejected: '0',
      amount: '20',
      revenue: '0',
      payout: '2.5',
      pending_payout: '0',
    },
  ];
  for (const r of rows) sum.add(r);
  const m = sum.measures();
  it('counts clicks once, money by currency, profit = revenue − payout, CR and EPC', () => {
    expect(m).toEqual({
      clicks: 300,
      conversions: 7,
      approved: 6,
      pending: 1,
      rejected: 2,
      amount: { EUR: '20.00', USD: '500.50' },
      revenue: { USD: '80.00' },
      payout: { EUR: '2.50', USD: '50.00' },
      profit: { EUR: '-2.50', USD: '30.00' },
      pending_payout: { EUR: '0.00', USD: '10.00' },
      cr: 2.33,
      epc: { EUR: '0.0083', USD: '0.1667' },
    });
  });

  it('writes CSV with a column per currency and spreadsheet-safe sub IDs', () => {
    const currencies = csvCurrencies(m);
    expect(csvHeader(['day', 'sub2'], currencies)).toBe(
      'day,sub2,clicks,conversions,approved,pending,rejected,cr,amount_eur,amount_usd,revenue_usd,payout_eur,payout_usd,profit_eur,profit_usd,pending_payout_eur,pending_payout_usd,epc_eur,epc_usd\r\n',
    );
    const line = csvRow(['day', 'sub2'], { day: '2026-11-01', sub2: '=cmd|"/c calc"!A1', ...m }, currencies);
    expect(line.startsWith(`2026-11-01,"'=cmd|""/c calc""!A1",300,7,6,1,2,2.33,20.00,500.50,80.00,2.50,50.00,-2.50,30.00,0.00,10.00,0.0083,0.1667`)).toBe(true);
    const empty = new MeasureSum().measures();
    expect(csvRow(['day'], { day: '2026-11-02', ...empty }, currencies)).toBe(`2026-11-02,0,0,0,0,0,,${'0.00,'.repeat(9)},\r\n`);
  });
});

describe('money in ten-thousandths', () => {
  it.each([
    ['0', 0n, '0.00'],
    ['12.5', 125_000n, '12.50'],
    ['-3.5000', -35_000n, '-3.50'],
    ['0.0083', 83n, '0.0083'],
    ['99999999999999999999.9999', 999_999_999_999_999_999_999_999n, '99999999999999999999.9999'],
  ])('%s', (text, e4, shown) => {
    expect(toE4(text)).toBe(e4);
    expect(fromE4(e4)).toBe(shown);
  });

  it('refuses a fifth decimal place rather than dropping it', () => expect(() => toE4('1.00005')).toThrow(/more than 4 decimal places/));

  it('rounds CR and EPC half away from zero', () => {
    const sum = new MeasureSum();
    sum.add({
      currency: '',
      payout_currency: '',
      revenue_currency: '',
      clicks: 8,
      approved: 0,
      pending: 0,
      rejected: 0,
      amount: '0',
      revenue: '0',
      payout: '0',
      pending_payout: '0',
    });
    sum.add({
      currency: 'USD',
      payout_currency: 'USD',
      revenue_currency: '',
      clicks: 0,
      approved: 1,
      pending: 0,
      rejected: 0,
      amount: '1',
      revenue: '0',
      payout: '0.0004',
      pending_payout: '0',
    });
    // 1/8 × 100 = 12.5 exactly; 0.0004 / 8 = 0.00005 → 0.0001.
    expect(sum.measures()).toMatchObject({ cr: 12.5, epc: { USD: '0.0001' } });
  });
});
