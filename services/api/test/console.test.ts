// The web console over HTTP (the browser walk-through is console-browser.test.ts): behind the
// admin sign-in, under the UI CSP, its numbers the report API's, its forms CSRF-protected, and
// approve and replay doing what the API's routes do.
import { replayJobId } from '@trackway/queues';
import request from 'supertest';
import { type ConsoleSeed, expectedMetrics, metricsIn, seedConsole } from './console-seed';
import { type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
let seed: ConsoleSeed;
let cookie: string;

async function logIn(next?: string): Promise<{ cookie: string; location: string; setCookie: string }> {
  const res = await request(h.app)
    .post('/admin/login')
    .type('form')
    .send({ token: h.token, ...(next === undefined ? {} : { next }) })
    .expect(303);
  const setCookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('trackway_admin='))!;
  return { cookie: setCookie.split(';')[0], location: res.headers.location, setCookie };
}

const get = (path: string) => request(h.app).get(path).set('Cookie', cookie).set('Accept', 'text/html');
const csrfOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
const today = () => new Date().toISOString().slice(0, 10);
const addDays = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);

beforeAll(async () => {
  h = await startApi();
  seed = await seedConsole(h);
  ({ cookie } = await logIn());
}, 60_000);
afterAll(() => h.close());

describe('sign-in', () => {
  it('sends a browser without a session to the login, with the page to come back to', async () => {
    const page = await request(h.app).get('/console/review').set('Accept', 'text/html').expect(302);
    expect(page.headers.location).toBe('/admin/login?next=%2Fconsole%2Freview');
    expect((await request(h.app).get('/console?tz=UTC').set('Accept', 'text/html').expect(302)).headers.location).toBe(
      '/admin/login?next=%2Fconsole%3Ftz%3DUTC',
    );
    // A script (no HTML accepted) gets the 401 envelope; a forged or absent cookie gets nothing.
    const script = await request(h.app).get('/console').set('Accept', 'application/json').expect(401);
    expect(script.body.error.code).toBe('unauthorized');
    await request(h.app).post(`/console/review/${seed.held[0]}`).type('form').send({ status: 'approved' }).set('Accept', 'application/json').expect(401);
    const login = await request(h.app).get('/admin/login?next=%2Fconsole%2Freview').expect(200);
    expect(login.text).toContain('<input type="hidden" name="next" value="/console/review">');
  });

  it('logs in back to the page asked for, with a cookie for the whole site; never to another site', async () => {
    const { location, setCookie } = await logIn('/console/review');
    expect(location).toBe('/console/review');
    expect(setCookie).toMatch(/; Path=\/;/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    for (const next of ['//evil.example/console', 'https://evil.example/console', '/v1/advertisers', '/\\evil.example', '/console/../v1/offers', '/consoleX'])
      expect({ next, location: (await logIn(next)).location }).toEqual({ next, location: '/admin/queues' });
    expect((await logIn('/admin/queues/queue/events')).location).toBe('/admin/queues/queue/events');
    // A failed login keeps where it was going.
    const failed = await request(h.app).post('/admin/login').type('form').send({ token: 'nope', next: '/console' }).expect(303);
    expect(failed.headers.location).toBe('/admin/login?error=1&next=%2Fconsole');
  });

  it('stops working after logout, everywhere', async () => {
    const { cookie: mine } = await logIn();
    await request(h.app).get('/console/review').set('Cookie', mine).expect(200);
    await request(h.app).post('/admin/logout').set('Cookie', mine).expect(303);
    await request(h.app).get('/console/review').set('Cookie', mine).set('Accept', 'text/html').expect(302);
  });

  it('takes an admin token as a bearer token too (a script has no cookie, so no CSRF to fear)', async () => {
    const page = await request(h.app).get('/console/review').set(h.auth).expect(200);
    expect(page.text).not.toContain('name="_csrf"');
  });
});

describe('pages', () => {
  it.each([
    ['/console', 'Overview'],
    ['/console/reports', 'Reports'],
    ['/console/reports?by=sub1', 'Reports'],
    ['/console/review', 'Held for review'],
    ['/console/endpoints', 'Webhook endpoints and partner postbacks'],
  ])('%s is a page under the UI CSP, with navigation and a logout button', async (path, title) => {
    const res = await get(path)
      .expect(200)
      .expect('content-type', /text\/html/);
    const csp = res.headers['content-security-policy'];
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).toContain(`<h1>${title}</h1>`);
    expect(res.text).toContain('<form method="post" action="/admin/logout"');
    // Nothing from another host; no inline script that would run.
    expect(res.text).not.toMatch(/(src|href)="(https?:)?\/\//);
    for (const [, attributes] of res.text.matchAll(/<script([^>]*)>/g)) expect(attributes).toMatch(/src="\/console\/assets\/|type="application\/json"/);
  });

  it('serves uPlot and its own script and styles from here, for a year, by content-versioned URLs', async () => {
    const page = await get('/console').expect(200);
    const urls = [...page.text.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(urls.map((u) => u.replace(/\?v=[0-9a-f]{12}$/, ''))).toEqual([
      '/console/assets/console.css',
      '/console/assets/uPlot.min.css',
      '/console/assets/uPlot.min.js',
      '/console/assets/console.js',
    ]);
    for (const url of urls) {
      const res = await request(h.app).get(url.replace(/&amp;/g, '&')).expect(200);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers['content-type']).toMatch(url.includes('.js') ? /javascript/ : /text\/css/);
    }
    expect((await request(h.app).get(urls[2]).expect(200)).text).toContain('uPlot');
    // Pages without a chart load no script at all.
    expect((await get('/console/review').expect(200)).text).not.toContain('<script');
  });

  it('shows the overview’s numbers as GET /v1/reports and /v1/reports/summary answer them', async () => {
    const from = addDays(today(), -29);
    const to = addDays(today(), 1);
    const page = await get('/console').expect(200);
    expect(page.text).toContain(`name="from" value="${from}"`);
    const shown = metricsIn(page.text);
    const report = (await request(h.app).get(`/v1/reports?from=${from}&to=${to}&group_by=day`).set(h.auth).expect(200)).body;
    const summary = (await request(h.app).get('/v1/reports/summary').set(h.auth).expect(200)).body;
    const expected = expectedMetrics('totals', report.totals);
    for (const row of report.rows) expectedMetrics(`rows.${row.day}`, row, expected);
    for (const period of ['today', 'yesterday', 'this_month', 'last_month']) expectedMetrics(`summary.${period}`, summary[period], expected);
    for (const [name, value] of Object.entries(shown)) expect({ name, value }).toEqual({ name, value: expected[name] });
    // Every total is on the page, and the seeded ones are there.
    for (const name of Object.keys(expected).filter((n) => n.startsWith('totals.'))) expect(shown).toHaveProperty([name]);
    expect(shown).toMatchObject({ 'totals.clicks': '21', 'totals.approved': '3', 'totals.pending': '2', 'totals.revenue.USD': '55.00' });
    const chart = JSON.parse(/<script type="application\/json" id="chart-data">([^<]*)<\/script>/.exec(page.text)![1]);
    expect(chart).toMatchObject({ tz: 'UTC', unit: 'day' });
    expect(chart.x).toHaveLength(30);
    expect(chart.series.map((s: { label: string }) => s.label)).toEqual(['Clicks', 'Conversions', 'Payout EUR', 'Revenue USD', 'Payout USD']);
    expect(chart.series[0].values.reduce((a: number, b: number) => a + b, 0)).toBe(21);
  });

  it('charts per hour a range of two days or less, in the zone asked for', async () => {
    const from = addDays(today(), -1);
    const page = await get(`/console?from=${from}&to=${addDays(from, 2)}&tz=Asia/Kolkata`).expect(200);
    const chart = JSON.parse(/id="chart-data">([^<]*)</.exec(page.text)![1]);
    expect(chart).toMatchObject({ tz: 'Asia/Kolkata', unit: 'hour' });
    expect(chart.x).toHaveLength(48);
    const report = (
      await request(h.app)
        .get(`/v1/reports?from=${from}&to=${addDays(from, 2)}&tz=Asia/Kolkata&group_by=hour`)
        .set(h.auth)
        .expect(200)
    ).body;
    const expected = expectedMetrics('totals', report.totals);
    for (const row of report.rows) expectedMetrics(`rows.${row.hour}`, row, expected);
    for (const [name, value] of Object.entries(metricsIn(page.text)).filter(([n]) => !n.startsWith('summary.')))
      expect({ name, value }).toEqual({ name, value: expected[name] });
  });

  it('tables a report by offer and by sub ID as the API does, with sub IDs shown as text, and its CSV', async () => {
    const range = `from=${addDays(today(), -29)}&to=${addDays(today(), 1)}`;
    for (const by of ['offer_id', 'affiliate_id', 'sub1', 'sub2']) {
      const page = await get(`/console/reports?by=${by}&${range}`).expect(200);
      const report = (await request(h.app).get(`/v1/reports?${range}&group_by=${by}`).set(h.auth).expect(200)).body;
      const expected = expectedMetrics('totals', report.totals);
      for (const row of report.rows) expectedMetrics(`rows.${row[by] ?? ''}`, row, expected);
      const shown = metricsIn(page.text);
      expect(Object.keys(shown).length).toBeGreaterThan(10);
      for (const [name, value] of Object.entries(shown)) expect({ by, name, value }).toEqual({ by, name, value: expected[name] });
      expect(page.text).toContain(`href="/console/reports.csv?${range.replace('&', '&amp;')}&amp;by=${by}"`);
    }
    const offers = await get(`/console/reports?${range}`).expect(200);
    expect(offers.text).toContain('<span class="name">Spring sale</span>');
    const subs = await get(`/console/reports?by=sub1&${range}`).expect(200);
    expect(subs.text).not.toContain(seed.hostileSub);
    expect(subs.text).toContain('&lt;img src=x onerror=alert(1)&gt;');

    const csv = await get(`/console/reports.csv?by=sub2&${range}`).expect(200);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="report-/);
    const fromApi = await request(h.app).get(`/v1/reports?${range}&group_by=sub2&format=csv`).set(h.auth).expect(200);
    expect(csv.text).toBe(fromApi.text);
    expect(csv.text.split('\r\n')[0]).toMatch(/^sub2,clicks,conversions/);
  });

  it.each([
    ['/console?from=garbage&to=2026-12-01', 'from'],
    ['/console?from=2026-12-01&to=2026-11-01', 'to'],
    ['/console?from=2026-12-01', 'to'],
    ['/console?from=2026-11-01&to=2026-12-01&tz=Mars/Olympus', 'tz'],
    ['/console?from=2026-11-01&to=2026-12-01&group_by=hour', 'group_by'],
    ['/console?cursor=x', 'cursor'],
    ['/console?from=2026-11-01&from=2026-11-02&to=2026-12-01', 'from'],
    ['/console/reports?by=country', 'by'],
    ['/console/reports?offer_id=1,x', 'offer_id'],
    ['/console/reports.csv?from=garbage&to=2026-12-01&by=offer_id', 'from'],
  ])('%s is a 400 page naming %s, with the form to fix it', async (path, field) => {
    const res = await get(path)
      .expect(400)
      .expect('content-type', /text\/html/);
    expect(res.text).toContain(`<li><code>${field}</code>`);
    expect(res.text).toContain('<form method="get"');
    expect(res.text).not.toContain('<script');
  });
});

describe('review', () => {
  const reviewPage = async () => (await get('/console/review').expect(200)).text;
  const totals = async () => {
    const range = `from=${addDays(today(), -29)}&to=${addDays(today(), 1)}`;
    return (await request(h.app).get(`/v1/reports?${range}&group_by=`).set(h.auth).expect(200)).body.totals;
  };

  it('lists held conversions newest first, sub IDs as text', async () => {
    const text = await reviewPage();
    expect(metricsIn(text)).toEqual({ held: '2' });
    const order = [...text.matchAll(/<tr data-conversion="([^"]+)"/g)].map((m) => m[1]);
    expect(order).toEqual([...seed.held].reverse());
    expect(text).not.toContain(seed.hostileSub);
    expect(text).toContain('Coupons &amp; Co');
  });

  it('refuses a form without this session’s CSRF token: 403, the envelope, nothing changed', async () => {
    const id = seed.held[0];
    for (const token of [undefined, 'wrong', csrfOf((await logIn().then((s) => request(h.app).get('/console/review').set('Cookie', s.cookie))).text)]) {
      const res = await request(h.app)
        .post(`/console/review/${id}`)
        .set('Cookie', cookie)
        .type('form')
        .send({ status: 'approved', ...(token === undefined ? {} : { _csrf: token }) })
        .expect(403);
      expect(res.body.error.code).toBe('forbidden');
    }
    expect((await request(h.app).get(`/v1/conversions/${id}`).set(h.auth).expect(200)).body.status).toBe('pending');
  });

  it('approves a held conversion as PATCH /v1/conversions/{id} does: its report numbers move', async () => {
    const [older] = seed.held;
    const before = await totals();
    const res = await request(h.app)
      .post(`/console/review/${older}`)
      .set('Cookie', cookie)
      .type('form')
      .send({ status: 'approved', _csrf: csrfOf(await reviewPage()) })
      .expect(303);
    expect(res.headers.location).toBe(`/console/review?flash=approved&id=${older}`);
    const conversion = (await request(h.app).get(`/v1/conversions/${older}`).set(h.auth).expect(200)).body;
    expect(conversion).toMatchObject({ status: 'approved', hold_reason: null });
    const after = await totals();
    expect(after.approved).toBe(before.approved + 1);
    expect(after.pending).toBe(before.pending - 1);
    expect(Number(after.payout.USD) - Number(before.payout.USD)).toBe(8);
    expect(Number(after.amount.USD) - Number(before.amount.USD)).toBe(80);
    // The event an approval writes, as the API's review writes it.
    expect(await h.db.prisma.outboxEvent.count({ where: { type: 'conversion.approved' } })).toBe(1);
    const page = await get(res.headers.location).expect(200);
    expect(page.text).toContain(`Conversion ${older} approved.`);
    expect(metricsIn(page.text)).toEqual({ held: '1' });
  });

  it('rejects one; an unknown id or status is said on the page, not thrown', async () => {
    const token = csrfOf(await reviewPage());
    const post = (id: string, status: string) =>
      request(h.app).post(`/console/review/${id}`).set('Cookie', cookie).type('form').send({ status, _csrf: token }).expect(303);
    expect((await post(seed.held[1], 'rejected')).headers.location).toBe(`/console/review?flash=rejected&id=${seed.held[1]}`);
    expect((await request(h.app).get(`/v1/conversions/${seed.held[1]}`).set(h.auth)).body.status).toBe('rejected');
    // Again, the other way: the state machine says no, and the page says so.
    const again = await post(seed.held[1], 'approved');
    expect(again.headers.location).toBe(`/console/review?error=invalid_transition&id=${seed.held[1]}`);
    expect((await get(again.headers.location).expect(200)).text).toContain('cannot change that way');
    expect((await post('cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC', 'approved')).headers.location).toBe(
      '/console/review?error=not_found&id=cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC',
    );
    expect((await post('nope', 'approved')).headers.location).toBe('/console/review?error=not_found');
    expect((await post(seed.held[1], 'paid')).headers.location).toBe(`/console/review?error=invalid_request&id=${seed.held[1]}`);
    expect((await reviewPage()).match(/Nothing is held for review/)).not.toBeNull();
  });
});

describe('endpoints', () => {
  it('shows each endpoint’s deliveries of the last 24 hours and its success', async () => {
    const text = (await get('/console/endpoints').expect(200)).text;
    expect(metricsIn(text)).toMatchObject({
      [`endpoints.${seed.endpointId}.succeeded`]: '1',
      [`endpoints.${seed.endpointId}.failed`]: '1',
      [`endpoints.${seed.endpointId}.pending`]: '0',
      [`endpoints.${seed.endpointId}.success_percent`]: '50.0',
      [`endpoints.${seed.partnerPostbackId}.success_percent`]: '50.0',
    });
    for (const id of seed.failedDeliveries) expect(text).toContain(`<tr data-delivery="${id}">`);
    expect(text).toContain('HTTP 500');
    // A partner postback's URL as the API shows it: secrets masked.
    expect(text).not.toContain('s3cr3t');
  });

  it('replays a failed delivery as POST /v1/deliveries/{id}/retry does', async () => {
    const [viaConsole, viaApi] = seed.failedDeliveries;
    const page = (await get('/console/endpoints').expect(200)).text;
    await request(h.app).post(`/console/deliveries/${viaConsole}/replay`).set('Cookie', cookie).type('form').send({}).expect(403);
    const res = await request(h.app)
      .post(`/console/deliveries/${viaConsole}/replay`)
      .set('Cookie', cookie)
      .type('form')
      .send({ _csrf: csrfOf(page) })
      .expect(303);
    expect(res.headers.location).toBe(`/console/endpoints?flash=replayed&id=${viaConsole}`);
    await request(h.app).post(`/v1/deliveries/${viaApi}/retry`).set(h.auth).expect(202);
    for (const id of [viaConsole, viaApi]) {
      const delivery = await h.db.prisma.delivery.findUniqueOrThrow({ where: { id } });
      expect(delivery).toMatchObject({ status: 'pending', replayCount: 1 });
      const job = await h.queues.deliveries.getJob(replayJobId(delivery.eventId, delivery.endpointId, 1));
      expect(job?.data).toEqual({ deliveryId: id, endpointId: delivery.endpointId, eventId: delivery.eventId, replay: true, replayCount: 1 });
    }
    const after = await get(res.headers.location).expect(200);
    expect(after.text).toContain(`Delivery ${viaConsole} queued again.`);
    expect(after.text).not.toContain(`<tr data-delivery="${viaConsole}">`);
    // Pending with its job live: the API's 409, said on the page.
    const again = await request(h.app)
      .post(`/console/deliveries/${viaConsole}/replay`)
      .set('Cookie', cookie)
      .type('form')
      .send({ _csrf: csrfOf(page) })
      .expect(303);
    expect(again.headers.location).toBe(`/console/endpoints?error=delivery_pending&id=${viaConsole}`);
  });
});
