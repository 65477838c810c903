// GET /v1/reports and /v1/reports/summary over report rows written by the real writers (the click
// writer's statement and writeConversions), against the raw-row recount.
import { inTransaction } from '@trackway/db';
import { type ConversionState, conversionWrites, newId } from '@trackway/domain';
import { foldClicks, insertClicks, writeConversions } from '@trackway/ledger';
import { ReportParams, reportRequest } from '../src/report-representations';
import { waitFor } from '@trackway/testing';
import request from 'supertest';
import { type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
let offerId: number;
let eurOfferId: number;
let held: string;

const DAY = '2026-11-10';
const at = (time: string) => new Date(`${DAY}T${time}Z`);

function conversion(fields: Partial<ConversionState>): ConversionState {
  return {
    id: newId('conversion'),
    advertiserId: 0,
    offerId,
    affiliateId: 7,
    clickId: 'c',
    orderId: newId('event'),
    event: 'sale',
    status: 'approved',
    holdReason: null,
    amount: '100',
    currency: 'USD',
    payout: '10',
    payoutCurrency: 'USD',
    revenue: '15',
    revenueCurrency: 'USD',
    sub1: null,
    sub2: 'spring',
    sub3: null,
    sub4: null,
    sub5: null,
    clickedAt: at('09:00:00'),
    createdAt: at('10:00:00'),
    updatedAt: new Date(),
    fraudFlags: [],
    commission: null,
    ...fields,
  };
}

const record = (list: ConversionState[]) =>
  inTransaction(h.db.pool, (client) =>
    writeConversions(client, conversionWrites(new Map(), new Map(list.map((c) => [c.orderId, c])), [{ events: [] }]), new Date()),
  );

beforeAll(async () => {
  h = await startApi();
  const advertiser = await request(h.app).post('/v1/advertisers').set(h.auth).send({ name: 'Shop' }).expect(201);
  const offer = { advertiser_id: advertiser.body.id, destination_url: 'https://shop.example/land', payout: { type: 'fixed', amount: '10.00' } };
  offerId = (
    await request(h.app)
      .post('/v1/offers')
      .set(h.auth)
      .send({ ...offer, name: 'USD', currency: 'USD' })
      .expect(201)
  ).body.id;
  eurOfferId = (
    await request(h.app)
      .post('/v1/offers')
      .set(h.auth)
      .send({ ...offer, name: 'EUR', currency: 'EUR' })
      .expect(201)
  ).body.id;
  const advertiserId = advertiser.body.id as number;
  const clicks = [
    ...Array.from({ length: 8 }, (_, i) => ({ offerId, subs: { sub1: `p${i}`, sub2: 'spring' }, clickedAt: at('09:00:00') })),
    ...Array.from({ length: 2 }, (_, i) => ({ offerId, subs: { sub1: `q${i}`, sub2: '=HYPERLINK("x")' }, clickedAt: at('20:00:00') })),
    { offerId: eurOfferId, subs: { sub2: 'a,"b"' }, clickedAt: at('23:50:00') },
  ].map((c, i) => ({ clickId: `click-${i}`, affiliateId: 7, ip: null, userAgent: null, ...c }));
  await insertClicks(h.db.pool, [JSON.stringify(clicks)]);
  await foldClicks(h.db.pool);
  // A retried click batch counts nothing twice.
  await insertClicks(h.db.pool, [JSON.stringify(clicks)]);
  const hold = conversion({ advertiserId, status: 'pending', holdReason: 'ctit_too_short', payout: '10', sub1: 'p1' });
  held = hold.id;
  await record([
    conversion({ advertiserId, sub1: 'p0' }),
    hold,
    conversion({ advertiserId, status: 'rejected', sub1: 'p2' }),
    conversion({
      advertiserId,
      offerId: eurOfferId,
      currency: 'EUR',
      payout: '3.5',
      payoutCurrency: 'EUR',
      revenue: null,
      revenueCurrency: null,
      sub2: 'a,"b"',
      clickedAt: at('23:50:00'),
      createdAt: new Date('2026-11-11T00:20:00Z'),
    }),
  ]);
});
afterAll(() => h.close());

const report = (query: string) => request(h.app).get(`/v1/reports?${query}`).set(h.auth);

describe('refuses what is not a report, naming the parameter', () => {
  it.each([
    ['', 'from'],
    ['from=2026-11-10&to=2026-11-09', 'to'],
    ['from=2026-11-10T10:07:00Z&to=2026-11-11', 'from'],
    ['from=2025-01-01&to=2026-11-11', 'to'],
    ['from=2026-11-10&to=2026-11-11&tz=Mars/Olympus', 'tz'],
    ['from=2026-11-10&to=2026-11-11&group_by=day,hour', 'group_by'],
    ['from=2026-11-10&to=2026-11-11&group_by=day,day', 'group_by'],
    ['from=2026-11-10&to=2026-11-11&group_by=country', 'group_by'],
    ['from=2026-11-10&to=2026-11-11&offer_id=1,x', 'offer_id'],
    ['from=2026-11-10&to=2026-11-11&format=xml', 'format'],
    ['from=2026-11-10&to=2026-11-11&limit=10001', 'limit'],
    ['from=2026-11-10&to=2026-11-11&cursor=nope', 'cursor'],
    ['from=2026-11-10&to=2026-11-11&colour=red', 'colour'],
    ['from=10/11/2026&to=2026-11-11', 'from'],
    // Never rolled over into another day.
    ['from=2026-02-30&to=2026-03-05', 'from'],
    ['from=0070-01-01&to=1970-01-02', 'from'],
    ['from=2026-02-29T00:00:00Z&to=2026-03-05', 'from'],
    ['from=2026-11-10T24:00:00Z&to=2026-11-12', 'from'],
    // A CSV holds every row: a page's parameters are refused, not ignored.
    ['from=2026-11-10&to=2026-11-11&format=csv&limit=5', 'limit'],
    ['from=2026-11-10&to=2026-11-11&format=csv&cursor=eyJvIjo1fQ', 'cursor'],
    // Zones Postgres does not know by that exact name (Node may): a 400, not a failed query.
    ['from=2026-11-10&to=2026-11-11&tz=europe/berlin', 'tz'],
    ['from=2026-11-10&to=2026-11-11&tz=US/Pacific-New', 'tz'],
  ])('%s → 400 on %s', async (query, field) => {
    const res = await report(query).expect(400);
    expect(res.body.error.code).toBe('invalid_request');
    expect(Object.keys(res.body.error.fields)).toContain(field);
  });

  it('asks for the admin token', async () => {
    await request(h.app).get('/v1/reports?from=2026-11-10&to=2026-11-11').expect(401);
  });
});

describe('a day by offer', () => {
  it('counts clicks once, conversions by status, money over approved ones by currency', async () => {
    const res = await report(`from=${DAY}&to=2026-11-12&group_by=day,offer_id`).expect(200);
    expect(res.body).toMatchObject({ tz: 'UTC', count_by: 'conversion', group_by: ['day', 'offer_id'], incomplete_results: false, next_cursor: null });
    expect(res.body.from).toBe('2026-11-10T00:00:00+00:00');
    expect(res.body.rows).toEqual([
      expect.objectContaining({ day: DAY, offer_id: offerId, clicks: 10, conversions: 2, approved: 1, pending: 1, rejected: 1 }),
      expect.objectContaining({ day: DAY, offer_id: eurOfferId, clicks: 1, conversions: 0 }),
      expect.objectContaining({ day: '2026-11-11', offer_id: eurOfferId, clicks: 0, approved: 1 }),
    ]);
    const [usd] = res.body.rows;
    expect(usd).toMatchObject({
      amount: { USD: '100.00' },
      revenue: { USD: '15.00' },
      payout: { USD: '10.00' },
      profit: { USD: '5.00' },
      pending_payout: { USD: '10.00' },
      cr: 20,
      epc: { USD: '1.0000' },
    });
    expect(res.body.totals).toMatchObject({ clicks: 11, conversions: 3, payout: { EUR: '3.50', USD: '10.00' }, profit: { EUR: '-3.50', USD: '5.00' } });
  });

  it('answers 1,000 rows a page unless limit asks for more, 10,000 at most', () => {
    const page = (query: string) => reportRequest(ReportParams.parse(Object.fromEntries(new URLSearchParams(query)))).limit;
    expect(page(`from=${DAY}&to=2026-11-12`)).toBe(1_000);
    expect(page(`from=${DAY}&to=2026-11-12&limit=10000`)).toBe(10_000);
    expect(() => page(`from=${DAY}&to=2026-11-12&limit=10001`)).toThrow();
  });

  it('pages with a cursor, saying the answer was cut', async () => {
    const first = await report(`from=${DAY}&to=2026-11-12&group_by=day,offer_id&limit=2`).expect(200);
    expect(first.body.rows).toHaveLength(2);
    expect(first.body.incomplete_results).toBe(true);
    const second = await report(`from=${DAY}&to=2026-11-12&group_by=day,offer_id&limit=2&cursor=${first.body.next_cursor}`).expect(200);
    expect(second.body.rows).toEqual([expect.objectContaining({ day: '2026-11-11', offer_id: eurOfferId })]);
    expect(second.body).toMatchObject({ incomplete_results: false, next_cursor: null });
    // Totals are the whole result's on every page.
    expect(second.body.totals).toEqual(first.body.totals);
  });
});

describe('zones', () => {
  it('puts 20:00 UTC on the next day in Asia/Kolkata (+05:30) and groups its hours on :30', async () => {
    const days = await report(`from=${DAY}&to=2026-11-12&tz=Asia/Kolkata&group_by=day`).expect(200);
    expect(days.body.rows.map((r: { day: string; clicks: number }) => [r.day, r.clicks])).toEqual([
      [DAY, 8],
      ['2026-11-11', 3],
    ]);
    const hours = await report(`from=${DAY}&to=2026-11-12&tz=Asia/Kathmandu&group_by=hour`).expect(200);
    expect(hours.body.rows[0]).toMatchObject({ hour: '2026-11-10T14:00:00+05:45', clicks: 8 });
  });

  it('counts a conversion at its click time with count_by=click', async () => {
    const byClick = await report(`from=${DAY}&to=2026-11-12&group_by=day&count_by=click`).expect(200);
    expect(byClick.body.rows.map((r: { day: string; approved: number }) => [r.day, r.approved])).toEqual([[DAY, 2]]);
  });
});

describe('sub IDs', () => {
  it('groups by sub1, a value per click, from the raw rows', async () => {
    const res = await report(`from=${DAY}&to=2026-11-12&group_by=sub1&offer_id=${offerId}`).expect(200);
    const p0 = res.body.rows.find((r: { sub1: string }) => r.sub1 === 'p0');
    expect(p0).toMatchObject({ clicks: 1, approved: 1, payout: { USD: '10.00' } });
    expect(res.body.totals).toMatchObject({ clicks: 10, approved: 1, pending: 1, rejected: 1 });
  });

  it('filters on sub2 and keeps clicks when filtering on an event (in any case, as events are recorded)', async () => {
    const res = await report(`from=${DAY}&to=2026-11-12&group_by=&sub2=spring&event=SALE`).expect(200);
    expect(res.body.rows).toEqual([expect.objectContaining({ clicks: 8, approved: 1, pending: 1, rejected: 1 })]);
  });
});

describe('CSV', () => {
  it('streams the rows with a header, a column per currency, quoted and formula-safe cells, and the trailer', async () => {
    const res = await report(`from=${DAY}&to=2026-11-12&group_by=day,sub2&format=csv`)
      .buffer(true)
      .parse((r, done) => {
        let text = '';
        r.on('data', (c: Buffer) => {
          text += c.toString();
        });
        r.on('end', () => done(null, { text, trailers: (r as unknown as { trailers: Record<string, string> }).trailers }));
      });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/csv/);
    expect(res.headers['content-disposition']).toBe('attachment; filename="report-2026-11-10-2026-11-11.csv"');
    const { text, trailers } = res.body as { text: string; trailers: Record<string, string> };
    const lines = text.trimEnd().split('\r\n');
    expect(lines[0]).toBe(
      'day,sub2,clicks,conversions,approved,pending,rejected,cr,amount_eur,amount_usd,revenue_usd,payout_eur,payout_usd,profit_eur,profit_usd,pending_payout_eur,pending_payout_usd,epc_eur,epc_usd',
    );
    expect(lines).toContain(`${DAY},"'=HYPERLINK(""x"")",2,0,0,0,0,0,${'0.00,'.repeat(9)}0.0000,0.0000`);
    expect(lines.some((l) => l.startsWith(`${DAY},"a,""b""",1,`))).toBe(true);
    expect(trailers['trackway-incomplete-results']).toBe('false');
  });
});

describe('the summary', () => {
  it('answers today, yesterday, this month and last month in the zone', async () => {
    const res = await request(h.app).get('/v1/reports/summary?tz=Europe/Berlin').set(h.auth).expect(200);
    for (const period of ['today', 'yesterday', 'this_month', 'last_month']) expect(res.body[period]).toMatchObject({ clicks: expect.any(Number) });
    expect(res.body.today.from).toMatch(/T00:00:00\+0[12]:00$/);
  });
});

describe('a review moves the numbers in its transaction', () => {
  it('approving the held conversion moves it from pending to approved', async () => {
    await request(h.app).patch(`/v1/conversions/${held}`).set(h.auth).send({ status: 'approved' }).expect(200);
    const res = await report(`from=${DAY}&to=2026-11-11&group_by=offer_id&offer_id=${offerId}`).expect(200);
    expect(res.body.rows[0]).toMatchObject({ approved: 2, pending: 0, payout: { USD: '20.00' }, pending_payout: { USD: '0.00' } });
  });
});

describe('a CSV whose client goes away', () => {
  it('gives its database connections back at once', async () => {
    // Enough rows that the answer outgrows the socket's buffers: 200,000 clicks, each its own sub1.
    await h.db.pool.query(`INSERT INTO clicks (id, offer_id, affiliate_id, sub1, created_at)
      SELECT 'bulk-' || i, ${offerId}, 1, 'partner-click-' || i, timestamptz '2026-01-01 00:00Z' + i * interval '10 seconds' FROM generate_series(1, 200000) i`);
    const server = h.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as { port: number };
    const socket = (await import('node:net')).connect(port, '127.0.0.1');
    socket.write(
      `GET /v1/reports?from=2026-01-01&to=2026-02-01&group_by=sub1&format=csv HTTP/1.1\r\nHost: x\r\nAuthorization: ${h.auth.Authorization}\r\n\r\n`,
    );
    // Read 100 kB, then stop reading until the server waits for the socket to drain, then go away.
    await new Promise<void>((resolve) => {
      let got = 0;
      socket.on('data', (data: Buffer) => {
        got += data.length;
        if (got > 100_000) {
          socket.pause();
          resolve();
        }
      });
    });
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    socket.destroy();
    const stuck = async () =>
      Number(
        (
          await h.db.pool.query(
            `SELECT count(*) AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND query LIKE 'FETCH%report_rows%' AND pid <> pg_backend_pid()`,
          )
        ).rows[0].n,
      );
    await waitFor(async () => (await stuck()) === 0 && h.db.pool.idleCount === h.db.pool.totalCount, {
      what: 'the report connections back in the pool',
      timeoutMs: 10_000,
    });
    server.close();
  }, 30_000);
});
