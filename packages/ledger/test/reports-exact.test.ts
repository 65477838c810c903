// Reports are exact: after random traffic (clicks sent twice, folded at random moments or not yet,
// conversions created, approved, rejected, repriced, reviewed), every grouping, in zones with :30
// and :45 offsets and across a DST change, read from each kind of report row, equals the recount of
// the raw rows; and so it does after reports:rebuild, and while a rebuild and the folder run beside
// the writers.
import { inTransaction } from '@trackway/db';
import {
  type ConversionState,
  type ReportFilters,
  type ReportGroup,
  type ReportQuery,
  type ReportSource,
  DAY_SOURCES,
  conversionWrites,
  newId,
  reportSource,
  startOfLocalDate,
} from '@trackway/domain';
import { type TestDatabase, createTestDatabase, waitFor } from '@trackway/testing';
import fc from 'fast-check';
import { addReportZone, collectReport, explainReport, foldClicks, insertClicks, planReportSql, rebuildReports, writeConversions } from '../src';

let db: TestDatabase;
const OFFERS = [
  { id: 1, advertiserId: 1, currency: 'USD' },
  { id: 2, advertiserId: 1, currency: 'EUR' },
  { id: 3, advertiserId: 2, currency: 'USD' },
];
// US DST begins on 2026-03-08 (02:00 → 03:00 in New York): the range crosses it.
const BASE = new Date('2026-03-06T12:00:00Z');
const ZONES = ['UTC', 'Asia/Kolkata', 'Asia/Kathmandu', 'America/New_York'];

beforeAll(async () => {
  db = await createTestDatabase();
  await db.pool.query(
    `INSERT INTO advertisers (id, name, postback_key_hash, updated_at) VALUES (1, 'a', repeat('a', 64), now()), (2, 'b', repeat('b', 64), now())`,
  );
  for (const o of OFFERS)
    await db.pool.query(
      `INSERT INTO offers (id, advertiser_id, name, destination_url, currency, payout_type, payout_amount, updated_at) VALUES ($1, $2, 'o', 'https://x', $3, 'fixed', 1, now())`,
      [o.id, o.advertiserId, o.currency],
    );
  // Day rows kept for two more zones (one with a DST change in the range).
  await addReportZone(db.pool, 'America/New_York');
  await addReportZone(db.pool, 'Asia/Kolkata');
}, 30_000);
afterAll(() => db.drop());

const clickArb = fc.record({
  offer: fc.integer({ min: 0, max: 2 }),
  affiliate: fc.integer({ min: 1, max: 3 }),
  sub2: fc.constantFrom('spring', 'fall', '', null),
  sub3: fc.constantFrom(null, 'x'),
  minutes: fc.integer({ min: 0, max: 3 * 24 * 60 }),
});
const changeArb = fc.record({
  status: fc.constantFrom('approved', 'pending', 'rejected'),
  amount: fc.option(fc.integer({ min: 0, max: 50_000 }), { nil: undefined }),
  payout: fc.option(fc.integer({ min: 0, max: 5_000 }), { nil: undefined }),
  revenue: fc.option(fc.integer({ min: 0, max: 8_000 }), { nil: undefined }),
});
const conversionArb = fc.record({
  click: fc.nat(),
  event: fc.constantFrom('sale', 'lead'),
  afterMinutes: fc.integer({ min: 0, max: 2 * 24 * 60 }),
  withRevenue: fc.boolean(),
  first: changeArb,
  changes: fc.array(changeArb, { maxLength: 3 }),
});
const trafficArb = fc.record({
  clicks: fc.array(clickArb, { minLength: 1, maxLength: 40 }),
  batch: fc.integer({ min: 1, max: 15 }),
  resend: fc.boolean(),
  /** Clicks folded into the report rows after every this many batches (0: never, the reports read them raw). */
  foldEvery: fc.integer({ min: 0, max: 3 }),
  conversions: fc.array(conversionArb, { maxLength: 12 }),
  /** Conversions written in batches (each one's first states together, then its seconds, …) or one at a time. */
  together: fc.boolean(),
});
type Traffic = typeof trafficArb extends fc.Arbitrary<infer T> ? T : never;

const money = (cents: number) => (cents / 100).toFixed(2);

async function play(traffic: Traffic, run: string): Promise<void> {
  const clicks = traffic.clicks.map((c, i) => ({
    clickId: `${run}-c${i}`,
    offerId: OFFERS[c.offer].id,
    affiliateId: c.affiliate,
    subs: { sub1: `${run}-p${i}`, ...(c.sub2 === null ? {} : { sub2: c.sub2 }), ...(c.sub3 === null ? {} : { sub3: c.sub3 }) },
    ip: null,
    userAgent: null,
    clickedAt: new Date(BASE.getTime() + c.minutes * 60_000),
  }));
  for (let i = 0, n = 1; i < clicks.length; i += traffic.batch, n++) {
    const batch = JSON.stringify(clicks.slice(i, i + traffic.batch));
    await insertClicks(db.pool, [batch]);
    if (traffic.foldEvery > 0 && n % traffic.foldEvery === 0) await foldClicks(db.pool);
    // At-least-once: a job run again after a crash (before or after a fold) writes and counts nothing twice.
    if (traffic.resend) await insertClicks(db.pool, [batch]);
  }
  // Each conversion's states, in order.
  const sequences: ConversionState[][] = [];
  for (const [n, c] of traffic.conversions.entries()) {
    const click = clicks[c.click % clicks.length];
    const offer = OFFERS.find((o) => o.id === click.offerId)!;
    const sequence: ConversionState[] = [];
    sequences.push(sequence);
    let state: ConversionState | null = null;
    for (const change of [c.first, ...c.changes]) {
      const before: ConversionState | null = state;
      const after: ConversionState = {
        ...(before ?? {
          id: newId('conversion'),
          advertiserId: offer.advertiserId,
          offerId: offer.id,
          affiliateId: click.affiliateId,
          clickId: click.clickId,
          orderId: `${run}-o${n}`,
          event: c.event,
          holdReason: null,
          amount: '0',
          currency: offer.currency,
          payout: '0',
          payoutCurrency: offer.currency,
          revenue: c.withRevenue ? '0' : null,
          revenueCurrency: c.withRevenue ? 'USD' : null,
          sub1: click.subs.sub1,
          sub2: (click.subs as { sub2?: string }).sub2 ?? null,
          sub3: (click.subs as { sub3?: string }).sub3 ?? null,
          sub4: null,
          sub5: null,
          clickedAt: click.clickedAt,
          createdAt: new Date(click.clickedAt.getTime() + c.afterMinutes * 60_000),
          fraudFlags: [],
          commission: null,
        }),
        status: change.status as ConversionState['status'],
        updatedAt: new Date(),
        ...(change.amount === undefined ? {} : { amount: money(change.amount) }),
        ...(change.payout === undefined ? {} : { payout: money(change.payout) }),
        ...(change.revenue === undefined || !c.withRevenue ? {} : { revenue: money(change.revenue) }),
      };
      sequence.push(after);
      state = after;
    }
  }
  const write = (before: ConversionState[], after: ConversionState[]) =>
    inTransaction(db.pool, (client) =>
      writeConversions(
        client,
        conversionWrites(
          new Map(before.map((b) => [b.orderId, b])),
          new Map(after.map((a) => [a.orderId, a])),
          after.map(() => ({ events: [] })),
        ),
        new Date(),
      ),
    );
  if (traffic.together) {
    // As attribution writes a batch: every conversion's first state in one transaction, then every second state, …
    for (let round = 0; sequences.some((q) => q.length > round); round++) {
      const moving = sequences.filter((q) => q.length > round);
      await write(
        round === 0 ? [] : moving.map((q) => q[round - 1]),
        moving.map((q) => q[round]),
      );
    }
  } else for (const q of sequences) for (const [i, after] of q.entries()) await write(i === 0 ? [] : [q[i - 1]], [after]);
}

async function answer(query: ReportQuery, source: ReportSource) {
  const { rows, totals } = await collectReport(db.pool, planReportSql(query, source), query.groupBy, query.tz);
  return { rows, totals };
}

const GROUPINGS: ReportGroup[][] = [
  [],
  ['day'],
  ['hour'],
  ['week'],
  ['month'],
  ['advertiser_id'],
  ['offer_id'],
  ['affiliate_id'],
  ['event'],
  ['sub2'],
  ['sub3'],
  ['day', 'offer_id'],
  ['affiliate_id', 'sub2'],
  ['day', 'event', 'sub2'],
  ['sub1'],
];

const CASES: Array<[ReportGroup[], ReportFilters]> = [
  ...GROUPINGS.map((g): [ReportGroup[], ReportFilters] => [g, {}]),
  [['day'], { affiliate_id: [2] }],
  [['affiliate_id', 'sub2'], { event: 'sale', sub2: 'spring' }],
  [[], { advertiser_id: [1], offer_id: [2, 3] }],
  [['hour'], { sub3: 'x' }],
  [['offer_id'], { sub1: 'r0-p1' }],
];

/** Every grouping, zone and count_by, from every kind of rows that can answer it, against the recount. */
async function expectExact(): Promise<number> {
  let compared = 0;
  for (const tz of ZONES) {
    const from = startOfLocalDate('2026-03-06', tz);
    const to = startOfLocalDate('2026-03-11', tz);
    for (const countBy of ['conversion', 'click'] as const) {
      for (const [groupBy, filters] of CASES) {
        {
          const query: ReportQuery = { from, to, tz, groupBy, countBy, filters };
          const recount = await answer(query, 'raw');
          const kept = tz === 'UTC' || tz === 'America/New_York' || tz === 'Asia/Kolkata';
          const sources = new Set<ReportSource>([reportSource(query, kept)]);
          if (!sources.has('raw')) sources.add('quarters');
          // Every kind of day rows that holds what the report asks, not only the cheapest.
          const asks = [...groupBy, ...Object.keys(filters)].filter((k) => !['day', 'week', 'month'].includes(k));
          if (kept && !sources.has('raw') && !groupBy.includes('hour'))
            for (const [source, holds] of DAY_SOURCES) if (asks.every((k) => holds.includes(k))) sources.add(source);
          for (const source of sources) {
            expect({ source, tz, countBy, groupBy, filters, ...(await answer(query, source)) }).toEqual({ source, tz, countBy, groupBy, filters, ...recount });
            compared++;
          }
        }
      }
    }
  }
  return compared;
}

const truncate = () =>
  db.pool.query(
    'TRUNCATE clicks, conversions, commissions, fraud_flags, report_quarters, report_days, report_offer_days, report_affiliate_days, report_offer_affiliate_days, report_totals CASCADE',
  );

it('every grouping equals the recount after random traffic, and again after reports:rebuild', async () => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(trafficArb, async (traffic) => {
      await truncate();
      await play(traffic, `r${runs++}`);
      expect(await expectExact()).toBeGreaterThan(200);
      await rebuildReports(db.pool, { from: new Date('2026-03-05T00:00:00Z'), to: new Date('2026-03-12T00:00:00Z') });
      await expectExact();
      // Whatever was left unfolded, folded now: the same numbers from the report rows alone.
      await foldClicks(db.pool);
      await expectExact();
    }),
    { numRuns: 5 },
  );
}, 240_000);

it('a rebuild keeps the click counts of clicks no longer stored (history dropped by retention)', async () => {
  await truncate();
  await play(
    {
      clicks: [
        { offer: 0, affiliate: 1, sub2: 'spring', sub3: null, minutes: 0 },
        { offer: 0, affiliate: 1, sub2: null, sub3: null, minutes: 2 * 24 * 60 },
      ],
      batch: 5,
      resend: false,
      foldEvery: 1,
      conversions: [],
      together: false,
    },
    'kept',
  );
  // The fold counts a transaction's clicks once every older transaction in the cluster has ended
  // (other test files' too): fold until none is left uncounted, so the report rows hold both clicks
  // before their raw rows go.
  await waitFor(async () => (await foldClicks(db.pool))?.behind === false, { timeoutMs: 20_000, what: 'every click folded' });
  const query: ReportQuery = {
    from: startOfLocalDate('2026-03-06', 'UTC'),
    to: startOfLocalDate('2026-03-11', 'UTC'),
    tz: 'UTC',
    groupBy: ['day'],
    countBy: 'conversion',
    filters: {},
  };
  const before = await answer(query, 'days');
  await db.pool.query(`DELETE FROM clicks WHERE created_at < '2026-03-07'`);
  await rebuildReports(db.pool, { from: new Date('2026-03-05T00:00:00Z'), to: new Date('2026-03-12T00:00:00Z') });
  expect(await answer(query, 'days')).toEqual(before);
  expect(await answer(query, 'quarters')).toEqual(before);
  expect((await answer(query, 'raw')).totals.clicks).toBe(1);
}, 30_000);

it('a rebuild running beside the writers loses and doubles nothing', async () => {
  await truncate();
  const traffic = fc.sample(trafficArb, { numRuns: 8, seed: 16 });
  let writing = true;
  const rebuilding = (async () => {
    for (let i = 0; i < 3; i++) await rebuildReports(db.pool, { from: new Date('2026-03-05T00:00:00Z'), to: new Date('2026-03-12T00:00:00Z') });
  })();
  // Two folders at once, as two attribution processes run them.
  const folding = Promise.all(
    [0, 1].map(async () => {
      while (writing) {
        await foldClicks(db.pool);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }),
  );
  await Promise.all([...traffic.map((t, i) => play({ ...t, foldEvery: 0 }, `p${i}`)), rebuilding]);
  writing = false;
  await folding;
  expect(await expectExact()).toBeGreaterThan(200);
  await foldClicks(db.pool);
  expect(await expectExact()).toBeGreaterThan(200);
}, 120_000);

it('a zone whose midnight happens twice (Atlantic/Azores, 2026-10-25) gets exact day rows when added and rebuilt', async () => {
  await truncate();
  // Azores: 01:00 (+00:00) back to 00:00 (-01:00) at 01:00Z on Oct 25: local 00:00-01:00 happens twice (00:00Z-01:00Z, then 01:00Z-02:00Z).
  const clicks = [
    '2026-10-24T23:30:00Z',
    '2026-10-25T00:10:00Z',
    '2026-10-25T00:40:00Z',
    '2026-10-25T01:20:00Z',
    '2026-10-26T00:50:00Z',
    '2026-10-26T01:05:00Z',
  ].map((at, i) => ({ clickId: `az${i}`, offerId: 1, affiliateId: 1, subs: {}, ip: null, userAgent: null, clickedAt: new Date(at) }));
  await insertClicks(db.pool, [JSON.stringify(clicks)]);
  await addReportZone(db.pool, 'Atlantic/Azores');
  const query: ReportQuery = {
    from: startOfLocalDate('2026-10-24', 'Atlantic/Azores'),
    to: startOfLocalDate('2026-10-27', 'Atlantic/Azores'),
    tz: 'Atlantic/Azores',
    groupBy: ['day'],
    countBy: 'conversion',
    filters: {},
  };
  const recount = await answer(query, 'raw');
  expect(recount.rows.map((r) => [r.day, r.clicks])).toEqual([
    ['2026-10-24', 1],
    ['2026-10-25', 4],
    ['2026-10-26', 1],
  ]);
  expect(await answer(query, 'days')).toEqual(recount);
  await foldClicks(db.pool);
  expect(await answer(query, 'days')).toEqual(recount);
  await rebuildReports(db.pool, { from: new Date('2026-10-23T00:00:00Z'), to: new Date('2026-10-28T00:00:00Z') });
  expect(await answer(query, 'days')).toEqual(recount);
  expect(await answer(query, 'offer_days')).toEqual(recount);
  expect(await answer(query, 'totals')).toEqual(recount);
}, 30_000);

it('a click is folded once its transaction has ended, and a click rolled back never counts', async () => {
  await truncate();
  const click = (id: string, at: string) => ({ clickId: id, offerId: 1, affiliateId: 1, subs: {}, ip: null, userAgent: null, clickedAt: new Date(at) });
  const query: ReportQuery = {
    from: startOfLocalDate('2026-03-06', 'UTC'),
    to: startOfLocalDate('2026-03-07', 'UTC'),
    tz: 'UTC',
    groupBy: ['day'],
    countBy: 'conversion',
    filters: {},
  };
  const open = await db.pool.connect();
  const aborted = await db.pool.connect();
  try {
    await open.query('BEGIN');
    await insertClicks(open, [JSON.stringify([click('late', '2026-03-06T10:00:00Z')])]);
    await aborted.query('BEGIN');
    await insertClicks(aborted, [JSON.stringify([click('gone', '2026-03-06T10:00:00Z')])]);
    await insertClicks(db.pool, [JSON.stringify([click('early', '2026-03-06T09:00:00Z')])]);
    // The open transactions hold the fold back: the click committed after them waits with them.
    expect(await foldClicks(db.pool)).toEqual({ clicks: 0, behind: true });
    const [{ folded }] = (await db.pool.query<{ folded: string }>(`SELECT coalesce(sum(clicks), 0)::int AS folded FROM report_totals WHERE zone = 'UTC'`)).rows;
    expect(Number(folded)).toBe(0);
    expect((await answer(query, 'totals')).totals.clicks).toBe(1);
    await open.query('COMMIT');
    await aborted.query('ROLLBACK');
    expect((await answer(query, 'totals')).totals.clicks).toBe(2);
    // Other test files' transactions hold the fold back as these did: fold until nothing is behind.
    let late = 0;
    await waitFor(
      async () => {
        const fold = await foldClicks(db.pool);
        late += fold?.clicks ?? 0;
        return fold?.behind === false;
      },
      { timeoutMs: 20_000, what: 'the two clicks folded' },
    );
    expect(late).toBe(2);
    expect(await foldClicks(db.pool)).toEqual({ clicks: 0, behind: false });
    const [{ counted }] = (await db.pool.query<{ counted: string }>(`SELECT sum(clicks)::int AS counted FROM report_totals WHERE zone = 'UTC'`)).rows;
    expect(Number(counted)).toBe(2);
    expect(await answer(query, 'totals')).toEqual(await answer(query, 'raw'));
  } finally {
    open.release();
    aborted.release();
  }
}, 30_000);

it('refuses to fold when transaction ids are below its mark (a restore into another cluster), rather than hide every new click', async () => {
  const [{ mark }] = (await db.pool.query<{ mark: string }>('SELECT xid::text AS mark FROM report_click_folds WHERE id = 1')).rows;
  await db.pool.query('UPDATE report_click_folds SET xid = $1 WHERE id = 1', [String(2n ** 62n)]);
  try {
    await expect(foldClicks(db.pool)).rejects.toThrow(/restored into another PostgreSQL cluster/);
  } finally {
    await db.pool.query('UPDATE report_click_folds SET xid = $1 WHERE id = 1', [mark]);
  }
});

it('a zone Postgres does not know is never listed (every writer would fail on it)', async () => {
  await expect(addReportZone(db.pool, 'europe/berlin')).rejects.toThrow(/not a time zone this database knows/);
  expect((await db.pool.query(`SELECT zone FROM report_zones WHERE zone = 'europe/berlin'`)).rowCount).toBe(0);
});

it("explains a report's statements as a report reads them: the fold's mark bound, the clicks not folded yet read by their BRIN", async () => {
  const query: ReportQuery = {
    from: BASE,
    to: new Date(BASE.getTime() + 86_400_000),
    tz: 'UTC',
    groupBy: ['day', 'offer_id'],
    countBy: 'conversion',
    filters: {},
  };
  const plan = planReportSql(query, reportSource(query, true));
  const lines = await explainReport(db.pool, plan, 'rows');
  expect(lines.some((l) => /Execution Time/.test(l))).toBe(true);
  // Each partition's BRIN index (clicks_p<yyyymmdd>_report_xid_idx, clicks_before_<yyyymmdd>_report_xid_idx).
  expect(lines.some((l) => /clicks_\w*report_xid/.test(l))).toBe(true);
  expect(lines.some((l) => /Seq Scan on clicks/.test(l))).toBe(false);
});
