// The published contract: GET /openapi.json is a valid OpenAPI 3.1 document, names exactly
// the routes the app serves, and real answers (and real events) conform to its schemas.
import { validate } from '@readme/openapi-parser';
import { EVENT_TYPES, POSTBACK_FIELDS, PRESETS, PRESET_NAMES } from '@trackway/domain';
import { type Fixture, createFixture } from '@trackway/testing';
import request from 'supertest';
import { UNDOCUMENTED_MOUNTS, UNDOCUMENTED_ROUTES, buildDocument } from '../src/openapi';
import { type Answer, type OpenApiDoc, contract } from './contract';
import { type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
let doc: OpenApiDoc;
let check: ReturnType<typeof contract>;

const INGEST_URL = 'https://ingest.example:8443';

beforeAll(async () => {
  h = await startApi(undefined, undefined, { deps: { publicIngestUrl: INGEST_URL } });
  doc = (await request(h.app).get('/openapi.json').expect(200)).body;
  check = contract(doc);
});
afterAll(() => h.close());

const conforms = (method: string, path: string, res: Answer) => check.conforms(method, path, res);

const call = async (method: 'get' | 'post' | 'patch' | 'delete', path: string, body?: object, auth = true) => {
  let req = request(h.app)[method](path);
  if (auth) req = req.set(h.auth);
  const res = body === undefined ? await req : await req.send(body);
  expect({ call: `${method.toUpperCase()} ${path} → ${res.status}`, problems: conforms(method, path, res) }).toEqual({
    call: expect.any(String),
    problems: [],
  });
  return res;
};

describe('the document', () => {
  it('is served without auth, generated from the route definitions', async () => {
    const res = await request(h.app)
      .get('/openapi.json')
      .expect(200)
      .expect('content-type', /application\/json/);
    expect(res.body).toEqual(JSON.parse(JSON.stringify(buildDocument({ ingestUrl: INGEST_URL }))));
    expect(res.body.openapi).toBe('3.1.0');
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid ? [] : result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    // The validator does refuse a broken document (this test can fail).
    // biome-ignore lint/suspicious/noExplicitAny: a document's deep path, edited to break it
    const broken = structuredClone(doc) as Record<string, any>;
    broken.paths['/v1/offers'].get.responses['200'].content['application/json'].schema = { $ref: '#/components/schemas/Nothing' };
    expect((await validate(broken as never)).valid).toBe(false);
  });

  it('has the error envelope, the ingest server and every event type as a webhook', () => {
    expect(doc.components.schemas.Error).toBeDefined();
    const postback = doc.paths['/postback'] as unknown as { post: { responses: Record<string, unknown> } };
    // The ingest server is this deployment's (PUBLIC_INGEST_URL), so the reference's curl lines reach it.
    for (const path of ['/click', '/postback', '/postback/{key}']) {
      const [server] = (doc.paths[path] as unknown as { servers: { url: string; variables: { ingest: { default: string } } }[] }).servers;
      expect([server.url, server.variables.ingest.default]).toEqual(['{ingest}', INGEST_URL]);
    }
    for (const status of ['202', '400', '401', '403', '413', '415', '429', '503']) expect(postback.post.responses[status]).toBeDefined();
    expect(Object.keys(doc.webhooks).sort()).toEqual([...EVENT_TYPES].sort());
  });
});

describe('what a typed client reads from the document', () => {
  // biome-ignore lint/suspicious/noExplicitAny: walking the document's JSON
  type Json = any;
  const param = (path: string, method: string, name: string) =>
    (doc.paths[path] as Json)[method].parameters.find((p: { name: string }) => p.name === name) as { schema: Json; required?: boolean; description?: string };

  it('integer ids are integers: in paths, list filters and /click', () => {
    for (const path of ['/v1/advertisers/{id}', '/v1/affiliates/{id}', '/v1/offers/{id}']) {
      expect(param(path, 'get', 'id')).toMatchObject({ required: true, schema: { type: 'integer', minimum: 1, maximum: 2_147_483_647 } });
    }
    expect(param('/v1/offers', 'get', 'advertiser_id').schema.type).toBe('integer');
    for (const name of ['offer_id', 'affiliate_id'])
      expect(param('/click', 'get', name)).toMatchObject({ required: true, schema: { type: 'integer', minimum: 1 } });
  });

  it('…and the server reads them as before: a malformed path id is a 404, a malformed filter a 400', async () => {
    for (const id of ['abc', '1.5', '0', '2147483648', '01']) await request(h.app).get(`/v1/offers/${id}`).set(h.auth).expect(404);
    const filter = await request(h.app).get('/v1/offers?advertiser_id=abc').set(h.auth).expect(400);
    expect(filter.body.error.fields).toEqual({ advertiser_id: 'must be a number' });
  });

  it('no answer or input claims the range of a JavaScript number where the server has a smaller one', () => {
    const loose: string[] = [];
    const walk = (node: Json, at: string) => {
      if (node === null || typeof node !== 'object') return;
      if (node.minimum === -(2 ** 53 - 1) || node.maximum === 2 ** 53 - 1) loose.push(at);
      for (const [key, value] of Object.entries(node)) walk(value, `${at}/${key}`);
    };
    walk(doc, '#');
    expect(loose).toEqual([]);
    const schemas = doc.components.schemas as Json;
    expect(schemas.DeliveryAttempt.properties.duration_ms).toMatchObject({ minimum: 0 });
    expect(schemas.WebhookEndpoint.properties.rate_limit_per_second.anyOf[0]).toMatchObject({ minimum: 1, maximum: 10_000 });
    expect(schemas.Advertiser.properties.postback_rate_limit_per_second.anyOf[0]).toMatchObject({ minimum: 0, maximum: 1_000_000 });
  });

  it('PostbackRequest requires nothing, and documents every name a preset reads, saying as what and under which presets', () => {
    const body = (doc.components.schemas as Json).PostbackRequest;
    expect(body.required ?? []).toEqual([]);
    const query = (doc.paths['/postback'] as Json).get.parameters as { name: string; description: string }[];
    for (const preset of PRESET_NAMES) {
      for (const field of POSTBACK_FIELDS) {
        for (const name of PRESETS[preset].params[field]) {
          const described = name === field ? body.properties[name].description : (body.properties[name]?.description as string);
          expect({ name, described }).toEqual({ name, described: expect.stringContaining(name === field ? "Trackway's own name" : `as ${field} by the`) });
          if (name !== field) expect({ name, preset, described: described.includes(preset) }).toEqual({ name, preset, described: true });
          expect(query.map((p) => p.name)).toContain(name);
        }
      }
    }
    // A name presets read as different fields says each (tid: the order for trackway and Keitaro, the click for Offer18).
    expect(body.properties.tid.description).toMatch(/as order_id by the trackway .* and keitaro presets; as click_id by the offer18 preset/);
  });

  it('security is declared everywhere: none on /click, the key in the path and the webhooks', () => {
    expect((doc.paths['/click'] as Json).get.security).toEqual([]);
    expect((doc.paths['/postback/{key}'] as Json).get.security).toEqual([]);
    for (const type of EVENT_TYPES) expect((doc.webhooks[type] as Json).post.security).toEqual([]);
    expect((doc.paths['/click'] as Json).get.responses['302'].headers.Location).toBeDefined();
  });
});

describe('the routes the app serves are the documented ones', () => {
  type Layer = { route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: Layer[] }; rawPath?: string | string[] };

  /** Every method and path the app's routers serve, in OpenAPI syntax. */
  function served(stack: Layer[], prefix = ''): string[] {
    const found: string[] = [];
    for (const layer of stack) {
      if (layer.route) {
        for (const method of Object.keys(layer.route.methods).filter((m) => m !== '_all')) {
          // Express matches /v1/offers/ as /v1/offers (non-strict routing).
          const path = (prefix + layer.route.path).replace(/(.)\/$/, '$1');
          found.push(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`);
        }
      } else if (layer.handle?.stack) {
        const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
        if (UNDOCUMENTED_MOUNTS.includes(prefix + mount)) continue;
        found.push(...served(layer.handle.stack, prefix + mount));
      }
    }
    return found;
  }

  // Both come from the same definitions (route.ts); this holds against a route registered by hand.
  it('serves exactly the documented routes under /v1, and elsewhere only the routes listed as undocumented', () => {
    const app = served((h.app as unknown as { router: { stack: Layer[] } }).router.stack);
    const excluded = new Set(UNDOCUMENTED_ROUTES.map((r) => `${r.method} ${r.path}`));
    const documented = Object.entries(doc.paths)
      .filter(([, item]) => !(item as { servers?: unknown }).servers) // ingest's, on its own server
      .flatMap(([path, item]) =>
        Object.keys(item)
          .filter((k) => ['get', 'post', 'patch', 'put', 'delete'].includes(k))
          .map((method) => `${method} ${path}`),
      );
    expect(app.length).toBeGreaterThan(40);
    expect(app.filter((route) => !excluded.has(route) && !documented.includes(route)).sort()).toEqual([]);
    expect(documented.filter((route) => !app.includes(route)).sort()).toEqual([]);
    // Every exclusion is a route the app really has (a stale one would hide nothing).
    expect([...excluded].filter((route) => !app.includes(route))).toEqual([]);
  });

  it('walks nested routers (a route the registry lacks would be found)', () => {
    const stack = [{ handle: { stack: [{ route: { path: '/:id/extra', methods: { post: true } } }] }, rawPath: '/v1/things' }];
    expect(served(stack)).toEqual(['post /v1/things/{id}/extra']);
  });
});

describe('real answers conform to the document', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await createFixture(h.db.prisma);
    await h.db.prisma.conversion.create({
      data: {
        id: 'cnv_01J0000000000000000000OA01',
        advertiserId: fx.advertiserId,
        offerId: fx.offerId,
        affiliateId: fx.affiliateId,
        clickId: 'c',
        orderId: 'O-1',
        event: 'conversion',
        status: 'pending',
        holdReason: 'ctit_too_short',
        amount: '10.5',
        currency: 'USD',
        payout: '5',
        payoutCurrency: 'USD',
        clickedAt: new Date(),
        commission: { create: { id: 'com_01J0000000000000000000OA01', affiliateId: fx.affiliateId, amount: '5', currency: 'USD', status: 'pending' } },
      },
    });
  });

  it('advertisers and affiliates: create, list, get, update, rotate', async () => {
    const { body: advertiser } = await call('post', '/v1/advertisers', { name: 'Contract Co' });
    await call('get', '/v1/advertisers?limit=2');
    await call('get', `/v1/advertisers/${advertiser.id}`);
    await call('patch', `/v1/advertisers/${advertiser.id}`, { allowed_ips: ['203.0.113.0/24'], postback_rate_limit_per_second: 10 });
    await call('post', `/v1/advertisers/${advertiser.id}/rotate-key`);
    await call('post', `/v1/advertisers/${advertiser.id}/rotate-signing-secret`);
    const { body: affiliate } = await call('post', '/v1/affiliates', { name: 'Contract blog' });
    await call('get', '/v1/affiliates');
    await call('patch', `/v1/affiliates/${affiliate.id}`, { status: 'inactive' });
  });

  it('offers: create (both payouts), list, get, update', async () => {
    const base = { advertiser_id: fx.advertiserId, name: 'Contract offer', destination_url: 'https://shop.example/?c={click_id}', currency: 'EUR' };
    const { body: fixed } = await call('post', '/v1/offers', { ...base, payout: { type: 'fixed', amount: '2.50' }, amount_cap: '100' });
    await call('post', '/v1/offers', {
      ...base,
      payout: { type: 'percent', percent: '12.5' },
      revenue: { type: 'percent', percent: '20' },
      share_amount_with_partners: true,
    });
    await call('get', `/v1/offers?advertiser_id=${fx.advertiserId}`);
    await call('get', `/v1/offers/${fixed.id}`);
    await call('patch', `/v1/offers/${fixed.id}`, { status: 'inactive', revenue: { type: 'fixed', amount: '8.00' } });
  });

  it('conversions, commissions, payouts and postbacks', async () => {
    await call('get', '/v1/conversions');
    await call('get', '/v1/conversions/cnv_01J0000000000000000000OA01');
    await call('patch', '/v1/conversions/cnv_01J0000000000000000000OA01', { status: 'approved' });
    const { body: payout } = await call('post', '/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD' });
    await call('get', '/v1/payouts');
    await call('get', `/v1/payouts/${payout.id}`);
    await call('post', `/v1/payouts/${payout.id}/mark-sent`, { reference: 'WIRE-1' });
    await call('post', `/v1/payouts/${payout.id}/mark-sent`, { reference: 'WIRE-1' }).then((res) => expect(res.status).toBe(409));
    await call('post', '/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD' }).then((res) => expect(res.status).toBe(422));
    await h.db.prisma.postback.create({
      data: {
        id: 'pb_01J0000000000000000000OA01',
        advertiserId: fx.advertiserId,
        status: 'accepted',
        conversionId: 'cnv_01J0000000000000000000OA01',
        params: { order_id: 'O-1' },
        receivedAt: new Date(),
      },
    });
    await call('get', '/v1/postbacks/pb_01J0000000000000000000OA01');
    await call('get', '/v1/postbacks/pb_01J0000000000000000000OA02').then((res) => expect(res.status).toBe(404));
  });

  it('webhook endpoints and deliveries', async () => {
    const { body: endpoint } = await call('post', '/v1/webhook-endpoints', {
      url: 'http://127.0.0.1:9/hook',
      event_types: ['*'],
      headers: { 'X-Token': 'secret' },
      description: 'contract',
    });
    await call('get', '/v1/webhook-endpoints');
    await call('get', `/v1/webhook-endpoints/${endpoint.id}`);
    await call('patch', `/v1/webhook-endpoints/${endpoint.id}`, { rate_limit_per_second: 5 });
    await call('post', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`);
    const { body: sent } = await call('post', `/v1/webhook-endpoints/${endpoint.id}/test`);
    await call('get', `/v1/webhook-endpoints/${endpoint.id}/deliveries`);
    await call('get', `/v1/deliveries/${sent.delivery_id}`);
    // No delivery worker runs here: the pending delivery has no job, so it is settled and replayed.
    await call('post', `/v1/deliveries/${sent.delivery_id}/retry`).then((res) => expect(res.status).toBe(202));
    await call('post', `/v1/deliveries/${sent.delivery_id}/retry`).then((res) => expect(res.status).toBe(409));
    await call('post', `/v1/webhook-endpoints/${endpoint.id}/recover`, { since: '2026-01-01T00:00:00Z' });
    await call('post', `/v1/webhook-endpoints/${endpoint.id}/disable`);
    await call('post', `/v1/webhook-endpoints/${endpoint.id}/enable`);
    await call('delete', `/v1/webhook-endpoints/${endpoint.id}`);
  });

  it('partner postbacks and their deliveries', async () => {
    const status = (code: number) => (res: { status: number }) => expect(res.status).toBe(code);
    const created = await call('post', '/v1/partner-postbacks', {
      affiliate_id: fx.affiliateId,
      offer_id: fx.offerId,
      url: 'http://127.0.0.1:9/pb?cid={sub1}&x={sub3}&token=s3cr3t',
      event_types: ['conversion.approved', 'conversion.rejected'],
      method: 'POST',
      description: 'contract',
    });
    status(201)(created);
    const postback = created.body;
    await call('get', '/v1/partner-postbacks').then(status(200));
    await call('get', `/v1/partner-postbacks?affiliate_id=${fx.affiliateId}`).then(status(200));
    await call('get', `/v1/partner-postbacks/${postback.id}`).then(status(200));
    await call('patch', `/v1/partner-postbacks/${postback.id}`, { preset: 'keitaro', offer_id: null, rate_limit_per_second: 5 }).then(status(200));
    const test = await call('post', `/v1/partner-postbacks/${postback.id}/test`);
    status(202)(test);
    const sent = test.body;
    await call('get', `/v1/partner-postbacks/${postback.id}/deliveries`).then(status(200));
    await call('get', `/v1/deliveries/${sent.delivery_id}`).then(status(200));
    await call('post', `/v1/deliveries/${sent.delivery_id}/retry`).then((res) => expect(res.status).toBe(202));
    await call('post', `/v1/partner-postbacks/${postback.id}/recover`, { since: '2026-01-01T00:00:00Z' }).then(status(202));
    await call('post', `/v1/partner-postbacks/${postback.id}/disable`).then(status(200));
    await call('post', `/v1/partner-postbacks/${postback.id}/test`).then((res) => expect(res.status).toBe(409));
    await call('post', `/v1/partner-postbacks/${postback.id}/enable`).then(status(200));
    await call('post', '/v1/partner-postbacks', { affiliate_id: fx.affiliateId, url: 'https://{sub1}.example/' }).then((res) => expect(res.status).toBe(400));
    await call('delete', `/v1/partner-postbacks/${postback.id}`).then(status(204));
    await call('get', `/v1/partner-postbacks/${postback.id}`).then((res) => expect(res.status).toBe(404));
  });

  it('errors: 400, 401, 404, 413 with the envelope', async () => {
    const invalid = await call('post', '/v1/offers', { name: '' });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.fields).toBeDefined();
    expect((await call('get', '/v1/conversions?order_id[$ne]=x')).status).toBe(400);
    expect((await call('get', '/v1/advertisers/999999')).status).toBe(404);
    expect((await call('get', '/v1/webhook-endpoints/ep_nope')).status).toBe(404);
    expect((await call('get', '/v1/offers', undefined, false)).status).toBe(401);
    expect((await call('post', '/v1/affiliates', { name: 'x'.repeat(200_000) })).status).toBe(413);
  });

  it('a response that strays from its schema is caught (these checks can fail)', async () => {
    const res = await request(h.app).get(`/v1/offers/${fx.offerId}`).set(h.auth).expect(200);
    expect(conforms('get', `/v1/offers/${fx.offerId}`, res)).toEqual([]);
    expect(conforms('get', `/v1/offers/${fx.offerId}`, { ...res, body: { ...res.body, undocumented: 1 } } as request.Response)).not.toEqual([]);
    expect(conforms('get', `/v1/offers/${fx.offerId}`, { ...res, body: { ...res.body, amount_cap: 5 } } as request.Response)).not.toEqual([]);
    expect(conforms('get', `/v1/offers/${fx.offerId}`, { ...res, status: 418 } as request.Response)).not.toEqual([]);
  });
});

describe('events conform to the webhooks', () => {
  it("every event type's example from GET /v1/event-types validates against its webhook schema", async () => {
    const { body } = await call('get', '/v1/event-types');
    expect(body.data.map((t: { type: string }) => t.type).sort()).toEqual([...EVENT_TYPES].sort());
    for (const { type, example } of body.data as { type: string; example: unknown }[]) {
      const envelope = { id: 'evt_01JD8Z6Q62B4D6F8H0K2M4P6R8', type, timestamp: '2026-11-27T10:14:52.318Z', data: example };
      expect({ type, problems: check.eventProblems(envelope) }).toEqual({ type, problems: [] });
      // The schema is the type's own: a data field missing, or an unknown one, is refused.
      expect(check.eventProblems({ ...envelope, data: {} })).not.toEqual([]);
      expect(check.eventProblems({ ...envelope, data: { ...(example as object), extra: 1 } })).not.toEqual([]);
    }
  });

  it('the events the api wrote (webhook.test, conversion.approved, payout.sent) validate', async () => {
    const rows = await h.db.prisma.outboxEvent.findMany();
    const types = new Set(rows.map((row) => row.type));
    for (const type of ['webhook.test', 'conversion.approved', 'payout.sent']) expect(types).toContain(type);
    for (const row of rows)
      expect({ type: row.type, problems: check.eventProblems(row.payload as { type: string }) }).toEqual({ type: row.type, problems: [] });
  });
});
