import http from 'node:http';
import net from 'node:net';
import { createSecretBox, idBlockOf } from '@trackway/domain';
import { createFixture, type Fixture, waitFor } from '@trackway/testing';
import fc from 'fast-check';
import request from 'supertest';
import { guardUrl } from '@trackway/http';
import { createLogger, redactUrl } from '@trackway/logger';
import { createApp } from '../src/app';
import { POSTBACK_ALIASES } from '../src/postback-input';
import { type IngestHarness, SECRETS_KEY, startIngest } from './helpers';

let h: IngestHarness;
let fx: Fixture;
let clickId: string;

beforeAll(async () => {
  h = await startIngest();
  fx = await createFixture(h.db.prisma, { destinationUrl: 'https://shop.example/land?c={click_id}&s={sub1}' });
  clickId = h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
});
afterAll(() => h.close());

const expectEnvelope = (body: { error?: { code?: unknown; message?: unknown } }) => {
  expect(typeof body.error?.code).toBe('string');
  expect(typeof body.error?.message).toBe('string');
};

describe('GET /click', () => {
  it('redirects to the destination with a verifiable click ID in the {click_id} macro and queues the click', async () => {
    const res = await request(h.app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}&sub1=a b&sub2=x`).expect(302);
    const location = new URL(res.headers.location);
    expect(location.origin + location.pathname).toBe('https://shop.example/land');
    expect(location.searchParams.get('s')).toBe('a b');
    const id = location.searchParams.get('c')!;
    expect(id.length).toBeLessThanOrEqual(64);
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(h.clickIds.verify(id)).toMatchObject({ offerId: fx.offerId, affiliateId: fx.affiliateId });
    const click = await waitForClick(h, id);
    expect(click).toMatchObject({ clickId: id, offerId: fx.offerId, affiliateId: fx.affiliateId, subs: { sub1: 'a b', sub2: 'x' } });
  });

  it('appends click_id when the destination has no macro', async () => {
    const other = await createFixture(h.db.prisma, { destinationUrl: 'https://shop.example/p?x=1#top' });
    const res = await request(h.app).get(`/click?offer_id=${other.offerId}&affiliate_id=${other.affiliateId}`).expect(302);
    expect(res.headers.location).toMatch(/^https:\/\/shop\.example\/p\?x=1&click_id=[A-Za-z0-9_-]{42}#top$/);
  });

  it('answers 404 with the envelope, not a redirect, for an unknown or inactive offer or affiliate', async () => {
    const unknownOffer = await request(h.app).get(`/click?offer_id=999999&affiliate_id=${fx.affiliateId}`).expect(404);
    expectEnvelope(unknownOffer.body);
    expect(unknownOffer.headers.location).toBeUndefined();
    await h.db.prisma.affiliate.update({ where: { id: fx.affiliateId }, data: { status: 'inactive' } });
    const inactive = await createFixture(h.db.prisma);
    await h.db.prisma.affiliate.update({ where: { id: inactive.affiliateId }, data: { status: 'inactive' } });
    const res = await request(h.app).get(`/click?offer_id=${inactive.offerId}&affiliate_id=${inactive.affiliateId}`).expect(404);
    expect(res.body.error.code).toBe('affiliate_not_found');
    await h.db.prisma.affiliate.update({ where: { id: fx.affiliateId }, data: { status: 'active' } });
  });

  it('rejects missing and malformed ids with 400 naming each field', async () => {
    const res = await request(h.app).get('/click?offer_id=abc').expect(400);
    expect(res.body.error.fields).toEqual({ offer_id: 'must be a positive integer', affiliate_id: 'is required' });
  });
});

describe('/postback', () => {
  it('answers 202 with a postback id only once the job is in Redis (GET)', async () => {
    const res = await request(h.app)
      .get('/postback')
      .query({ click_id: clickId, order_id: 'ORD-1', amount: '49.90', currency: 'eur', key: fx.postbackKey })
      .expect(202);
    expect(res.body).toEqual({ postback_id: expect.stringMatching(/^pb_[0-9A-Z]{26}$/), status: 'queued', ignored_params: [] });
    const job = await h.queues.postbacks.getJob(res.body.postback_id);
    expect(job?.data.postbacks[0]).toMatchObject({
      postbackId: res.body.postback_id,
      advertiserId: fx.advertiserId,
      clickId,
      orderId: 'ORD-1',
      amount: '49.90',
      currency: 'EUR',
      status: 'approved',
      event: 'conversion',
    });
  });

  it('accepts JSON and form bodies, and the key in the X-Postback-Key header', async () => {
    const json = await request(h.app)
      .post('/postback')
      .set('X-Postback-Key', fx.postbackKey)
      .send({ click_id: clickId, order_id: 'ORD-J', amount: 12.5, status: 'pending', event: 'sale' })
      .expect(202);
    expect((await h.queues.postbacks.getJob(json.body.postback_id))?.data.postbacks[0]).toMatchObject({ amount: '12.5', status: 'pending', event: 'sale' });
    const form = await request(h.app).post('/postback').type('form').send(`click_id=${clickId}&order_id=ORD-F&amount=0.10&key=${fx.postbackKey}`).expect(202);
    expect((await h.queues.postbacks.getJob(form.body.postback_id))?.data.postbacks[0]).toMatchObject({ orderId: 'ORD-F', amount: '0.10' });
  });

  it.each(Object.entries(POSTBACK_ALIASES).flatMap(([field, aliases]) => aliases.map((alias) => [alias, field] as const)))(
    'accepts the alias %s for %s',
    async (alias, field) => {
      const sample: Record<string, string> = {
        click_id: clickId,
        order_id: `ALIAS-${alias}`,
        amount: '7.25',
        currency: 'GBP',
        status: 'pending',
        event: 'lead',
      };
      const params: Record<string, string> = { ...sample, key: fx.postbackKey };
      delete params[field];
      params[alias] = sample[field];
      const res = await request(h.app).get('/postback').query(params).expect(202);
      const data = (await h.queues.postbacks.getJob(res.body.postback_id))!.data.postbacks[0];
      const canonical: Record<string, string | undefined> = {
        click_id: data.clickId,
        order_id: data.orderId,
        amount: data.amount,
        currency: data.currency,
        status: data.status,
        event: data.event,
      };
      expect(canonical[field]).toBe(sample[field]);
    },
  );

  it('answers 401 for a missing or unknown key', async () => {
    const missing = await request(h.app).get('/postback').query({ click_id: clickId, order_id: 'X' }).expect(401);
    expectEnvelope(missing.body);
    const unknown = await request(h.app).get('/postback').query({ click_id: clickId, order_id: 'X', key: 'pk_nope' }).expect(401);
    expect(unknown.body.error.code).toBe('unauthorized');
  });

  it('answers 413 for a body over 16 KiB', async () => {
    const res = await request(h.app)
      .post('/postback')
      .set('X-Postback-Key', fx.postbackKey)
      .send({ click_id: clickId, order_id: 'BIG', note: 'x'.repeat(17 * 1024) })
      .expect(413);
    expectEnvelope(res.body);
  });

  const long = 'x'.repeat(10 * 1024);
  const bad: Array<[string, Record<string, unknown>, number, string[]]> = [
    ['nothing', {}, 400, ['click_id', 'order_id']],
    ['missing click_id', { click_id: undefined }, 400, ['click_id']],
    ['missing order_id', { order_id: undefined }, 400, ['order_id']],
    ['negative amount', { amount: '-1' }, 400, ['amount']],
    ['non-numeric amount', { amount: 'ten' }, 400, ['amount']],
    ['exponent amount', { amount: '1e5' }, 400, ['amount']],
    ['huge amount', { amount: '1'.repeat(20) }, 400, ['amount']],
    ['too many decimals', { amount: '1.123456' }, 400, ['amount']],
    ['SQL in amount', { amount: '1; DROP TABLE conversions;--' }, 400, ['amount']],
    ['SQL in currency', { currency: "' OR 1=1 --" }, 400, ['currency']],
    ['unknown currency', { currency: 'XYZ' }, 400, ['currency']],
    ['bad status', { status: 'shipped' }, 400, ['status']],
    ['numeric status (never guessed)', { status: '2' }, 400, ['status']],
    ['SQL in status', { status: "approved'; --" }, 400, ['status']],
    ['10 KB order_id', { order_id: long }, 400, ['order_id']],
    ['10 KB click_id', { click_id: long }, 400, ['click_id']],
    ['unicode click_id', { click_id: 'клик🙂' }, 400, ['click_id']],
    ['unreplaced macro', { click_id: '{click_id}' }, 400, ['click_id']],
    ['control characters', { order_id: 'A\u0000B' }, 400, ['order_id']],
    ['bad event', { event: 'a b' }, 400, ['event']],
    ['alias conflict', { click_id: 'aaa', cid: 'bbb' }, 400, ['click_id']],
  ];
  it.each(bad)('rejects %s with 4xx and the envelope naming the bad fields', async (_name, override, status, badFields) => {
    const base = Object.keys(override).length === 0 ? {} : { click_id: clickId, order_id: 'ORD-BAD' };
    const params = Object.fromEntries(Object.entries({ ...base, ...override, key: fx.postbackKey }).filter(([, v]) => v !== undefined));
    const res = await request(h.app).get('/postback').query(params).expect(status);
    expectEnvelope(res.body);
    expect(Object.keys(res.body.error.fields).sort()).toEqual([...badFields].sort());
  });

  it('rejects duplicated parameters, wrong content types, non-object JSON and malformed JSON', async () => {
    const dup = await request(h.app).get(`/postback?click_id=${clickId}&order_id=A&order_id=B&key=${fx.postbackKey}`).expect(400);
    expect(dup.body.error.fields.order_id).toMatch(/more than once/);
    const xml = await request(h.app).post('/postback').set('X-Postback-Key', fx.postbackKey).set('Content-Type', 'application/xml').send('<a/>').expect(415);
    expectEnvelope(xml.body);
    const text = await request(h.app).post('/postback').set('X-Postback-Key', fx.postbackKey).set('Content-Type', 'text/plain').send('hi').expect(415);
    expectEnvelope(text.body);
    const array = await request(h.app).post('/postback').set('X-Postback-Key', fx.postbackKey).send([1, 2]).expect(400);
    expectEnvelope(array.body);
    const broken = await request(h.app)
      .post('/postback')
      .set('X-Postback-Key', fx.postbackKey)
      .set('Content-Type', 'application/json')
      .send('{"click_id":')
      .expect(400);
    expect(broken.body.error.code).toBe('malformed_body');
    const obj = await request(h.app)
      .post('/postback')
      .set('X-Postback-Key', fx.postbackKey)
      .send({ click_id: { $gt: '' }, order_id: ['a'] })
      .expect(400);
    expect(Object.keys(obj.body.error.fields).sort()).toEqual(['click_id', 'order_id']);
  });

  it('refuses bodies and values Postgres or JSON could not store, with 4xx not 5xx', async () => {
    const gzip = await request(h.app)
      .post('/postback')
      .set('X-Postback-Key', fx.postbackKey)
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .send('{"not":"gzipped"}');
    expect(gzip.status).toBe(400);
    expectEnvelope(gzip.body);
    const objectValue = await request(h.app)
      .post('/postback')
      .set('X-Postback-Key', fx.postbackKey)
      .send({ click_id: { toString: 1 }, cid: 'x', order_id: 'o1' })
      .expect(400);
    expect(objectValue.body.error.fields.click_id).toBeDefined();
    const keyObject = await request(h.app)
      .post(`/postback?key=${fx.postbackKey}`)
      .send({ key: { toString: 1 }, click_id: clickId, order_id: 'o1' });
    expect(keyObject.status).toBe(400);
    const surrogate = await request(h.app)
      .post('/postback')
      .set('X-Postback-Key', fx.postbackKey)
      .set('Content-Type', 'application/json')
      .send(`{"click_id":"${clickId}","order_id":"A\\ud800"}`)
      .expect(400);
    expect(surrogate.body.error.fields).toEqual({ order_id: 'must be valid Unicode text' });
    const nul = await request(h.app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}&sub1=%00`).expect(400);
    expect(nul.body.error.fields).toEqual({ sub1: 'must not contain control characters' });
  });

  it('reads JSON numbers from the text they were written as: exact amounts and order numbers, the same rules as strings', async () => {
    const post = (body: string) =>
      request(h.app).post('/postback').set('X-Postback-Key', fx.postbackKey).set('Content-Type', 'application/json').send(body.replace('CLICK', clickId));
    const queued = async (res: request.Response) => (await h.queues.postbacks.getJob(res.body.postback_id))!.data.postbacks[0];
    // Beyond 10^11 JSON.parse rounds: the text is what the client meant.
    const big = await post('{"click_id":"CLICK","order_id":"EXACT-1","amount":1234567890123.0001}').expect(202);
    expect((await queued(big)).amount).toBe('1234567890123.0001');
    // More than 4 decimals is refused as the same string is, never rounded to 1.
    const tooPrecise = await post('{"click_id":"CLICK","order_id":"EXACT-2","amount":0.99999999999999999}').expect(400);
    expect(tooPrecise.body.error.fields).toEqual({ amount: 'must have at most 14 digits before the point and 4 after' });
    const asString = await post('{"click_id":"CLICK","order_id":"EXACT-3","amount":"0.99999999999999999"}').expect(400);
    expect(asString.body.error.fields).toEqual(tooPrecise.body.error.fields);
    const exponent = await post('{"click_id":"CLICK","order_id":"EXACT-4","amount":1e3}').expect(400);
    expect(exponent.body.error.fields.amount).toMatch(/plain decimal number/);
    // An order number of 10^11 or more keeps every digit, and is not refused with words about amounts.
    const order = await post('{"click_id":"CLICK","order_id":123456789012345678901,"amount":5}').expect(202);
    expect(await queued(order)).toMatchObject({ orderId: '123456789012345678901', amount: '5' });
  });

  it('refuses white space around order_id (a 400 naming it, not trimmed silently) and currency codes that are not ASCII', async () => {
    for (const orderId of [' ORD-1', 'ORD-1 ', '\u00a0ORD-1', 'ORD-1\u3000', '\ufeffORD-1']) {
      const res = await request(h.app)
        .post('/postback')
        .set('X-Postback-Key', fx.postbackKey)
        .set('Content-Type', 'application/json')
        .send(`{"click_id":"${clickId}","order_id":"${orderId}"}`)
        .expect(400);
      expect(res.body.error.fields).toEqual({ order_id: 'must not begin or end with white space' });
    }
    const query = await request(h.app).get('/postback').query({ key: fx.postbackKey, click_id: clickId, order_id: 'ORD-2 ' }).expect(400);
    expect(Object.keys(query.body.error.fields)).toEqual(['order_id']);
    const longS = await request(h.app).get(`/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=ORD-3&currency=u%C5%BFd`).expect(400);
    expect(longS.body.error.fields).toEqual({ currency: 'must be an ISO 4217 currency code such as USD' });
  });

  it("never stores the advertiser's key or signing secret, under any name: the name is listed, the value redacted", async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    await h.db.prisma.advertiser.update({ where: { id: fx.advertiserId }, data: { signingSecretSealed: createSecretBox(SECRETS_KEY).seal(secret) } });
    h.deps.lookups.advertiserByKeyHash.clear();
    const leaky = await request(h.app)
      .post(`/postback?key=${fx.postbackKey}&api_key=${fx.postbackKey}`)
      .send({ click_id: clickId, order_id: 'LEAK-1', token: fx.postbackKey, meta: { auth: `Bearer ${fx.postbackKey}`, list: [secret, 'kept'] }, note: 'kept' })
      .expect(202);
    expect(leaky.body.ignored_params).toEqual(['api_key', 'token', 'meta', 'note']);
    const job = await h.queues.postbacks.getJob(leaky.body.postback_id);
    expect(JSON.stringify(job!.data)).not.toContain(fx.postbackKey);
    expect(JSON.stringify(job!.data)).not.toContain(secret.slice('whsec_'.length));
    expect(job!.data.postbacks[0].ignoredParams).toEqual({
      api_key: '[redacted]',
      token: '[redacted]',
      meta: { auth: '[redacted]', list: ['[redacted]', 'kept'] },
      note: 'kept',
    });
    // As a field Trackway would store, it is refused.
    const asOrder = await request(h.app).get('/postback').query({ key: fx.postbackKey, click_id: clickId, order_id: fx.postbackKey }).expect(400);
    expect(Object.keys(asOrder.body.error.fields)).toEqual(['order_id']);
    // Nor is it logged, even in a shape the log's redaction does not know (the secret without its prefix).
    const lines: string[] = [];
    const logged = createApp({
      ...h.deps,
      logger: createLogger({ service: 'test', level: 'info', destination: { write: (line: string) => void lines.push(line) } }),
    });
    const bare = secret.slice('whsec_'.length);
    await request(logged).get('/postback').query({ key: fx.postbackKey, click_id: clickId, order_id: 'LEAK-2', note: bare }).expect(202);
    expect(lines.join('\n')).toContain('note=[redacted]');
    expect(lines.join('\n')).not.toContain(bare);
    await h.db.prisma.advertiser.update({ where: { id: fx.advertiserId }, data: { signingSecretSealed: null } });
    h.deps.lookups.advertiserByKeyHash.clear();
  });

  it('never enqueues on HEAD, refuses a key given twice, and reads the key parameter behind an empty header', async () => {
    const before = await h.queues.postbacks.count();
    await request(h.app).head(`/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=HEAD-1`).expect(405);
    expect(await h.queues.postbacks.count()).toBe(before);
    // HEAD /click answers like GET (302 to the destination) and records no click.
    const clicksBefore = await h.queues.clicks.count();
    const head = await request(h.app).head(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}`).expect(302);
    expect(head.headers.location).toMatch(/^https:\/\/shop\.example\/land\?c=/);
    await request(h.app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}`).expect(302);
    // The GET after it is recorded (a job), the HEAD was not: one more job, not two.
    await waitFor(async () => (await h.queues.clicks.count()) > clicksBefore, { what: 'the GET click queued' });
    const jobs = await h.queues.clicks.getJobs(['waiting', 'delayed', 'active', 'completed']);
    const recorded = jobs.flatMap((j) => j.data.clicks).filter((c: { clickId: string }) => head.headers.location.includes(c.clickId));
    expect(recorded).toEqual([]);
    const twice = await request(h.app).get(`/postback?key=${fx.postbackKey}&key=${fx.postbackKey}&click_id=${clickId}&order_id=K-1`).expect(400);
    expect(Object.keys(twice.body.error.fields)).toEqual(['key']);
    await request(h.app).get(`/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=K-2`).set('X-Postback-Key', '').expect(202);
  });

  it('stores SQL-looking order references verbatim: they are data, not an error', async () => {
    const orderId = "x'); DROP TABLE conversions; --";
    const res = await request(h.app).get('/postback').query({ click_id: clickId, order_id: orderId, key: fx.postbackKey }).expect(202);
    expect((await h.queues.postbacks.getJob(res.body.postback_id))?.data.postbacks[0].orderId).toBe(orderId);
  });

  it('never answers 5xx, whatever the query string (property test)', async () => {
    const names = ['click_id', 'cid', 'order_id', 'txid', 'amount', 'payout', 'currency', 'status', 'event', 'key', 'x'];
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(
            fc.constantFrom(...names),
            fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('-1', '1e9', '0.00001', 'NaN', '%', '{click_id}')),
          ),
          { maxLength: 8 },
        ),
        async (pairs) => {
          const qs = pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
          const res = await request(h.app).get(`/postback?${qs}&key=${fx.postbackKey}`);
          expect(res.status).toBeGreaterThanOrEqual(200);
          expect(res.status).toBeLessThan(500);
          if (res.status >= 400) expectEnvelope(res.body);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('asks keep-alive clients to close their connections while draining for shutdown', async () => {
    const server = http.createServer(h.app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const agent = new http.Agent({ keepAlive: true });
    const get = (path: string) =>
      new Promise<http.IncomingMessage>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: (server.address() as { port: number }).port, path, agent }, (res) => res.resume().on('end', () => resolve(res)))
          .on('error', reject);
      });
    try {
      expect((await get('/healthz')).headers.connection).toBe('keep-alive');
      h.health.accepting = false;
      const draining = await get('/readyz');
      expect(draining.statusCode).toBe(503);
      expect(draining.headers.connection).toBe('close');
    } finally {
      h.health.accepting = true;
      agent.destroy();
      server.close();
    }
  });

  it('reads an absolute-form request target as Express does, and refuses a raw "#" instead of cutting the value at it', async () => {
    const server = http.createServer(h.app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as { port: number }).port;
    const raw = (target: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
        let text = '';
        socket.on('data', (chunk) => (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    try {
      const absolute = await raw(`http://x/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=ABS-1`);
      expect(absolute).toMatch(/^HTTP\/1\.1 202/);
      const id = JSON.parse(absolute.slice(absolute.indexOf('\r\n\r\n') + 4)).postback_id;
      expect((await h.queues.postbacks.getJob(idBlockOf(id)))?.data.postbacks.find((p) => p.postbackId === id)?.orderId).toBe('ABS-1');
      const before = await h.queues.postbacks.count();
      const fragment = await raw(`/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=FRAG#1`);
      expect(fragment).toMatch(/^HTTP\/1\.1 400/);
      expect(JSON.parse(fragment.slice(fragment.indexOf('\r\n\r\n') + 4)).error).toMatchObject({
        code: 'invalid_request',
        fields: { _: expect.stringMatching(/%23/) },
      });
      expect(await h.queues.postbacks.count()).toBe(before);
    } finally {
      server.close();
    }
  });

  it("redirects nobody and logs no error when a click's client goes away before the answer", async () => {
    const cold = await createFixture(h.db.prisma);
    const server = http.createServer(h.app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      for (let i = 0; i < 3; i++) {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.write(`GET /click?offer_id=${cold.offerId}&affiliate_id=${cold.affiliateId} HTTP/1.1\r\nHost: x\r\n\r\n`);
          setTimeout(() => socket.destroy(), 1);
        });
        socket.on('error', () => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(h.errors.filter((line) => line.includes('unhandled error'))).toEqual([]);
    } finally {
      server.close();
    }
  });

  it('answers 405 for other methods and 404 with the envelope for unknown paths', async () => {
    await request(h.app).put('/postback').expect(405);
    const res = await request(h.app).get('/nope').expect(404);
    expectEnvelope(res.body);
  });
});

/** The queued click with this id (clicks travel many per job). */
async function waitForClick(harness: IngestHarness, id: string) {
  return waitFor(async () => (await harness.queues.clicks.getJobs(['waiting'])).flatMap((job) => job.data.clicks).find((click) => click.clickId === id), {
    what: `click ${id} in the queue`,
  });
}

describe('request logs', () => {
  it.each([
    ['/postback?key=pk_secret&order_id=1', '/postback?key=[redacted]&order_id=1'],
    ['/postback?k%65y=pk_secret', '/postback?k%65y=[redacted]'],
    ['/postback?order_id=1&KEY=pk_secret', '/postback?order_id=1&KEY=[redacted]'],
    // Shaped like a key or a secret, whatever the name (the probe's api_key=pk_…).
    ['/postback?api_key=pk_abcdefghijklmnopqrstuvwx&order_id=1', '/postback?api_key=[redacted]&order_id=1'],
    ['/postback?x=pk_abcdefghijklmnopqrstuvwx', '/postback?x=[redacted]'],
    ['/postback?hook=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '/postback?hook=[redacted]'],
    ['/postback?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig', '/postback?t=[redacted]'],
    ['/postback?pk_abcdefghijklmnopqrstuvwx', '/postback?[redacted]=[redacted]'],
    ['/postback?access_token=abc&password=x&click_id=c1', '/postback?access_token=[redacted]&password=[redacted]&click_id=c1'],
    ['/click?offer_id=1', '/click?offer_id=1'],
    // The key in the path, and any path segment shaped like a key.
    ['/postback/pk_abcdefghijklmnopqrstuvwx?click_id=c1', '/postback/[redacted]?click_id=c1'],
    ['/postback/pk_abcdefghijklmnopqrstuvwx', '/postback/[redacted]'],
    ['/x/whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/y', '/x/[redacted]/y'],
  ])('redact the key in %s', (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });

  it('takes out known secrets whatever their shape: in a value, a name, or a path segment, as sent or percent-encoded', () => {
    const known = ['MfKQ9r8G+KYqr/TwjU'];
    expect(redactUrl('/postback?note=MfKQ9r8G%2BKYqr%2FTwjU&x=1', known)).toBe('/postback?note=[redacted]&x=1');
    expect(redactUrl('/postback?MfKQ9r8G%2BKYqr%2FTwjU=1', known)).toBe('/postback?[redacted]=[redacted]');
    expect(redactUrl('/a/MfKQ9r8G%2BKYqr%2FTwjU/b', known)).toBe('/a/[redacted]/b');
    expect(redactUrl('/postback?note=other', known)).toBe('/postback?note=other');
  });
});

describe('X-Request-Id', () => {
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it('is on every answer, in the error envelope and on the request log line; a sane incoming one is kept', async () => {
    const lines: Array<{ msg: string; request_id?: string }> = [];
    const app = createApp({
      ...h.deps,
      logger: createLogger({ service: 'test', level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } }),
    });
    const answers = [
      await request(app).get('/postback').query({ key: fx.postbackKey, click_id: clickId, order_id: 'RID-1' }).expect(202),
      await request(app).get('/postback').query({ key: fx.postbackKey, click_id: clickId }).expect(400),
      await request(app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}`).expect(302),
      await request(app).get('/healthz').expect(200),
      await request(app).get('/nowhere').expect(404),
    ];
    for (const res of answers) expect(res.headers['x-request-id']).toMatch(uuid);
    expect(new Set(answers.map((res) => res.headers['x-request-id'])).size).toBe(answers.length);
    expect(answers[1].body.error.request_id).toBe(answers[1].headers['x-request-id']);
    expect(answers[4].body.error.request_id).toBe(answers[4].headers['x-request-id']);
    const logged = lines.filter((line) => line.msg === 'request completed').map((line) => line.request_id);
    expect(logged).toEqual(answers.slice(0, 3).map((res) => res.headers['x-request-id']));

    const kept = await request(app).get('/postback').set('X-Request-Id', 'edge-7f3a:2').query({ key: fx.postbackKey, click_id: clickId }).expect(400);
    expect([kept.headers['x-request-id'], kept.body.error.request_id]).toEqual(['edge-7f3a:2', 'edge-7f3a:2']);
    const insane = await request(app).get('/click').set('X-Request-Id', 'a b"c').expect(400);
    expect(insane.headers['x-request-id']).toMatch(uuid);
  });

  it('is on the 400 for a target no parser can read', async () => {
    const server = http.createServer(guardUrl(h.app));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.end('GET http://[::1/ HTTP/1.1\r\nHost: x\r\nX-Request-Id: probe-1\r\n\r\n'));
        let text = '';
        socket.on('data', (chunk) => void (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 400/);
      expect(raw.toLowerCase()).toContain('x-request-id: probe-1');
      expect(raw).toContain('"request_id":"probe-1"');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
