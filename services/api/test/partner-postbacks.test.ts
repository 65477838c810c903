// Partner postbacks (/v1/partner-postbacks), what they change elsewhere (webhook endpoints see
// only webhooks; deliveries list missing macros), offers' revenue and the conversions list's new
// filters: against real Postgres, through the app.
import { EVENT_CATALOG, newId } from '@trackway/domain';
import { type Fixture, createFixture } from '@trackway/testing';
import request from 'supertest';
import { type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
let fx: Fixture;
beforeAll(async () => {
  h = await startApi();
  fx = await createFixture(h.db.prisma);
});
afterAll(() => h.close());

const api = () => ({
  get: (path: string) => request(h.app).get(path).set(h.auth),
  post: (path: string, body?: object) => request(h.app).post(path).set(h.auth).send(body),
  patch: (path: string, body: object) => request(h.app).patch(path).set(h.auth).send(body),
  delete: (path: string) => request(h.app).delete(path).set(h.auth),
});

const URL = 'http://127.0.0.1:9/postback?cid={sub1}&payout={payout}&token=s3cr3t&x={sub3}';
const MASKED = 'http://127.0.0.1:9/postback?cid={sub1}&payout={payout}&token=***&x={sub3}';

const create = (body: object) => api().post('/v1/partner-postbacks', { affiliate_id: fx.affiliateId, url: URL, ...body });
const fieldsOf = async (body: object) => (await create(body).expect(400)).body.error.fields as Record<string, string>;

describe('creating a partner postback', () => {
  it('answers 201 with the URL whole this once, stores it sealed, and shows it masked afterwards', async () => {
    const res = await create({}).expect(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^pp_[0-9A-Z]{26}$/),
      affiliate_id: fx.affiliateId,
      offer_id: null,
      url: URL,
      method: 'GET',
      preset: null,
      event_types: ['conversion.approved'],
      description: null,
      rate_limit_per_second: null,
      enabled: true,
      disabled_reason: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    const row = await h.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: res.body.id } });
    expect(row).toMatchObject({ kind: 'partner_postback', url: MASKED, secretSealed: null, method: 'GET', affiliateId: fx.affiliateId, offerId: null });
    expect(row.urlSealed).not.toContain('s3cr3t');
    expect(h.deps.box.open(row.urlSealed!)).toBe(URL);
    expect(h.invalidations).toContainEqual(['endpoint', res.body.id]);

    const got = await api().get(`/v1/partner-postbacks/${res.body.id}`).expect(200);
    expect(got.body).toEqual({ ...res.body, url: MASKED });
    expect(JSON.stringify((await api().get('/v1/partner-postbacks').expect(200)).body)).not.toContain('s3cr3t');
  });

  it('takes an offer, event types, POST, a preset, a description and a rate limit', async () => {
    const res = await create({
      offer_id: fx.offerId,
      event_types: ['conversion.approved', 'conversion.rejected', 'conversion.approved'],
      method: 'POST',
      preset: 'keitaro',
      description: 'Keitaro of the affiliate',
      rate_limit_per_second: 10,
    }).expect(201);
    expect(res.body).toMatchObject({
      offer_id: fx.offerId,
      event_types: ['conversion.approved', 'conversion.rejected'],
      method: 'POST',
      preset: 'keitaro',
      description: 'Keitaro of the affiliate',
      rate_limit_per_second: 10,
    });
  });

  it('refuses a URL with an unknown macro, a macro in its host, credentials, or a private address', async () => {
    expect(await fieldsOf({ url: 'https://tracker.example/pb?cid={foo}' })).toEqual({ url: expect.stringContaining('{foo}') });
    expect(await fieldsOf({ url: 'https://{sub1}.example.com/' })).toEqual({ url: expect.stringMatching(/host/) });
    expect(await fieldsOf({ url: 'https://user:pw@tracker.example/pb' })).toEqual({ url: expect.stringMatching(/credentials/) });
    expect(await fieldsOf({ url: 'ftp://tracker.example/pb' })).toEqual({ url: 'must be an http(s) URL' });
    expect(await fieldsOf({ url: 'http://10.0.0.7/pb?cid={sub1}' })).toEqual({ url: expect.stringMatching(/private/) });
    expect(await fieldsOf({ url: 'http://[::1]/pb' })).toEqual({ url: expect.stringMatching(/private/) });
    expect(await fieldsOf({ url: 'not a url' })).toEqual({ url: expect.any(String) });
    expect(await fieldsOf({ url: `https://tracker.example/?${'a'.repeat(2048)}` })).toEqual({ url: 'must be at most 2048 characters' });
    // Masked, a query of one-letter values grows past what the url column holds.
    const many = Array.from({ length: 600 }, (_, i) => `${String.fromCharCode(97 + (i % 26))}=1`).join('&');
    expect(await fieldsOf({ url: `https://tracker.example/?${many}`.slice(0, 2048) })).toEqual({ url: expect.stringMatching(/masked/) });
  });

  it('refuses http where the deployment allows only https, like webhook endpoints', async () => {
    const strict = await startApi(undefined, h.db, { deps: { webhooks: { schedule: [0], allowHttp: false, allowedCidrs: [] } } });
    try {
      const res = await request(strict.app)
        .post('/v1/partner-postbacks')
        .set(strict.auth)
        .send({ affiliate_id: fx.affiliateId, url: 'http://tracker.example/pb?cid={sub1}' })
        .expect(400);
      expect(res.body.error.fields).toEqual({ url: 'must be an https URL' });
    } finally {
      await strict.close();
    }
  });

  it('refuses bad event types, methods and presets, unknown references and fields', async () => {
    expect(await fieldsOf({ event_types: ['conversion.paid'] })).toEqual({ 'event_types.0': expect.stringMatching(/^must be one of/) });
    expect(await fieldsOf({ event_types: ['payout.sent'] })).toEqual({ 'event_types.0': expect.stringMatching(/^must be one of/) });
    expect(await fieldsOf({ event_types: [] })).toEqual({ event_types: 'subscribe to at least one event type' });
    expect(await fieldsOf({ method: 'PUT' })).toEqual({ method: 'must be one of "GET", "POST"' });
    expect(await fieldsOf({ preset: 'tune' })).toEqual({ preset: expect.stringMatching(/^must be one of "voluum"/) });
    expect(await fieldsOf({ affiliate_id: 2_000_000_000 })).toEqual({ affiliate_id: 'no affiliate has this id' });
    expect(await fieldsOf({ offer_id: 2_000_000_000 })).toEqual({ offer_id: 'no offer has this id' });
    expect(await fieldsOf({ affiliate_id: 2_000_000_000, offer_id: 2_000_000_000 })).toEqual({
      affiliate_id: 'no affiliate has this id',
      offer_id: 'no offer has this id',
    });
    expect(await fieldsOf({ secret: 'x' })).toEqual({ secret: 'is not a field this request takes' });
    expect((await api().post('/v1/partner-postbacks', { url: URL }).expect(400)).body.error.fields).toEqual({ affiliate_id: 'is required' });
  });
});

describe('reading, changing and deleting partner postbacks', () => {
  let affiliateId: number;
  let globalId: string;
  let offerLevelId: string;
  beforeAll(async () => {
    affiliateId = (await api().post('/v1/affiliates', { name: 'Own tracker' }).expect(201)).body.id;
    globalId = (await create({ affiliate_id: affiliateId }).expect(201)).body.id;
    offerLevelId = (await create({ affiliate_id: affiliateId, offer_id: fx.offerId }).expect(201)).body.id;
  });

  it('lists newest first, filtered by affiliate, offer and enabled', async () => {
    const mine = await api().get(`/v1/partner-postbacks?affiliate_id=${affiliateId}`).expect(200);
    expect(mine.body.data.map((p: { id: string }) => p.id)).toEqual([offerLevelId, globalId]);
    const byOffer = await api().get(`/v1/partner-postbacks?affiliate_id=${affiliateId}&offer_id=${fx.offerId}`).expect(200);
    expect(byOffer.body.data.map((p: { id: string }) => p.id)).toEqual([offerLevelId]);
    const paged = await api().get(`/v1/partner-postbacks?affiliate_id=${affiliateId}&limit=1`).expect(200);
    expect(paged.body.next_cursor).toEqual(expect.any(String));
    const next = await api().get(`/v1/partner-postbacks?affiliate_id=${affiliateId}&limit=1&cursor=${paged.body.next_cursor}`).expect(200);
    expect(next.body.data.map((p: { id: string }) => p.id)).toEqual([globalId]);
    await api().post(`/v1/partner-postbacks/${globalId}/disable`).expect(200);
    const enabled = await api().get(`/v1/partner-postbacks?affiliate_id=${affiliateId}&enabled=true`).expect(200);
    expect(enabled.body.data.map((p: { id: string }) => p.id)).toEqual([offerLevelId]);
    const enabledAgain = await api().post(`/v1/partner-postbacks/${globalId}/enable`).expect(200);
    expect(enabledAgain.body).toMatchObject({ enabled: true, disabled_reason: null });
    expect((await api().get('/v1/partner-postbacks?affiliate_id=abc').expect(400)).body.error.fields).toEqual({ affiliate_id: 'must be a number' });
  });

  it('PATCH checks, seals and masks a new URL, and clears the offer and the preset with null', async () => {
    const url = 'https://tracker.example/new?click={sub1}&key=abc123&st={status}';
    const res = await api().patch(`/v1/partner-postbacks/${offerLevelId}`, { url, method: 'POST', preset: 'binom', description: 'moved' }).expect(200);
    expect(res.body).toMatchObject({
      url: 'https://tracker.example/new?click={sub1}&key=***&st={status}',
      method: 'POST',
      preset: 'binom',
      offer_id: fx.offerId,
    });
    const row = await h.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: offerLevelId } });
    expect(h.deps.box.open(row.urlSealed!)).toBe(url);
    expect(h.invalidations).toContainEqual(['endpoint', offerLevelId]);
    const cleared = await api().patch(`/v1/partner-postbacks/${offerLevelId}`, { offer_id: null, preset: null, description: null }).expect(200);
    expect(cleared.body).toMatchObject({
      offer_id: null,
      preset: null,
      description: null,
      url: 'https://tracker.example/new?click={sub1}&key=***&st={status}',
    });

    const refused = async (body: object) => (await api().patch(`/v1/partner-postbacks/${offerLevelId}`, body).expect(400)).body.error.fields;
    expect(await refused({ url: 'https://tracker.example/?x={nope}' })).toEqual({ url: expect.stringContaining('{nope}') });
    expect(await refused({ url: 'http://192.168.1.1/pb' })).toEqual({ url: expect.stringMatching(/private/) });
    expect(await refused({ offer_id: 2_000_000_000 })).toEqual({ offer_id: 'no offer has this id' });
    expect(await refused({ affiliate_id: affiliateId })).toEqual({ affiliate_id: 'is not a field this request takes' });
    expect(await refused({ event_types: ['webhook.test'] })).toEqual({ 'event_types.0': expect.stringMatching(/^must be one of/) });
    // The masked URL sent back as it was read: refused, never stored as "***".
    expect(await refused({ url: 'https://tracker.example/new?click={sub1}&key=***&st={status}' })).toEqual({ url: expect.stringContaining('masked') });
  });

  it('refuses a preset without a status parameter for anything but approvals (its tracker would count them as conversions)', async () => {
    const fields = await fieldsOf({
      url: 'https://tracker.example/postback?nid=3',
      preset: 'everflow',
      event_types: ['conversion.approved', 'conversion.rejected'],
    });
    expect(fields).toEqual({ event_types: expect.stringContaining('everflow preset writes no status') });
    const voluum = (await create({ url: 'https://tracker.example/postback', preset: 'voluum' }).expect(201)).body as { id: string };
    const refused = await api()
      .patch(`/v1/partner-postbacks/${voluum.id}`, { event_types: ['conversion.created'] })
      .expect(400);
    expect(refused.body.error.fields).toEqual({ event_types: expect.stringContaining('voluum preset writes no status') });
    // Dropping the preset makes the types fine; a preset with a status takes them all.
    await api()
      .patch(`/v1/partner-postbacks/${voluum.id}`, { preset: null, event_types: ['conversion.created'] })
      .expect(200);
    await create({ url: 'https://tracker.example/postback', preset: 'keitaro', event_types: ['conversion.approved', 'conversion.rejected'] }).expect(201);
  });

  it('DELETE removes it (404 afterwards)', async () => {
    const { body } = await create({ affiliate_id: affiliateId }).expect(201);
    await api().delete(`/v1/partner-postbacks/${body.id}`).expect(204);
    expect(h.invalidations).toContainEqual(['endpoint', body.id]);
    await api().get(`/v1/partner-postbacks/${body.id}`).expect(404);
    await api().delete(`/v1/partner-postbacks/${body.id}`).expect(404);
    expect(await h.db.prisma.webhookEndpoint.findUnique({ where: { id: body.id } })).toBeNull();
  });

  it('answers 404 for an id that is not a partner postback', async () => {
    await api().get('/v1/partner-postbacks/pp_01JD8Z6Q64E6G8J0L2N4Q6S8UZ').expect(404);
    await api().get('/v1/partner-postbacks/nope').expect(404);
    const { body: endpoint } = await api()
      .post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook', event_types: ['*'] })
      .expect(201);
    const notFound = await api().get(`/v1/partner-postbacks/${endpoint.id}`).expect(404);
    expect(notFound.body.error).toMatchObject({ code: 'not_found', message: 'Partner postback not found.' });
  });
});

describe('webhook endpoints see only webhooks', () => {
  it('a partner postback is 404 on every webhook endpoint route, and absent from their list', async () => {
    const { body: postback } = await create({}).expect(201);
    const base = `/v1/webhook-endpoints/${postback.id}`;
    await api().get(base).expect(404);
    await api().patch(base, { description: 'x' }).expect(404);
    await api().delete(base).expect(404);
    for (const action of ['enable', 'disable', 'rotate-secret', 'test']) await api().post(`${base}/${action}`).expect(404);
    await api().get(`${base}/deliveries`).expect(404);
    await api().post(`${base}/recover`, { since: '2026-01-01T00:00:00Z' }).expect(404);

    // A partner row under a webhook-shaped id (not one the api mints) is refused as well.
    const disguised = newId('endpoint');
    await h.db.prisma.webhookEndpoint.create({
      data: {
        id: disguised,
        kind: 'partner_postback',
        url: MASKED,
        urlSealed: h.deps.box.seal(URL),
        affiliateId: fx.affiliateId,
        method: 'GET',
        eventTypes: ['conversion.approved'],
      },
    });
    await api().get(`/v1/webhook-endpoints/${disguised}`).expect(404);
    await api().post(`/v1/webhook-endpoints/${disguised}/rotate-secret`).expect(404);
    expect((await api().get('/v1/webhook-endpoints?limit=200').expect(200)).body.data.map((e: { id: string }) => e.id)).not.toContain(disguised);
    await h.db.prisma.webhookEndpoint.delete({ where: { id: disguised } });

    const { body: endpoint } = await api()
      .post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook', event_types: ['*'] })
      .expect(201);
    const listed = (await api().get('/v1/webhook-endpoints?limit=200').expect(200)).body.data.map((e: { id: string }) => e.id);
    expect(listed).toContain(endpoint.id);
    expect(listed).not.toContain(postback.id);
    const partners = (await api().get('/v1/partner-postbacks?limit=200').expect(200)).body.data.map((e: { id: string }) => e.id);
    expect(partners).toContain(postback.id);
    expect(partners).not.toContain(endpoint.id);
  });
});

describe('a test partner postback', () => {
  it('writes a webhook.test event with a sample conversion of its affiliate and offer, and its delivery with the missing macros', async () => {
    const { body: postback } = await create({ offer_id: fx.offerId }).expect(201);
    const sent = await api().post(`/v1/partner-postbacks/${postback.id}/test`).expect(202);
    expect(sent.body).toEqual({ event_id: expect.stringMatching(/^evt_/), delivery_id: expect.stringMatching(/^dlv_/) });

    const event = await h.db.prisma.outboxEvent.findUniqueOrThrow({ where: { id: sent.body.event_id } });
    const sample = EVENT_CATALOG['conversion.approved'].example.conversion as Record<string, unknown>;
    expect(event.type).toBe('webhook.test');
    expect((event.payload as { data: unknown }).data).toEqual({
      endpoint_id: postback.id,
      message: expect.any(String),
      conversion: { ...sample, affiliate_id: fx.affiliateId, offer_id: fx.offerId },
    });
    const delivery = await h.db.prisma.delivery.findUniqueOrThrow({ where: { id: sent.body.delivery_id } });
    // The sample has no sub3, which the URL carries.
    expect(delivery).toMatchObject({ endpointId: postback.id, eventId: event.id, eventType: 'webhook.test', status: 'pending', missingMacros: ['sub3'] });

    const listed = await api().get(`/v1/partner-postbacks/${postback.id}/deliveries`).expect(200);
    expect(listed.body.data).toEqual([expect.objectContaining({ id: delivery.id, endpoint_id: postback.id, missing_macros: ['sub3'], status: 'pending' })]);
    const one = await api().get(`/v1/deliveries/${delivery.id}`).expect(200);
    expect(one.body).toMatchObject({ endpoint_id: postback.id, missing_macros: ['sub3'], attempts: [] });
    await api().get(`/v1/partner-postbacks/${postback.id}/deliveries?status=failed`).expect(200, { data: [], next_cursor: null });
  });

  it("a global one's sample keeps the catalog's offer; a disabled one is 409", async () => {
    const { body: postback } = await create({ url: 'http://127.0.0.1:9/pb?cid={sub1}' }).expect(201);
    const sent = await api().post(`/v1/partner-postbacks/${postback.id}/test`).expect(202);
    const event = await h.db.prisma.outboxEvent.findUniqueOrThrow({ where: { id: sent.body.event_id } });
    const { conversion } = (event.payload as { data: { conversion: { affiliate_id: number; offer_id: number } } }).data;
    expect(conversion).toMatchObject({
      affiliate_id: fx.affiliateId,
      offer_id: (EVENT_CATALOG['conversion.approved'].example.conversion as { offer_id: number }).offer_id,
    });
    expect((await h.db.prisma.delivery.findUniqueOrThrow({ where: { id: sent.body.delivery_id } })).missingMacros).toEqual([]);

    await api().post(`/v1/partner-postbacks/${postback.id}/disable`).expect(200);
    expect((await api().post(`/v1/partner-postbacks/${postback.id}/test`).expect(409)).body.error.code).toBe('endpoint_disabled');
    expect((await api().post(`/v1/partner-postbacks/${postback.id}/recover`, { since: '2026-01-01T00:00:00Z' }).expect(409)).body.error.code).toBe(
      'endpoint_disabled',
    );
  });

  it('recover re-sends its failed deliveries; a webhook delivery lists no missing macros', async () => {
    const { body: postback } = await create({}).expect(201);
    const sent = await api().post(`/v1/partner-postbacks/${postback.id}/test`).expect(202);
    await h.db.prisma.delivery.update({ where: { id: sent.body.delivery_id }, data: { status: 'failed' } });
    const recovered = await api().post(`/v1/partner-postbacks/${postback.id}/recover`, { since: '2026-01-01T00:00:00Z' }).expect(202);
    expect(recovered.body).toEqual({ recovered: 1, has_more: false });
    expect((await h.db.prisma.delivery.findUniqueOrThrow({ where: { id: sent.body.delivery_id } })).status).toBe('pending');

    const { body: endpoint } = await api()
      .post('/v1/webhook-endpoints', { url: 'http://127.0.0.1:9/hook', event_types: ['*'] })
      .expect(201);
    await api().post(`/v1/webhook-endpoints/${endpoint.id}/test`).expect(202);
    const deliveries = await api().get(`/v1/webhook-endpoints/${endpoint.id}/deliveries`).expect(200);
    expect(deliveries.body.data).toEqual([expect.objectContaining({ endpoint_id: endpoint.id, missing_macros: [] })]);
  });
});

describe("offers' revenue", () => {
  const base = () => ({
    advertiser_id: fx.advertiserId,
    name: 'Revenue offer',
    destination_url: 'https://shop.example/?c={click_id}',
    currency: 'USD',
    payout: { type: 'fixed', amount: '5.00' },
  });

  it('is null and not shared by default; set, changed and cleared like payout', async () => {
    const plain = await api().post('/v1/offers', base()).expect(201);
    expect(plain.body).toMatchObject({ revenue: null, share_amount_with_partners: false });

    const fixed = await api()
      .post('/v1/offers', { ...base(), revenue: { type: 'fixed', amount: '8' }, share_amount_with_partners: true })
      .expect(201);
    expect(fixed.body).toMatchObject({ revenue: { type: 'fixed', amount: '8.00' }, share_amount_with_partners: true });
    expect(await h.db.prisma.offer.findUniqueOrThrow({ where: { id: fixed.body.id } })).toMatchObject({
      revenueType: 'fixed',
      revenuePercent: null,
      shareAmountWithPartners: true,
    });
    expect((await api().get(`/v1/offers/${fixed.body.id}`).expect(200)).body.revenue).toEqual({ type: 'fixed', amount: '8.00' });

    const percent = await api()
      .patch(`/v1/offers/${fixed.body.id}`, { revenue: { type: 'percent', percent: '12.5' } })
      .expect(200);
    expect(percent.body).toMatchObject({
      revenue: { type: 'percent', percent: '12.5' },
      payout: { type: 'fixed', amount: '5.00' },
      share_amount_with_partners: true,
    });
    const row = await h.db.prisma.offer.findUniqueOrThrow({ where: { id: fixed.body.id } });
    expect([row.revenueType, row.revenueAmount, row.revenuePercent?.toString()]).toEqual(['percent', null, '12.5']);

    // A PATCH without revenue leaves it; null clears it.
    expect((await api().patch(`/v1/offers/${fixed.body.id}`, { name: 'Renamed' }).expect(200)).body.revenue).toEqual({ type: 'percent', percent: '12.5' });
    const cleared = await api().patch(`/v1/offers/${fixed.body.id}`, { revenue: null, share_amount_with_partners: false }).expect(200);
    expect(cleared.body).toMatchObject({ revenue: null, share_amount_with_partners: false });
    expect(await h.db.prisma.offer.findUniqueOrThrow({ where: { id: fixed.body.id } })).toMatchObject({
      revenueType: null,
      revenueAmount: null,
      revenuePercent: null,
    });
  });

  it('refuses a revenue that is not a payout rule', async () => {
    const fields = async (extra: object) =>
      (
        await api()
          .post('/v1/offers', { ...base(), ...extra })
          .expect(400)
      ).body.error.fields;
    expect(await fields({ revenue: { type: 'fixed' } })).toEqual({ 'revenue.amount': 'is required' });
    expect(await fields({ revenue: { type: 'fixed', amount: '-1' } })).toEqual({ 'revenue.amount': 'must be a decimal string such as "5.00"' });
    expect(await fields({ revenue: { type: 'percent', percent: '101' } })).toEqual({ 'revenue.percent': 'must be at most 100' });
    expect(await fields({ revenue: { type: 'bonus', amount: '1' } })).toEqual({ 'revenue.type': expect.stringMatching(/fixed.*percent/) });
    expect(await fields({ revenue: '8.00' })).toEqual({ revenue: expect.any(String) });
    expect(await fields({ share_amount_with_partners: 'yes' })).toEqual({ share_amount_with_partners: expect.any(String) });
    const patched = await api()
      .patch(`/v1/offers/${fx.offerId}`, { revenue: { type: 'percent', percent: 'x' } })
      .expect(400);
    expect(patched.body.error.fields).toEqual({ 'revenue.percent': 'must be a decimal string such as "10"' });
  });
});

describe('the conversions list', () => {
  let otherOfferId: number;
  const ids = { a: newId('conversion'), b: newId('conversion'), c: newId('conversion') };
  beforeAll(async () => {
    otherOfferId = (
      await h.db.prisma.offer.create({
        data: {
          advertiserId: fx.advertiserId,
          name: 'Other',
          destinationUrl: 'https://shop.example/',
          currency: 'USD',
          payoutType: 'fixed',
          payoutAmount: '1',
        },
      })
    ).id;
    const row = (id: string, offerId: number, createdAt: string, extra: object) => ({
      id,
      advertiserId: fx.advertiserId,
      offerId,
      affiliateId: fx.affiliateId,
      clickId: `click-${id}`,
      orderId: `order-${id}`,
      event: 'sale',
      status: 'approved' as const,
      amount: '100',
      currency: 'USD',
      payout: '5',
      payoutCurrency: 'USD',
      clickedAt: new Date('2026-12-01T00:00:00Z'),
      createdAt: new Date(createdAt),
      ...extra,
    });
    await h.db.prisma.conversion.createMany({
      data: [
        row(ids.a, fx.offerId, '2026-12-01T10:00:00Z', { sub1: 'aff-1', sub2: 'spring', revenue: '8', revenueCurrency: 'USD' }),
        row(ids.b, otherOfferId, '2026-12-02T10:00:00Z', { sub1: 'aff-2', sub5: 'z' }),
        row(ids.c, fx.offerId, '2026-12-03T10:00:00Z', {}),
      ],
    });
  });

  const listed = async (query: string) =>
    (await api().get(`/v1/conversions?affiliate_id=${fx.affiliateId}&${query}`).expect(200)).body.data.map((c: { id: string }) => c.id);

  it('shows revenue and the sub IDs', async () => {
    const { body } = await api().get(`/v1/conversions/${ids.a}`).expect(200);
    expect(body).toMatchObject({ revenue: '8.00', revenue_currency: 'USD', sub1: 'aff-1', sub2: 'spring', sub3: null, sub4: null, sub5: null });
    expect((await api().get(`/v1/conversions/${ids.c}`).expect(200)).body).toMatchObject({ revenue: null, revenue_currency: null, sub1: null });
  });

  it('filters by sub IDs (exact), offer and a created_from/created_to range, newest first', async () => {
    expect(await listed('sub1=aff-1')).toEqual([ids.a]);
    expect(await listed('sub1=aff')).toEqual([]);
    expect(await listed('sub2=spring&sub1=aff-1')).toEqual([ids.a]);
    expect(await listed('sub5=z')).toEqual([ids.b]);
    expect(await listed(`offer_id=${otherOfferId}`)).toEqual([ids.b]);
    expect(await listed(`offer_id=${fx.offerId}`)).toEqual([ids.c, ids.a]);
    expect(await listed('created_from=2026-12-01T10:00:00Z&created_to=2026-12-03T10:00:00Z')).toEqual([ids.b, ids.a]);
    expect(await listed('created_from=2026-12-01T10:00:00.001Z')).toEqual([ids.c, ids.b]);
    expect(await listed('created_to=2026-12-02T10:00:00Z')).toEqual([ids.a]);
    expect(await listed('created_from=2026-12-02T12:00:00%2B02:00&created_to=2026-12-04T00:00:00Z')).toEqual([ids.c, ids.b]);
    // Keyset paging still holds under the filters.
    const first = await api().get(`/v1/conversions?affiliate_id=${fx.affiliateId}&created_from=2026-12-01T00:00:00Z&limit=2`).expect(200);
    expect(first.body.data.map((c: { id: string }) => c.id)).toEqual([ids.c, ids.b]);
    const second = await api()
      .get(`/v1/conversions?affiliate_id=${fx.affiliateId}&created_from=2026-12-01T00:00:00Z&limit=2&cursor=${first.body.next_cursor}`)
      .expect(200);
    expect(second.body).toEqual({ data: [expect.objectContaining({ id: ids.a })], next_cursor: null });
  });

  it('refuses a range that is not one, a time that is not a date-time, and an empty sub', async () => {
    const fields = async (query: string) => (await api().get(`/v1/conversions?${query}`).expect(400)).body.error.fields;
    expect(await fields('created_from=2026-12-02T00:00:00Z&created_to=2026-12-01T00:00:00Z')).toEqual({ created_to: 'must be after created_from' });
    expect(await fields('created_from=2026-12-02T00:00:00Z&created_to=2026-12-02T00:00:00Z')).toEqual({ created_to: 'must be after created_from' });
    expect(await fields('created_from=yesterday')).toEqual({ created_from: expect.stringMatching(/ISO 8601/) });
    expect(await fields('created_to=2026-12-02')).toEqual({ created_to: expect.stringMatching(/ISO 8601/) });
    expect(await fields('sub1=')).toEqual({ sub1: 'must not be empty' });
    expect(await fields('offer_id=abc')).toEqual({ offer_id: 'must be a number' });
    expect(await fields('sub6=x')).toEqual({ sub6: expect.stringMatching(/^is not a parameter of this list/) });
  });
});
