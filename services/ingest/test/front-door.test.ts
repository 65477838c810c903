// The front door: signed postbacks, allowlists, rate limits, failed-authentication limits,
// and the inputs node:querystring / body-parser would alter silently. Real Redis and Postgres.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSecretBox, hashPostbackKey } from '@trackway/domain';
import { type Fixture, createFixture } from '@trackway/testing';
import { generateSecret } from '@trackway/webhooks';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { type IngestHarness, SECRETS_KEY, startIngest } from './helpers';

const box = createSecretBox(SECRETS_KEY);
let h: IngestHarness;
let clickId: string;

beforeAll(async () => {
  // TRUST_PROXY loopback: these tests speak for several client addresses through X-Forwarded-For.
  h = await startIngest({ frontDoor: { trustProxy: 'loopback', authFailureLimit: 5 } });
  const fx = await createFixture(h.db.prisma);
  clickId = h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
});
afterAll(() => h.close());

let address = 0;
/** A client address of its own per test, so failure counts never cross tests. */
const nextAddress = () => `198.51.100.${++address}`;
let order = 0;
const nextOrder = () => `ORD-${Date.now()}-${++order}`;

async function advertiser(data: Record<string, unknown> = {}): Promise<Fixture & { secret: string }> {
  const fx = await createFixture(h.db.prisma);
  const secret = generateSecret();
  await h.db.prisma.advertiser.update({ where: { id: fx.advertiserId }, data: { signingSecretSealed: box.seal(secret), ...data } });
  return { ...fx, secret };
}

/** A GET postback signed over its raw query string, exactly as the standardwebhooks library signs. */
function signedGet(query: string, secret: string, options: { id?: string; at?: Date } = {}) {
  const id = options.id ?? `msg_${nextOrder()}`;
  const at = options.at ?? new Date();
  const signature = new Webhook(secret).sign(id, at, query);
  return {
    path: `/postback?${query}`,
    headers: { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature },
  };
}

describe('signed postbacks (Standard Webhooks)', () => {
  it('accepts a GET signed over the raw query string and a POST signed over the raw body, as the standardwebhooks library signs them', async () => {
    const fx = await advertiser({ requireSignedPostbacks: true });
    const query = `key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}&amount=10.50`;
    const get = signedGet(query, fx.secret);
    const res = await request(h.app).get(get.path).set(get.headers).set('X-Forwarded-For', nextAddress()).expect(202);
    expect(res.body.status).toBe('queued');

    const body = JSON.stringify({ click_id: clickId, order_id: nextOrder(), amount: '12.00' });
    const id = `msg_${nextOrder()}`;
    const now = new Date();
    const signature = new Webhook(fx.secret).sign(id, now, body);
    await request(h.app)
      .post(`/postback?key=${fx.postbackKey}`)
      .set({
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signature,
      })
      .send(body)
      .expect(202);

    const form = `key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`;
    const formId = `msg_${nextOrder()}`;
    await request(h.app)
      .post('/postback')
      .set({
        'content-type': 'application/x-www-form-urlencoded',
        'webhook-id': formId,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': new Webhook(fx.secret).sign(formId, now, form),
      })
      .send(form)
      .expect(202);
  });

  it.each([
    ['missing headers when signing is required', (q: string, _s: string) => ({ path: `/postback?${q}`, headers: {} })],
    ['a timestamp 6 minutes old', (q: string, s: string) => signedGet(q, s, { at: new Date(Date.now() - 6 * 60_000) })],
    ['a timestamp 6 minutes ahead', (q: string, s: string) => signedGet(q, s, { at: new Date(Date.now() + 6 * 60_000) })],
    ['a signature by another secret', (q: string) => signedGet(q, generateSecret())],
    ['a signature over other parameters', (q: string, s: string) => ({ ...signedGet(q, s), path: `/postback?${q}&amount=999` })],
  ])('refuses %s with 401 invalid_signature', async (_what, make) => {
    const fx = await advertiser({ requireSignedPostbacks: true });
    const sent = make(`key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`, fx.secret);
    const res = await request(h.app).get(sent.path).set(sent.headers).set('X-Forwarded-For', nextAddress()).expect(401);
    expect(res.body.error.code).toBe('invalid_signature');
    expect(res.body.error.message).toEqual(expect.any(String));
  });

  it('takes a stray webhook-id without a webhook-signature as unsigned, not as a bad signature', async () => {
    const fx = await advertiser();
    await request(h.app)
      .get(`/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`)
      .set('webhook-id', 'msg_stray')
      .set('X-Forwarded-For', nextAddress())
      .expect(202);
    const required = await advertiser({ requireSignedPostbacks: true });
    const res = await request(h.app)
      .get(`/postback?key=${required.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`)
      .set('webhook-id', 'msg_stray')
      .set('X-Forwarded-For', nextAddress())
      .expect(401);
    expect(res.body.error.code).toBe('invalid_signature');
  });

  it('refuses a present but wrong signature even when signing is not required, and accepts an unsigned postback then', async () => {
    const fx = await advertiser();
    const query = `key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`;
    const wrong = signedGet(query, generateSecret());
    expect((await request(h.app).get(wrong.path).set(wrong.headers).set('X-Forwarded-For', nextAddress()).expect(401)).body.error.code).toBe(
      'invalid_signature',
    );
    await request(h.app).get(`/postback?${query}`).set('X-Forwarded-For', nextAddress()).expect(202);
  });

  it('accepts a webhook-id once: a replay within the tolerance window is refused', async () => {
    const fx = await advertiser({ requireSignedPostbacks: true });
    const sent = signedGet(`key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`, fx.secret);
    await request(h.app).get(sent.path).set(sent.headers).set('X-Forwarded-For', nextAddress()).expect(202);
    const replay = await request(h.app).get(sent.path).set(sent.headers).set('X-Forwarded-For', nextAddress()).expect(401);
    expect(replay.body.error).toMatchObject({ code: 'invalid_signature', message: expect.stringContaining('webhook-id') });
  });

  it('lets a postback refused 429 be retried with the same webhook-id (the id is released, not used up)', async () => {
    const fx = await advertiser({ postbackRateLimitPerSecond: 1 });
    let limited: ReturnType<typeof signedGet> | undefined;
    for (let i = 0; i < 5 && !limited; i++) {
      const sent = signedGet(`key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`, fx.secret);
      const res = await request(h.app).get(sent.path).set(sent.headers).set('X-Forwarded-For', nextAddress());
      if (res.status === 429) limited = sent;
      else expect(res.status).toBe(202);
    }
    expect(limited).toBeDefined();
    // The next window: the same request, same webhook-id, is accepted once.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await request(h.app).get(limited!.path).set(limited!.headers).set('X-Forwarded-For', nextAddress()).expect(202);
    await request(h.app).get(limited!.path).set(limited!.headers).set('X-Forwarded-For', nextAddress()).expect(401);
  });

  it('verifies with the previous secret until it expires', async () => {
    const previous = generateSecret();
    const fx = await advertiser({
      requireSignedPostbacks: true,
      previousSigningSecretSealed: box.seal(previous),
      previousSigningSecretExpiresAt: new Date(Date.now() + 3_600_000),
    });
    const ok = signedGet(`key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`, previous);
    await request(h.app).get(ok.path).set(ok.headers).set('X-Forwarded-For', nextAddress()).expect(202);

    const expired = await advertiser({
      requireSignedPostbacks: true,
      previousSigningSecretSealed: box.seal(previous),
      previousSigningSecretExpiresAt: new Date(Date.now() - 1000),
    });
    const late = signedGet(`key=${expired.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`, previous);
    await request(h.app).get(late.path).set(late.headers).set('X-Forwarded-For', nextAddress()).expect(401);
  });

  it('refuses fields in the query string of a signed POST (only its body is signed)', async () => {
    const fx = await advertiser();
    const body = JSON.stringify({ click_id: clickId, order_id: nextOrder() });
    const id = `msg_${nextOrder()}`;
    const now = new Date();
    const res = await request(h.app)
      .post(`/postback?key=${fx.postbackKey}&amount=999`)
      .set({
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': new Webhook(fx.secret).sign(id, now, body),
      })
      .send(body)
      .expect(400);
    expect(res.body.error.code).toBe('invalid_request');
  });
});

describe('allowed_ips and TRUST_PROXY', () => {
  it('answers 403 ip_not_allowed to an address outside the allowlist, 202 inside it (IPv4 and IPv6 CIDRs)', async () => {
    const fx = await advertiser({ allowedIps: ['203.0.113.0/24', '2001:db8::/32'] });
    const path = () => `/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`;
    const refused = await request(h.app).get(path()).set('X-Forwarded-For', '198.51.100.250').expect(403);
    expect(refused.body.error.code).toBe('ip_not_allowed');
    await request(h.app).get(path()).set('X-Forwarded-For', '203.0.113.9').expect(202);
    await request(h.app).get(path()).set('X-Forwarded-For', '2001:db8::42').expect(202);
  });

  it("reads the socket's address, not X-Forwarded-For, unless TRUST_PROXY says so (the default)", async () => {
    const strict = await startIngest();
    try {
      const fx = await createFixture(strict.db.prisma);
      await strict.db.prisma.advertiser.update({ where: { id: fx.advertiserId }, data: { allowedIps: ['203.0.113.0/24'] } });
      const id = strict.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
      const path = () => `/postback?key=${fx.postbackKey}&click_id=${id}&order_id=${nextOrder()}`;
      expect((await request(strict.app).get(path()).set('X-Forwarded-For', '203.0.113.9').expect(403)).body.error.code).toBe('ip_not_allowed');
      const local = await createFixture(strict.db.prisma);
      await strict.db.prisma.advertiser.update({ where: { id: local.advertiserId }, data: { allowedIps: ['127.0.0.0/8', '::1'] } });
      await request(strict.app)
        .get(`/postback?key=${local.postbackKey}&click_id=${id}&order_id=${nextOrder()}`)
        .set('X-Forwarded-For', '203.0.113.9')
        .expect(202);
    } finally {
      await strict.close();
    }
  });
});

describe('TRUST_PROXY values', () => {
  it.each([
    ['a CIDR naming the proxy', '127.0.0.0/8', '203.0.113.9', 202],
    ['a hop count: the address the one trusted hop saw', 1, '198.51.100.1, 203.0.113.9', 202],
    ['a hop count: an address put in front by the client is not believed', 1, '203.0.113.9, 198.51.100.1', 403],
    ['a CIDR that does not name the proxy', '10.0.0.0/8', '203.0.113.9', 403],
  ])('%s (%p, X-Forwarded-For %p) → %p', async (_what, trustProxy, forwarded, status) => {
    const proxied = await startIngest({ frontDoor: { trustProxy } });
    try {
      const fx = await createFixture(proxied.db.prisma);
      await proxied.db.prisma.advertiser.update({ where: { id: fx.advertiserId }, data: { allowedIps: ['203.0.113.0/24'] } });
      const id = proxied.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
      await request(proxied.app).get(`/postback?key=${fx.postbackKey}&click_id=${id}&order_id=${nextOrder()}`).set('X-Forwarded-For', forwarded).expect(status);
    } finally {
      await proxied.close();
    }
  });
});

describe('POSTBACK_RATE_LIMIT and postback_rate_limit_per_second', () => {
  it('answers 429 rate_limited with Retry-After past the limit, and counts across replicas through Redis', async () => {
    const fx = await advertiser({ postbackRateLimitPerSecond: 20 });
    // A second replica on the same Redis prefix.
    const other = await startIngest({ frontDoor: { prefix: h.prefix } });
    try {
      const otherClick = other.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
      // The other replica has its own database: give it the same advertiser key.
      const twin = await createFixture(other.db.prisma);
      await other.db.prisma.advertiser.update({
        where: { id: twin.advertiserId },
        data: { id: fx.advertiserId, postbackKeyHash: hashPostbackKey(fx.postbackKey), postbackRateLimitPerSecond: 20 },
      });
      // Wait for the start of a fresh second so the whole burst falls in one window.
      await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000)));
      // 30 at once, so that all fall into one window (unless the machine stalls for a second:
      // then at most one more window's worth).
      const started = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 30 }, () =>
          request(h.app).get(`/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`).set('X-Forwarded-For', nextAddress()),
        ),
      );
      const accepted = answers.filter((r) => r.status === 202).length;
      if (Date.now() - started < 900) expect(accepted).toBe(20);
      else expect(accepted).toBeLessThanOrEqual(30);
      const refused = answers.filter((r) => r.status === 429);
      expect(refused.length + accepted).toBe(30);
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) {
        expect(r.body.error.code).toBe('rate_limited');
        expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
      // Once this replica has synced its counts (every 100 ms), the other one learns the shared
      // count from Redis on its first postback (which it may still accept: the documented
      // overshoot of one sync interval), and refuses the next.
      await new Promise((resolve) => setTimeout(resolve, 150));
      const atOther: number[] = [];
      for (let i = 0; i < 10 && !atOther.includes(429); i++) {
        atOther.push((await request(other.app).get(`/postback?key=${fx.postbackKey}&click_id=${otherClick}&order_id=${nextOrder()}`)).status);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(atOther).toContain(429);
      expect(atOther.filter((s) => s === 202).length).toBeLessThanOrEqual(2);
      // A second later, the window is open again.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await request(h.app).get(`/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`).set('X-Forwarded-For', nextAddress()).expect(202);
    } finally {
      await other.close();
    }
  });

  it('takes POSTBACK_RATE_LIMIT unless the advertiser overrides it (0: no limit)', async () => {
    const limited = await startIngest({ frontDoor: { postbackRateLimit: 3 } });
    try {
      const fx = await createFixture(limited.db.prisma);
      const unlimited = await createFixture(limited.db.prisma);
      await limited.db.prisma.advertiser.update({ where: { id: unlimited.advertiserId }, data: { postbackRateLimitPerSecond: 0 } });
      const id = limited.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
      await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000)));
      const send = (key: string) =>
        request(limited.app)
          .get(`/postback?key=${key}&click_id=${id}&order_id=${nextOrder()}`)
          .then((r) => r.status);
      const [global, own] = await Promise.all([fx.postbackKey, unlimited.postbackKey].map((key) => Promise.all(Array.from({ length: 6 }, () => send(key)))));
      expect(global.sort()).toEqual([202, 202, 202, 429, 429, 429]);
      expect(own).toEqual([202, 202, 202, 202, 202, 202]);
    } finally {
      await limited.close();
    }
  });
});

describe('AUTH_FAILURE_LIMIT', () => {
  it('answers 429 with Retry-After once an address has failed too often, without looking its keys up, while keys ingest knows still pass', async () => {
    const fx = await advertiser();
    const from = nextAddress();
    const unknown = () => request(h.app).get(`/postback?key=pk_unknown${nextOrder()}&click_id=${clickId}&order_id=1`).set('X-Forwarded-For', from);
    for (let i = 0; i < 5; i++) expect((await unknown()).status).toBe(401);
    const limited = await unknown();
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    const valid = () => `/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`;
    // A key ingest has not looked up yet is not looked up for a blocked address.
    expect((await request(h.app).get(valid()).set('X-Forwarded-For', from)).status).toBe(429);
    // Once known (here: posted from elsewhere), it passes from the blocked address too: an
    // attacker sharing an advertiser's address cannot lock it out.
    await request(h.app).get(valid()).set('X-Forwarded-For', nextAddress()).expect(202);
    await request(h.app).get(valid()).set('X-Forwarded-For', from).expect(202);
    expect((await unknown()).status).toBe(429);
  });

  it("counts a replayed webhook-id as a failed authentication, before it takes any of the advertiser's rate", async () => {
    const fx = await advertiser({ postbackRateLimitPerSecond: 3 });
    const from = nextAddress();
    const sent = signedGet(`key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`, fx.secret);
    await request(h.app).get(sent.path).set(sent.headers).set('X-Forwarded-For', from).expect(202);
    const replays: number[] = [];
    for (let i = 0; i < 6; i++) replays.push((await request(h.app).get(sent.path).set(sent.headers).set('X-Forwarded-For', from)).status);
    expect(replays).toEqual([401, 401, 401, 401, 401, 429]);
    // The advertiser's own next postbacks were not rate-limited by the replays.
    const fresh = signedGet(`key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`, fx.secret);
    await request(h.app).get(fresh.path).set(fresh.headers).set('X-Forwarded-For', nextAddress()).expect(202);
  });

  it('counts bad signatures too', async () => {
    const fx = await advertiser();
    const from = nextAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const wrong = signedGet(`key=${fx.postbackKey}&click_id=${clickId}&order_id=${nextOrder()}`, generateSecret());
      statuses.push((await request(h.app).get(wrong.path).set(wrong.headers).set('X-Forwarded-For', from)).status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
  });
});

describe('negative cache of unknown keys', () => {
  it('does not look an unknown key up again within its TTL', async () => {
    const { createLookups } = await import('../src/lookups');
    const lookups = createLookups(h.db.prisma, box);
    const key = `pk_later${nextOrder()}`;
    expect(await lookups.advertiserByKeyHash.get(hashPostbackKey(key))).toBeNull();
    const fx = await createFixture(h.db.prisma);
    await h.db.prisma.advertiser.update({ where: { id: fx.advertiserId }, data: { postbackKeyHash: hashPostbackKey(key) } });
    // Still the cached miss, seconds later (misses used to live 2 s): Postgres was not asked again.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(await lookups.advertiserByKeyHash.get(hashPostbackKey(key))).toBeNull();
    lookups.advertiserByKeyHash.clear();
    expect(await lookups.advertiserByKeyHash.get(hashPostbackKey(key))).toMatchObject({ id: fx.advertiserId });
  });
});

describe('inputs that would be altered silently are refused (400 naming the field)', () => {
  const base = () => `click_id=${clickId}&order_id=${nextOrder()}`;
  let key: string;
  beforeAll(async () => {
    key = (await advertiser()).postbackKey;
  });

  it.each([
    ['a percent-encoded byte that is not UTF-8', 'order_id=M%FCller-7', 'order_id'],
    ['an overlong encoding', 'order_id=%C0%AF', 'order_id'],
    ['a name that is not UTF-8', 'ord%FFer=1', 'ord\uFFFDer'],
  ])('the query string: %s', async (_what, param, field) => {
    const res = await request(h.app).get(`/postback?key=${key}&click_id=${clickId}&${param}`).expect(400);
    expect(Object.keys(res.body.error.fields)).toContain(JSON.parse(`"${field}"`));
  });

  it('keeps valid UTF-8 (M%C3%BCller) and a stray % as they are', async () => {
    await request(h.app).get(`/postback?key=${key}&click_id=${clickId}&order_id=M%C3%BCller-${nextOrder()}`).expect(202);
    await request(h.app).get(`/postback?key=${key}&click_id=${clickId}&order_id=50%-${nextOrder()}`).expect(202);
  });

  it('a JSON body with a raw 0xFF byte', async () => {
    const body = Buffer.concat([Buffer.from(`{"click_id":"${clickId}","order_id":"M`), Buffer.from([0xff]), Buffer.from(`ller-${nextOrder()}"}`)]);
    const res = await rawPost(`/postback?key=${key}`, 'application/json', body);
    expect(res.status).toBe(400);
    expect(res.body.error.fields).toHaveProperty('order_id');
  });

  it('a form body with a byte that is not UTF-8', async () => {
    const res = await request(h.app).post('/postback').type('form').send(`key=${key}&click_id=${clickId}&order_id=M%FCller-${nextOrder()}`).expect(400);
    expect(res.body.error.fields).toHaveProperty('order_id');
  });

  it('a JSON body with a key given twice', async () => {
    const res = await request(h.app)
      .post(`/postback?key=${key}`)
      .set('content-type', 'application/json')
      .send(`{"click_id":"${clickId}","order_id":"A-${nextOrder()}","order_id":"B"}`)
      .expect(400);
    expect(res.body.error.fields).toHaveProperty('order_id');
  });

  it('an X-Postback-Key header and a different key parameter', async () => {
    const other = await advertiser();
    const res = await request(h.app).get(`/postback?key=${other.postbackKey}&${base()}`).set('X-Postback-Key', key).expect(400);
    expect(res.body.error.fields).toHaveProperty('key');
    await request(h.app).get(`/postback?key=${key}&${base()}`).set('X-Postback-Key', key).expect(202);
  });

  it('more than 1,000 query parameters (node:querystring would drop the rest)', async () => {
    const filler = (n: number) => Array.from({ length: n }, (_, i) => `f${i}=1`).join('&');
    const res = await request(h.app)
      .get(`/postback?key=${key}&${base()}&${filler(999)}`)
      .expect(400);
    // The api's code for it, from the same parser.
    expect(res.body.error.code).toBe('too_many_parameters');
    // 1,000 exactly, and empty pairs (a trailing &) are no parameters.
    await request(h.app)
      .get(`/postback?key=${key}&${base()}&${filler(997)}&`)
      .expect(202);
  });
});

/** A POST of exactly these bytes (supertest would re-encode a Buffer body as JSON). */
async function rawPost(path: string, contentType: string, body: Buffer): Promise<{ status: number; body: { error: { fields: Record<string, string> } } }> {
  const server = http.createServer(h.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await new Promise((resolve, reject) => {
      const req = http.request(
        {
          port: (server.address() as AddressInfo).port,
          host: '127.0.0.1',
          path,
          method: 'POST',
          headers: { 'content-type': contentType, 'content-length': body.length },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  } finally {
    server.close();
  }
}

describe('status vocabularies and unreplaced placeholders (issue 9 §1)', () => {
  let key: string;
  beforeAll(async () => {
    key = (await advertiser()).postbackKey;
  });

  it.each([
    ['Sale', 'approved'],
    ['confirmed', 'approved'],
    ['LEAD', 'pending'],
    ['on_hold', 'pending'],
    ['Declined', 'rejected'],
    ['chargeback', 'rejected'],
  ])('status=%s is queued as %s', async (sent, expected) => {
    const res = await request(h.app).get(`/postback?key=${key}&click_id=${clickId}&order_id=${nextOrder()}&status=${sent}`).expect(202);
    const { findQueuedPostback } = await import('@trackway/queues');
    const queued = await findQueuedPostback(h.queues.postbacks, res.body.postback_id);
    expect(queued?.postback.status).toBe(expected);
  });

  it.each([
    ['txid', '{transaction_id}', 'order_id'],
    ['order_id', 'OPTIONAL', 'order_id'],
    ['clickid', '[CLICK_ID]', 'click_id'],
    ['payout', '%payout%', 'amount'],
    ['currency', 'null', 'currency'],
  ])('%s=%s is refused, naming the parameter as sent', async (name, value, field) => {
    const params = new URLSearchParams({ key, click_id: clickId, order_id: nextOrder() });
    if (field === 'click_id') params.delete('click_id');
    if (field === 'order_id') params.delete('order_id');
    params.set(name, value);
    const res = await request(h.app).get(`/postback?${params.toString()}`).expect(400);
    expect(res.body.error.fields[field]).toContain(`${name}=${value}`);
    expect(res.body.error.fields[field]).toContain('placeholder');
  });
});
