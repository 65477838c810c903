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
