import { createHash } from 'node:crypto';
import { createFixture, type Fixture } from '@trackway/testing';
import { deliveryIdFor, idAt } from '@trackway/domain';
import { ensurePartitions } from '@trackway/ledger';
import request from 'supertest';
import { type ApiHarness, METRICS_TOKEN, startApi } from './helpers';

let h: ApiHarness;
beforeAll(async () => {
  h = await startApi();
});
afterAll(() => h.close());

const api = () => ({
  get: (path: string) => request(h.app).get(path).set(h.auth),
  post: (path: string, body?: object) => request(h.app).post(path).set(h.auth).send(body),
  patch: (path: string, body: object) => request(h.app).patch(path).set(h.auth).send(body),
});

describe('advertisers and affiliates', () => {
  it('creates an advertiser, showing the postback key once and storing only its hash', async () => {
    const res = await api().post('/v1/advertisers', { name: 'Acme' }).expect(201);
    expect(res.body).toEqual({
      id: expect.any(Number),
      name: 'Acme',
      status: 'active',
      postback_key: expect.stringMatching(/^pk_[A-Za-z0-9_-]{32}$/),
      require_signed_postbacks: false,
      signing_secret_set: false,
      previous_signing_secret_expires_at: null,
      allowed_ips: [],
      postback_format: { preset: 'trackway' },
      postback_rate_limit_per_second: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    const row = await h.db.prisma.advertiser.findUniqueOrThrow({ where: { id: res.body.id } });
    expect(row.postbackKeyHash).toBe(createHash('sha256').update(res.body.postback_key).digest('hex'));
    expect(JSON.stringify(row)).not.toContain(res.body.postback_key);
    const got = await api().get(`/v1/advertisers/${res.body.id}`).expect(200);
    expect(got.body.postback_key).toBeUndefined();
  });

  it('rotates a postback key and announces the change to caching services', async () => {
    const { body: created } = await api().post('/v1/advertisers', { name: 'Rotor' }).expect(201);
    const { body: rotated } = await api().post(`/v1/advertisers/${created.id}/rotate-key`).expect(200);
    expect(rotated.postback_key).not.toBe(created.postback_key);
    expect(h.invalidations).toContainEqual(['advertiser', created.id]);
  });

  it('pages lists newest first with an opaque cursor', async () => {
    for (const name of ['A1', 'A2', 'A3']) await api().post('/v1/affiliates', { name }).expect(201);
    const first = await api().get('/v1/affiliates?limit=2').expect(200);
    expect(first.body.data.map((a: { name: string }) => a.name)).toEqual(['A3', 'A2']);
    const second = await api().get(`/v1/affiliates?limit=2&cursor=${first.body.next_cursor}`).expect(200);
    expect(second.body.data.map((a: { name: string }) => a.name)).toEqual(['A1']);
    expect(second.body.next_cursor).toBeNull();
    const bad = await api().get('/v1/affiliates?cursor=garbage').expect(400);
    expect(bad.body.error.fields).toEqual({ cursor: expect.any(String) });
  });

  it('updates status, and answers 400 and 404 with the envelope', async () => {
    const { body } = await api().post('/v1/affiliates', { name: 'Blog' }).expect(201);
    const res = await api().patch(`/v1/affiliates/${body.id}`, { status: 'inactive' }).expect(200);
    expect(res.body.status).toBe('inactive');
    expect((await api().post('/v1/affiliates', { name: '' }).expect(400)).body.error.fields).toEqual({ name: 'must not be empty' });
    expect((await api().post('/v1/affiliates', { name: 'x', extra: 1 }).expect(400)).body.error.code).toBe('invalid_request');
    expect((await api().get('/v1/affiliates/999999').expect(404)).body.error.code).toBe('not_found');
    await api().get('/v1/affiliates/abc').expect(404);
    await request(h.app).post('/v1/affiliates').set(h.auth).set('Content-Type', 'application/json').send('{bad').expect(400);
  });
});

describe('offers', () => {
  let advertiserId: number;
  beforeAll(async () => {
    advertiserId = (await api().post('/v1/advertisers', { name: 'Offer owner' })).body.id;
  });

  it('creates fixed and percent offers with defaults, money as strings', async () => {
    const fixed = await api()
      .post('/v1/offers', {
        advertiser_id: advertiserId,
        name: 'Spring',
        destination_url: 'https://shop.example/?c={click_id}',
        currency: 'USD',
        payout: { type: 'fixed', amount: '5.00' },
      })
      .expect(201);
    expect(fixed.body).toMatchObject({
      advertiser_id: advertiserId,
      destination_url: 'https://shop.example/?c={click_id}',
      payout: { type: 'fixed', amount: '5.00' },
      attribution_window_days: 30,
      min_ctit_seconds: 10,
      amount_cap: null,
      status: 'active',
    });
    const percent = await api()
      .post('/v1/offers', {
        advertiser_id: advertiserId,
        name: 'Rev share',
        destination_url: 'https://shop.example/',
        // Any case, as postbacks and payouts take it.
        currency: 'eur',
        payout: { type: 'percent', percent: '12.5' },
        attribution_window_days: 7,
        min_ctit_seconds: 0,
        amount_cap: '1000',
      })
      .expect(201);
    expect(percent.body).toMatchObject({
      currency: 'EUR',
      payout: { type: 'percent', percent: '12.5' },
      attribution_window_days: 7,
      min_ctit_seconds: 0,
      amount_cap: '1000.00',
    });
  });

  it('names every bad field', async () => {
    const res = await api()
      .post('/v1/offers', {
        advertiser_id: 'x',
        name: '',
        destination_url: 'ftp://x',
        currency: 'uſd',
        payout: { type: 'fixed', amount: 5 },
        min_ctit_seconds: -1,
      })
      .expect(400);
    expect(Object.keys(res.body.error.fields).sort()).toEqual(['advertiser_id', 'currency', 'destination_url', 'min_ctit_seconds', 'name', 'payout.amount']);
    const percent = await api()
      .post('/v1/offers', {
        advertiser_id: advertiserId,
        name: 'n',
        destination_url: 'https://a.example',
        currency: 'USD',
        payout: { type: 'percent', percent: '150' },
      })
      .expect(400);
    expect(percent.body.error.fields).toEqual({ 'payout.percent': 'must be at most 100' });
    const unknown = await api()
      .post('/v1/offers', { advertiser_id: 999999, name: 'n', destination_url: 'https://a.example', currency: 'USD', payout: { type: 'fixed', amount: '1' } })
      .expect(400);
    expect(unknown.body.error.fields).toEqual({ advertiser_id: 'no advertiser has this id' });
  });

  it.each([
    ['the host', 'https://{sub1}/'],
    ['the end of the host', 'https://shop.example{sub1}/'],
    ['the credentials', 'https://{sub1}@shop.example/'],
    ['the port', 'https://shop.example:{sub1}/'],
    ['the scheme', '{sub1}://shop.example/'],
  ])('refuses a destination with a macro in %s, on create and update (no open redirect)', async (_name, destination) => {
    const offer = { advertiser_id: advertiserId, name: 'Open', destination_url: destination, currency: 'USD', payout: { type: 'fixed', amount: '1' } };
    const created = await api().post('/v1/offers', offer);
    expect(created.status).toBe(400);
    expect(created.body.error.fields).toEqual({ destination_url: expect.stringMatching(/path, query or fragment/) });
    const { body } = await api()
      .post('/v1/offers', { ...offer, destination_url: 'https://shop.example/?s={sub1}' })
      .expect(201);
    const updated = await api().patch(`/v1/offers/${body.id}`, { destination_url: destination });
    expect(updated.status).toBe(400);
    expect(updated.body.error.fields).toEqual({ destination_url: expect.stringMatching(/path, query or fragment/) });
    expect((await api().get(`/v1/offers/${body.id}`).expect(200)).body.destination_url).toBe('https://shop.example/?s={sub1}');
  });

  it('updates an offer (switching payout type) and filters the list', async () => {
    const { body } = await api()
      .post('/v1/offers', {
        advertiser_id: advertiserId,
        name: 'Switch',
        destination_url: 'https://a.example',
        currency: 'USD',
        payout: { type: 'fixed', amount: '1' },
      })
      .expect(201);
    const res = await api()
      .patch(`/v1/offers/${body.id}`, { payout: { type: 'percent', percent: '5' }, status: 'inactive' })
      .expect(200);
    expect(res.body).toMatchObject({ payout: { type: 'percent', percent: '5' }, status: 'inactive' });
    expect(h.invalidations).toContainEqual(['offer', body.id]);
    const list = await api().get(`/v1/offers?advertiser_id=${advertiserId}&status=inactive`).expect(200);
    expect(list.body.data.map((o: { id: number }) => o.id)).toEqual([body.id]);
  });
});

describe('conversions and postback outcomes', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await createFixture(h.db.prisma);
    const now = new Date();
    for (const [i, status] of (['approved', 'pending', 'rejected'] as const).entries()) {
      await h.db.prisma.conversion.create({
        data: {
          id: `cnv_01J0000000000000000000000${i}`,
          advertiserId: fx.advertiserId,
          offerId: fx.offerId,
          affiliateId: fx.affiliateId,
          clickId: 'c',
          orderId: `O-${i}`,
          event: 'conversion',
          status,
          holdReason: status === 'pending' ? 'ctit_too_short' : null,
          amount: '10.5',
          currency: 'USD',
          payout: '5',
          payoutCurrency: 'USD',
          clickedAt: now,
          commission:
            status === 'rejected'
              ? undefined
              : {
                  create: {
                    id: `com_01J0000000000000000000000${i}`,
                    affiliateId: fx.affiliateId,
                    amount: '5',
                    currency: 'USD',
                    status: status === 'approved' ? 'approved' : 'pending',
                  },
                },
        },
      });
    }
  });

  it('lists with filters and the documented shape', async () => {
    const res = await api().get(`/v1/conversions?advertiser_id=${fx.advertiserId}&status=approved`).expect(200);
    expect(res.body).toEqual({
      data: [
        expect.objectContaining({
          id: 'cnv_01J00000000000000000000000',
          advertiser_id: fx.advertiserId,
          offer_id: fx.offerId,
          affiliate_id: fx.affiliateId,
          click_id: 'c',
          order_id: 'O-0',
          event: 'conversion',
          status: 'approved',
          amount: '10.50',
          currency: 'USD',
          payout: '5.00',
          fraud_flags: [],
          created_at: expect.any(String),
          updated_at: expect.any(String),
        }),
      ],
      next_cursor: null,
    });
    const byOrder = await api().get('/v1/conversions?order_id=O-2').expect(200);
    expect(byOrder.body.data.map((c: { status: string }) => c.status)).toEqual(['rejected']);
    await api().get('/v1/conversions?status=paid').expect(400);
    await api().get('/v1/conversions/cnv_01J00000000000000000000001').expect(200);
    await api().get('/v1/conversions/cnv_nope').expect(404);
  });

  it('lets a reviewer approve a held conversion, releasing the hold, and refuses impossible transitions', async () => {
    const res = await api().patch('/v1/conversions/cnv_01J00000000000000000000001', { status: 'approved' }).expect(200);
    expect(res.body).toMatchObject({ status: 'approved', hold_reason: null });
    expect((await h.db.prisma.commission.findUniqueOrThrow({ where: { conversionId: 'cnv_01J00000000000000000000001' } })).status).toBe('approved');
    const event = await h.db.prisma.outboxEvent.findFirstOrThrow({ where: { type: 'conversion.approved' } });
    const published = await h.queues.events.getJobs(['waiting', 'active', 'completed', 'delayed']);
    expect(published.flatMap((job) => job.data.events.map((e) => e.id))).toContain(event.id);
    const refused = await api().patch('/v1/conversions/cnv_01J00000000000000000000002', { status: 'approved' }).expect(409);
    expect(refused.body.error.code).toBe('invalid_transition');
  });

  /** A postback as ingest queues it. */
  const queuedPostback = (id: string) => ({
    postbackId: id,
    advertiserId: fx.advertiserId,
    receivedAt: new Date().toISOString(),
    clickId: 'c',
    orderId: 'o',
    event: 'conversion',
    amount: '1',
    status: 'approved',
  });

  it('shows a queued postback from Redis, then its outcome from Postgres', async () => {
    const id = 'pb_01J00000000000000000000000';
    await api().get(`/v1/postbacks/${id}`).expect(404);
    // A job of the shape earlier versions enqueued (one postback under its own id) is still found.
    const legacy = queuedPostback(id);
    await h.queues.postbacks.add('postback', legacy as never, { jobId: id });
    const queued = await api().get(`/v1/postbacks/${id}`).expect(200);
    expect(queued.body).toMatchObject({ id, status: 'queued', reason: null, conversion_id: null, processed_at: null });
    await h.db.prisma.postback.create({
      data: { id, advertiserId: fx.advertiserId, status: 'rejected', reason: 'unknown_click', params: {}, receivedAt: new Date() },
    });
    const done = await api().get(`/v1/postbacks/${id}`).expect(200);
    expect(done.body).toMatchObject({
      id,
      status: 'rejected',
      reason: 'unknown_click',
      conversion_id: null,
      processed_at: expect.any(String),
      ignored_params: {},
    });
  });

  it('shows the parameters a postback carried that Trackway does not read, queued and recorded', async () => {
    const id = 'pb_01J00000000000000000000009';
    const postback = { ...queuedPostback(id), ignoredParams: { sum: '30.00', et: 'lead' } };
    await h.queues.postbacks.add('postbacks', { postbacks: [postback] } as never, { jobId: id });
    expect((await api().get(`/v1/postbacks/${id}`).expect(200)).body).toMatchObject({ status: 'queued', ignored_params: { sum: '30.00', et: 'lead' } });
    await h.db.prisma.postback.create({
      data: { id, advertiserId: fx.advertiserId, status: 'accepted', params: {}, ignoredParams: { sum: '30.00' }, receivedAt: new Date() },
    });
    expect((await api().get(`/v1/postbacks/${id}`).expect(200)).body).toMatchObject({ status: 'accepted', ignored_params: { sum: '30.00' } });
  });
});

describe('input Postgres could not store is a 400, never a 500', () => {
  it.each([
    ['a NUL in a name', () => api().post('/v1/advertisers', { name: 'x\u0000' }), 'name'],
    ['a lone surrogate in a name', () => api().post('/v1/affiliates', { name: 'x\ud800' }), 'name'],
    ['an id beyond integer range in a body', () => api().post('/v1/payouts', { affiliate_id: 3_000_000_000, currency: 'USD' }), 'affiliate_id'],
    ['an id beyond integer range in a filter', () => api().get('/v1/conversions?advertiser_id=3000000000'), 'advertiser_id'],
    ['a NUL in a filter', () => api().get('/v1/conversions?order_id=a%00b'), 'order_id'],
    ['a cursor with an out-of-range id', () => api().get(`/v1/affiliates?cursor=${Buffer.from('{"id":3000000000}').toString('base64url')}`), 'cursor'],
    ['a cursor with a NUL', () => api().get(`/v1/conversions?cursor=${Buffer.from('{"id":"cnv_\u0000"}').toString('base64url')}`), 'cursor'],
  ])('%s', async (_name, send, field) => {
    const res = await send();
    expect(res.status).toBe(400);
    expect(Object.keys(res.body.error.fields)).toContain(field);
  });
});

describe('list filters are never dropped silently', () => {
  const lists = ['/v1/advertisers', '/v1/affiliates', '/v1/offers', '/v1/conversions', '/v1/payouts', '/v1/webhook-endpoints', '/v1/partner-postbacks'];
  let endpointId: string;
  beforeAll(async () => {
    endpointId = (
      await api()
        .post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/filters', event_types: ['*'] })
        .expect(201)
    ).body.id;
    lists.push(`/v1/webhook-endpoints/${endpointId}/deliveries`);
  });

  it('refuses an operator-shaped filter, naming it', async () => {
    const res = await api().get('/v1/conversions?order_id[$ne]=1').expect(400);
    expect(res.body.error).toEqual({
      code: 'invalid_request',
      message: expect.any(String),
      fields: {
        'order_id[$ne]': expect.stringMatching(
          /^is not a parameter of this list \(it takes cursor, limit, order_id, advertiser_id, affiliate_id, offer_id, status, sub1, sub2, sub3, sub4, sub5, created_from, created_to\)$/,
        ),
      },
      request_id: res.headers['x-request-id'],
    });
  });

  it('refuses an unknown parameter on every list', async () => {
    for (const path of lists) {
      const res = await api().get(`${path}?limit=5&colour=red`);
      expect([path, res.status]).toEqual([path, 400]);
      expect(Object.keys(res.body.error.fields)).toEqual(['colour']);
    }
  });

  it('refuses a filter given twice, naming it, rather than picking one', async () => {
    for (const [path, name, value] of [
      ['/v1/conversions', 'status', 'approved'],
      ['/v1/offers', 'advertiser_id', '1'],
      ['/v1/affiliates', 'limit', '2'],
    ]) {
      const res = await api().get(`${path}?${name}=${value}&${name}=${value}`).expect(400);
      expect(res.body.error.fields).toEqual({ [name]: 'must be given once, as a single value' });
    }
  });

  it('still takes every known filter', async () => {
    await api().get('/v1/conversions?limit=5&order_id=x&advertiser_id=1&affiliate_id=1&status=approved').expect(200);
    await api().get(`/v1/webhook-endpoints/${endpointId}/deliveries?status=failed&limit=1`).expect(200);
    await api().get('/v1/webhook-endpoints?enabled=true').expect(200);
    await api().get('/v1/conversions?offer_id=1&sub1=a&sub5=b&created_from=2026-01-01T00:00:00Z&created_to=2026-02-01T00:00:00Z').expect(200);
    await api().get('/v1/partner-postbacks?affiliate_id=1&offer_id=1&enabled=false').expect(200);
  });

  it('refuses more than 1,000 query parameters with a 400, instead of dropping the rest', async () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => `p${i}=1`).join('&');
    const over = await api()
      .get(`/v1/affiliates?${many(1001)}`)
      .expect(400);
    expect(over.body.error).toEqual({
      code: 'too_many_parameters',
      message: 'The query string has more than 1000 parameters.',
      request_id: expect.any(String),
    });
    // At the limit the parameters are all read (and here refused as unknown, every one of them).
    const at = await api()
      .get(`/v1/affiliates?${many(1000)}`)
      .expect(400);
    expect(Object.keys(at.body.error.fields)).toHaveLength(1000);
  });
});

describe('URLs a parser would change are refused, not stored', () => {
  let advertiserId: number;
  let offerId: number;
  let endpointId: string;
  beforeAll(async () => {
    advertiserId = (await api().post('/v1/advertisers', { name: 'URL owner' }).expect(201)).body.id;
    const offer = {
      advertiser_id: advertiserId,
      name: 'URLs',
      destination_url: 'https://shop.example/',
      currency: 'USD',
      payout: { type: 'fixed', amount: '1' },
    };
    offerId = (await api().post('/v1/offers', offer).expect(201)).body.id;
    endpointId = (
      await api()
        .post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook', event_types: ['*'] })
        .expect(201)
    ).body.id;
  });

  // The WHATWG URL parser drops tabs and line breaks anywhere, and spaces at either end: what
  // would be stored is not what was sent.
  const urls = [
    ['a line feed in the host', 'https://shop.exa\nmple/'],
    ['a carriage return in the path', 'https://shop.example/a\rb'],
    ['a tab in the query', 'https://shop.example/?a=\t1'],
    ['a CRLF at the end', 'https://shop.example/\r\n'],
    ['a leading space', ' https://shop.example/'],
    ['a trailing space', 'https://shop.example/ '],
  ];
  const reason = 'must not contain tabs or line breaks, or begin or end with a space';

  it.each(urls)('offer destination: refuses %s on create and update', async (_name, url) => {
    const created = await api().post('/v1/offers', {
      advertiser_id: advertiserId,
      name: 'n',
      destination_url: url,
      currency: 'USD',
      payout: { type: 'fixed', amount: '1' },
    });
    expect(created.status).toBe(400);
    expect(created.body.error.fields).toEqual({ destination_url: reason });
    const updated = await api().patch(`/v1/offers/${offerId}`, { destination_url: url });
    expect(updated.status).toBe(400);
    expect(updated.body.error.fields).toEqual({ destination_url: reason });
  });

  it.each(urls)('webhook endpoint URL: refuses %s on create and update', async (_name, url) => {
    const created = await api().post('/v1/webhook-endpoints', { url: url.replace('https://shop.example', 'http://127.0.0.1:9'), event_types: ['*'] });
    expect(created.status).toBe(400);
    expect(created.body.error.fields).toEqual({ url: reason });
    const updated = await api().patch(`/v1/webhook-endpoints/${endpointId}`, { url: url.replace('https://shop.example', 'http://127.0.0.1:9') });
    expect(updated.status).toBe(400);
    expect(updated.body.error.fields).toEqual({ url: reason });
  });

  it('keeps what was stored', async () => {
    expect((await api().get(`/v1/offers/${offerId}`).expect(200)).body.destination_url).toBe('https://shop.example/');
    expect((await api().get(`/v1/webhook-endpoints/${endpointId}`).expect(200)).body.url).toBe('http://127.0.0.1:9/hook');
  });
});

describe('dates the admin API accepts', () => {
  let endpointId: string;
  beforeAll(async () => {
    endpointId = (
      await api()
        .post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook', event_types: ['*'] })
        .expect(201)
    ).body.id;
  });
  const recover = (since: unknown) => api().post(`/v1/webhook-endpoints/${endpointId}/recover`, { since });

  it.each([
    ['year 0', '0000-01-01T00:00:00Z', 'must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z'],
    ['before 1970', '1969-12-31T23:59:59.999Z', 'must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z'],
    ['past 9999 once in UTC', '9999-12-31T23:00:00-01:00', 'must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z'],
    ['a day that does not exist', '2026-02-30T00:00:00Z', expect.stringMatching(/^must be an ISO 8601 date-time/)],
    ['no time zone', '2026-12-01T00:00:00', expect.stringMatching(/^must be an ISO 8601 date-time/)],
    ['a number', 1_700_000_000, expect.stringMatching(/^must be an ISO 8601 date-time/)],
  ])('refuses %s with a 400 naming the field', async (_name, since, reason) => {
    const res = await recover(since);
    expect(res.status).toBe(400);
    expect(res.body.error).toEqual({
      code: 'invalid_request',
      message: expect.any(String),
      fields: { since: reason },
      request_id: res.headers['x-request-id'],
    });
  });

  it.each([
    ['the lower bound', '1970-01-01T00:00:00Z'],
    ['the upper bound', '9999-12-31T23:59:59.999Z'],
    ['an offset', '2026-12-01T09:30:00+05:30'],
    ['microseconds', '2026-12-01T09:30:00.123456Z'],
  ])('accepts %s', async (_name, since) => {
    expect((await recover(since).expect(202)).body).toEqual({ recovered: 0, has_more: false });
  });
});

describe('metrics', () => {
  it('labels requests by route pattern, one series whatever the case of the path', async () => {
    const listSeries = async () =>
      (await request(h.app).get('/metrics').set('Authorization', `Bearer ${METRICS_TOKEN}`).expect(200)).text
        .split('\n')
        .filter((l) => l.startsWith('trackway_http_requests_total{method="GET"') && /affiliates/i.test(l) && !l.includes(':id'));
    const before = await listSeries();
    const count = (lines: string[]) => Number(lines[0]?.split(' ').at(-1) ?? 0);
    for (const path of ['/v1/affiliates', '/V1/Affiliates', '/v1/AFFILIATES']) await request(h.app).get(path).set(h.auth).expect(200);
    const after = await listSeries();
    expect(after).toEqual([expect.stringContaining('route="/v1/affiliates/"')]);
    expect(count(after) - count(before)).toBe(3);
  });
});

describe("an endpoint's deliveries", () => {
  it('pages through every day of the log newest first, a page found in the fewest days that fill it (3, 35, then all)', async () => {
    await ensurePartitions(h.db.pool, { from: new Date(Date.now() - 60 * 86_400_000) });
    const endpointId = (
      await api()
        .post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/days', event_types: ['*'] })
        .expect(201)
    ).body.id;
    // A failed delivery every 4 days back to 56 days ago (and a succeeded one beside each): 15 failed.
    const failed: string[] = [];
    for (let days = 0; days <= 56; days += 4) {
      for (const status of ['failed', 'succeeded']) {
        const event = idAt('event', new Date(Date.now() - days * 86_400_000 - 60_000));
        const id = deliveryIdFor(event, endpointId);
        await h.db.pool.query(
          `INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, attempt_count, updated_at) VALUES ($1, $2, $3, 'conversion.approved', $4, 1, now())`,
          [id, event, endpointId, status],
        );
        if (status === 'failed') failed.push(id);
      }
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await api()
        .get(`/v1/webhook-endpoints/${endpointId}/deliveries?status=failed&limit=4${cursor ? `&cursor=${cursor}` : ''}`)
        .expect(200);
      seen.push(...res.body.data.map((d: { id: string; status: string }) => (d.status === 'failed' ? d.id : `not failed: ${d.id}`)));
      cursor = res.body.next_cursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([...failed].sort().reverse());
  });
});
