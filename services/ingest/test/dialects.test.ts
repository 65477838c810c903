// Ingest's side of postback dialects: the key in the path, the advertiser's format read from
// its row (cached), and unread parameters carried on the job and named in the 202.
import { createFixture, type Fixture } from '@trackway/testing';
import request from 'supertest';
import { type IngestHarness, startIngest } from './helpers';

let h: IngestHarness;
let fx: Fixture;
let clickId: string;

beforeAll(async () => {
  h = await startIngest();
  fx = await createFixture(h.db.prisma);
  clickId = h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
});
afterAll(() => h.close());

const jobOf = async (postbackId: string) => {
  const job = await h.queues.postbacks.getJob(postbackId);
  return job?.data.postbacks.find((p) => p.postbackId === postbackId);
};

describe('the key in the path', () => {
  it('accepts /postback/{key} for GET and POST, in any case of the path and with a trailing slash', async () => {
    const get = await request(h.app).get(`/postback/${fx.postbackKey}?click_id=${clickId}&order_id=P-1`).expect(202);
    expect(await jobOf(get.body.postback_id)).toMatchObject({ advertiserId: fx.advertiserId, orderId: 'P-1' });
    await request(h.app).get(`/PostBack/${fx.postbackKey}/?click_id=${clickId}&order_id=P-2`).expect(202);
    await request(h.app).post(`/postback/${fx.postbackKey}`).send({ click_id: clickId, order_id: 'P-3' }).expect(202);
  });

  it('keeps the key’s case, and refuses a path key that disagrees with the header or the parameter', async () => {
    const upper = await request(h.app).get(`/postback/${fx.postbackKey.toUpperCase()}?click_id=${clickId}&order_id=P-4`).expect(401);
    expect(upper.body.error.code).toBe('unauthorized');
    const both = await request(h.app).get(`/postback/${fx.postbackKey}?key=pk_other&click_id=${clickId}&order_id=P-5`).expect(400);
    expect(both.body.error.fields).toEqual({ key: 'given as the path and as a parameter, with different values' });
    const header = await request(h.app).get(`/postback/${fx.postbackKey}?click_id=${clickId}&order_id=P-6`).set('X-Postback-Key', 'pk_other').expect(400);
    expect(header.body.error.fields.key).toBe('given as the X-Postback-Key header and as the path, with different values');
    // The same key twice is one key.
    await request(h.app).get(`/postback/${fx.postbackKey}?key=${fx.postbackKey}&click_id=${clickId}&order_id=P-7`).expect(202);
  });

  it('answers 404 for deeper paths, and says where a missing key may go', async () => {
    const deeper = await request(h.app).get(`/postback/${fx.postbackKey}/extra?click_id=${clickId}`).expect(404);
    expect(deeper.body.error.code).toBe('not_found');
    const missing = await request(h.app).get(`/postback?click_id=${clickId}&order_id=P-8`).expect(401);
    expect(missing.body.error.message).toMatch(/in the path \(\/postback\/\{key\}\)/);
  });
});

describe('unread parameters', () => {
  it('are named in the 202 in the order sent and travel on the job as sent; the key and read fields are not among them', async () => {
    const res = await request(h.app).get(`/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=U-1&sum=30&et=lead&sum2=&sub=a&sub=b`).expect(202);
    expect(res.body.ignored_params).toEqual(['sum', 'et', 'sum2', 'sub']);
    expect((await jobOf(res.body.postback_id))?.ignoredParams).toEqual({ sum: '30', et: 'lead', sum2: '', sub: ['a', 'b'] });
    const none = await request(h.app).get(`/postback/${fx.postbackKey}?click_id=${clickId}&transaction_id=${clickId}&order_id=U-2`).expect(202);
    expect(none.body.ignored_params).toEqual([]);
    expect((await jobOf(none.body.postback_id))?.ignoredParams).toBeUndefined();
  });

  it('keeps a name sent in both the query and the body with both values', async () => {
    const res = await request(h.app).post(`/postback?key=${fx.postbackKey}&note=q`).send({ click_id: clickId, order_id: 'U-3', note: 'b' }).expect(202);
    expect(res.body.ignored_params).toEqual(['note']);
    expect((await jobOf(res.body.postback_id))?.ignoredParams).toEqual({ note: ['q', 'b'] });
  });
});

describe('the advertiser’s format', () => {
  it('is read from its row: a decimal comma, numeric statuses and dedupe by click', async () => {
    const other = await createFixture(h.db.prisma);
    await h.db.prisma.advertiser.update({ where: { id: other.advertiserId }, data: { postbackFormat: { preset: 'affise', decimal_comma: true } } });
    const click = h.clickIds.issue({ offerId: other.offerId, affiliateId: other.affiliateId });
    const res = await request(h.app).get(`/postback/${other.postbackKey}?clickid=${click}&sum=12,50&status=2&goal=3`).expect(202);
    const job = await jobOf(res.body.postback_id);
    expect(job).toMatchObject({ clickId: click, amount: '12.50', status: 'pending', event: '3' });
    // No order reference: keyed by the click (shown as no order_id once recorded).
    expect(job?.orderId).not.toBe(click);
    expect(job?.orderId.endsWith(click)).toBe(true);
    const bad = await request(h.app).get(`/postback/${other.postbackKey}?clickid=${click}&sum=1.234,50&status=4`).expect(400);
    expect(bad.body.error.fields).toEqual({
      amount: 'must be a decimal number such as 49.90',
      status: expect.stringMatching(/^must be one of .*, 1, 2, 3, 5 \(any case\)$/),
    });
  });

  it('refuses a decimal comma an advertiser’s format does not allow, saying how to allow it', async () => {
    const res = await request(h.app).get(`/postback/${fx.postbackKey}?click_id=${clickId}&order_id=C-1&amount=12,50`).expect(400);
    expect(res.body.error.fields.amount).toMatch(/decimal_comma: true/);
  });
});

describe('what cannot be kept as sent is refused, never dropped or stored wrong', () => {
  const base = () => `click_id=${clickId}&order_id=K-${Math.random().toString(36).slice(2)}`;

  it('refuses status words that are properties of every object', async () => {
    for (const word of ['constructor', '__proto__', 'toString']) {
      const res = await request(h.app).get(`/postback/${fx.postbackKey}?${base()}&status=${word}`).expect(400);
      expect(res.body.error.fields.status).toMatch(/^must be one of /);
    }
  });

  it('refuses unread parameters Postgres could not store, naming them', async () => {
    const nul = await request(h.app).get(`/postback/${fx.postbackKey}?${base()}&foo=%00`).expect(400);
    expect(nul.body.error.fields).toEqual({ foo: 'must not contain control characters' });
    const nulName = await request(h.app).get(`/postback/${fx.postbackKey}?${base()}&fo%00o=1`).expect(400);
    expect(Object.keys(nulName.body.error.fields)).toEqual(['fo\\u0000o']);
    const surrogate = await request(h.app)
      .post(`/postback/${fx.postbackKey}`)
      .set('content-type', 'application/json')
      .send(`{"click_id":"${clickId}","order_id":"K-s","x":{"y":["\\ud800"]}}`)
      .expect(400);
    expect(surrogate.body.error.fields).toEqual({ x: 'must be valid Unicode text' });
  });

  it('refuses a parameter named __proto__, in the query or the body, at any depth', async () => {
    const query = await request(h.app).get(`/postback/${fx.postbackKey}?${base()}&__proto__=1`).expect(400);
    expect(Object.keys(query.body.error.fields)).toEqual(['__proto__']);
    const body = await request(h.app)
      .post(`/postback/${fx.postbackKey}`)
      .set('content-type', 'application/json')
      .send(`{"click_id":"${clickId}","order_id":"K-p","__proto__":{"a":1}}`)
      .expect(400);
    expect(Object.keys(body.body.error.fields)).toEqual(['__proto__']);
    const nested = await request(h.app)
      .post(`/postback/${fx.postbackKey}`)
      .set('content-type', 'application/json')
      .send(`{"click_id":"${clickId}","order_id":"K-n","meta":{"__proto__":{"a":1}}}`)
      .expect(400);
    expect(nested.body.error.fields).toEqual({ meta: 'holds a key named __proto__' });
  });

  it('answers a deeply nested JSON body with a 400, not a 500', async () => {
    const deep = `${'['.repeat(6000)}${']'.repeat(6000)}`;
    const res = await request(h.app)
      .post(`/postback/${fx.postbackKey}`)
      .set('content-type', 'application/json')
      .send(`{"click_id":"${clickId}","order_id":"K-d","x":${deep}}`)
      .expect(400);
    expect(res.body.error.fields).toEqual({ _: 'the JSON body nests deeper than 32 levels' });
    // Within the bound, kept as sent.
    const ok = await request(h.app)
      .post(`/postback/${fx.postbackKey}`)
      .send({ click_id: clickId, order_id: 'K-d2', x: [[[1]]] })
      .expect(202);
    expect((await jobOf(ok.body.postback_id))?.ignoredParams).toEqual({ x: [[[1]]] });
  });

  it('keeps both values of a name sent in the query and the body as they were, arrays and all', async () => {
    const res = await request(h.app)
      .post(`/postback/${fx.postbackKey}?foo=1`)
      .send({ click_id: clickId, order_id: 'K-b', foo: [4, 5] })
      .expect(202);
    expect((await jobOf(res.body.postback_id))?.ignoredParams).toEqual({ foo: ['1', [4, 5]] });
  });
});

describe('a stored format this version cannot read', () => {
  it('reads the postback with the trackway preset and reports the format, never a 5xx', async () => {
    const { createLookups } = await import('../src/lookups');
    const { createApp } = await import('../src/app');
    const reported: [number, string][] = [];
    const app = createApp({ ...h.deps, lookups: createLookups(h.db.prisma, undefined, (id, problem) => void reported.push([id, problem])) });
    const other = await createFixture(h.db.prisma);
    await h.db.prisma.advertiser.update({ where: { id: other.advertiserId }, data: { postbackFormat: { preset: 'appsflyer' } } });
    const click = h.clickIds.issue({ offerId: other.offerId, affiliateId: other.affiliateId });
    const res = await request(app).get(`/postback/${other.postbackKey}?click_id=${click}&order_id=S-1`).expect(202);
    expect(await jobOf(res.body.postback_id)).toMatchObject({ clickId: click, orderId: 'S-1' });
    expect(reported).toEqual([[other.advertiserId, 'has an unknown preset "appsflyer"']]);
  });
});
