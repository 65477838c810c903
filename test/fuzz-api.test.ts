// Fuzzing the admin API (issue 8 §4): generated requests against the real app on a real local
// port, with a real Postgres schema and Redis prefix. Most carry a valid admin token so they reach
// the route handlers: create and patch bodies, list filters, ids, recover dates, payouts. Every
// answer is a 2xx/3xx or a 4xx with the envelope, never ≥ 500; a bad credential never gets in; a
// body that cannot be stored faithfully is refused; a secret is shown only where it is issued; the
// server still answers /healthz; nothing escapes to the process.
import { newId } from '@trackway/domain';
import { type Fixture, createFixture } from '@trackway/testing';
import fc from 'fast-check';
import { encodeCursor } from '../services/api/src/pagination';
import { ADMIN_SECRET, type ApiHarness, startApi } from '../services/api/test/helpers';
import {
  CONTENT_ENCODINGS,
  CONTENT_TYPES,
  type FuzzAnswer,
  type FuzzRequest,
  type Refusal,
  type Served,
  type Tally,
  b64url,
  createClient,
  encodeBody,
  encodeComponent,
  fuzzInBatches,
  hostileString,
  hs256,
  isParserAnswer,
  newTally,
  oddJsonText,
  rawRequest,
  serve,
  urlEncoding,
} from './support/fuzz';

const RUNS = Number(process.env.FUZZ_RUNS ?? 500); // FUZZ_RUNS: fewer, while debugging a failure
const BATCH = 16;
const TOTAL = RUNS * BATCH; // 8,000 generated requests

let h: ApiHarness;
let served: Served;
let client: ReturnType<typeof createClient>;

/** Ids that exist, so most generated ids reach a row. */
const pools = {
  advertisers: [] as number[],
  affiliates: [] as number[],
  offers: [] as number[],
  conversions: [] as string[],
  postbacks: [] as string[],
  endpoints: [] as string[],
  /** Endpoints DELETE may take (the others stay, so the rest of the fuzz keeps reaching rows). */
  deletable: [] as string[],
  partners: [] as string[],
  partnersDeletable: [] as string[],
  deliveries: [] as string[],
  payouts: [] as string[],
};
/** An affiliate whose two approved commissions sum past numeric(18,4) (issue 8 §3.1). */
let overflow: { affiliateId: number; currency: string };
/** Authorization values by what they must get: in, refused, or refused for their lifetime (ADMIN_JWT_MAX_AGE). */
const tokens = { valid: [] as string[], refused: [] as string[], overlong: [] as string[] };
let sessionCookie: string;
let foreignCookie: string;

const SECRET_MARK = 'hdrsecret-';

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${served.origin}${path}`, {
    method,
    headers: { ...h.auth, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    redirect: 'manual',
  });
  const text = await res.text();
  if (res.status >= 400) throw new Error(`seeding ${method} ${path}: ${res.status} ${text}`);
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  // AUTH_FAILURE_LIMIT off: thousands of bad tokens come from one address here (the limiter has tests of its own).
  h = await startApi(undefined, undefined, { frontDoor: { authFailureLimit: 1_000_000 } });
  served = await serve(h.app);
  client = createClient(served, { connections: 8 });

  // Rows of every kind, made the way an admin makes them (through the API) where the API can.
  for (const name of ['Acme', 'Müller GmbH', 'Shop 3']) pools.advertisers.push((await call('POST', '/v1/advertisers', { name })).body.id);
  for (const name of ['Blog', 'Deals', 'Coupons']) pools.affiliates.push((await call('POST', '/v1/affiliates', { name })).body.id);
  for (const advertiser_id of pools.advertisers) {
    const offer = {
      advertiser_id,
      name: 'Spring',
      destination_url: 'https://shop.example/?c={click_id}&s={sub1}',
      currency: 'USD',
      payout: { type: 'fixed', amount: '5.00' },
    };
    pools.offers.push((await call('POST', '/v1/offers', offer)).body.id);
    pools.offers.push((await call('POST', '/v1/offers', { ...offer, payout: { type: 'percent', percent: '10' }, amount_cap: '1000' })).body.id);
  }
  for (let i = 0; i < 10; i++) {
    const { body } = await call('POST', '/v1/webhook-endpoints', {
      url: `https://hooks.example/${i}`,
      event_types: ['*'],
      headers: { Authorization: `Bearer ${SECRET_MARK}${i}` },
    });
    (i < 7 ? pools.endpoints : pools.deletable).push(body.id);
  }
  for (let i = 0; i < 6; i++) {
    const { body } = await call('POST', '/v1/partner-postbacks', {
      affiliate_id: pools.affiliates[i % pools.affiliates.length],
      url: `https://tracker.example/pb/${i}?cid={sub1}&payout={payout}&token=${SECRET_MARK}${i}`,
      ...(i % 2 === 1
        ? { offer_id: pools.offers[i % pools.offers.length], preset: 'keitaro', event_types: ['conversion.approved', 'conversion.rejected'] }
        : {}),
    });
    (i < 4 ? pools.partners : pools.partnersDeletable).push(body.id);
  }

  // Conversions, commissions, deliveries and postback outcomes come from the workers: written here directly.
  const fx: Fixture = await createFixture(h.db.prisma);
  const other = await createFixture(h.db.prisma);
  const prisma = h.db.prisma;
  const now = new Date();
  const conversion = async (
    affiliateId: number,
    status: 'pending' | 'approved',
    amount: string,
    currency: string,
    commission: 'approved' | 'pending' | null,
  ) => {
    const id = newId('conversion');
    await prisma.conversion.create({
      data: {
        id,
        advertiserId: fx.advertiserId,
        offerId: fx.offerId,
        affiliateId,
        clickId: 'c',
        orderId: `O-${id}`,
        event: 'conversion',
        status,
        holdReason: status === 'pending' ? 'ctit_too_short' : null,
        amount,
        currency,
        payout: amount,
        payoutCurrency: currency,
        clickedAt: now,
        commission: commission ? { create: { id: newId('commission'), affiliateId, amount, currency, status: commission } } : undefined,
      },
    });
    return id;
  };
  for (let i = 0; i < 6; i++) pools.conversions.push(await conversion(fx.affiliateId, 'approved', '5', 'USD', 'approved'));
  for (let i = 0; i < 6; i++) pools.conversions.push(await conversion(fx.affiliateId, 'pending', '5', 'USD', 'pending'));
  for (let i = 0; i < 4; i++) pools.conversions.push(await conversion(other.affiliateId, 'approved', '7.5', 'EUR', 'approved'));
  const big = await prisma.affiliate.create({ data: { name: 'Big spender' } });
  for (let i = 0; i < 2; i++) await conversion(big.id, 'approved', '99999999999999.9999', 'JPY', 'approved');
  overflow = { affiliateId: big.id, currency: 'JPY' };
  pools.affiliates.push(fx.affiliateId, other.affiliateId, big.id);
  pools.advertisers.push(fx.advertiserId);
  pools.payouts.push((await call('POST', '/v1/payouts', { affiliate_id: fx.affiliateId, currency: 'USD' })).body.id);
  for (const [i, endpointId] of pools.endpoints.entries()) {
    for (const status of ['failed', 'failed', 'succeeded', 'pending'] as const) {
      const event = await prisma.outboxEvent.create({ data: { id: newId('event'), type: 'conversion.created', payload: {}, publishedAt: now } });
      const delivery = await prisma.delivery.create({
        data: {
          id: newId('delivery'),
          eventId: event.id,
          endpointId,
          eventType: event.type,
          status,
          attemptCount: status === 'pending' ? 0 : 1,
          createdAt: new Date(now.getTime() - i * 86_400_000),
        },
      });
      pools.deliveries.push(delivery.id);
    }
  }
  for (const status of ['accepted', 'duplicate', 'rejected'] as const) {
    const id = newId('postback');
    await prisma.postback.create({
      data: { id, advertiserId: fx.advertiserId, status, reason: status === 'rejected' ? 'unknown_click' : null, params: { order_id: 'x' }, receivedAt: now },
    });
    pools.postbacks.push(id);
  }

  // Credentials: the valid token, tokens that must be refused, and tokens refused for their lifetime.
  const t = Math.floor(Date.now() / 1000);
  const sign = async (claims: Record<string, unknown>, alg = 'HS256', secret = ADMIN_SECRET) => hs256(claims, secret, { alg, typ: 'JWT' });
  const [header, payload, signature] = h.token.split('.');
  tokens.valid.push(
    `Bearer ${h.token}`,
    `Bearer ${await sign({ scope: ['admin'], iat: t, exp: t + 600 })}`,
    `Bearer ${await sign({ scope: 'read admin', iat: t, exp: t + 600, sub: "'; DROP TABLE x; --" })}`,
  );
  tokens.refused.push(
    '',
    'Bearer',
    'Bearer ',
    'Basic YWRtaW46YWRtaW4=',
    'Token x',
    `Bearer ${h.token.slice(0, -2)}`, // (The signature's first char is changed: its last one carries 2 padding bits, and a change there may decode to the same bytes.)
    `Bearer ${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`,
    `Bearer ${header}.${b64url({ scope: 'admin', exp: t + 99_999, sub: 'forged' })}.${signature}`,
    `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ scope: 'admin', exp: t + 600 })}.`,
    `Bearer ${b64url({ alg: 'RS256' })}.${payload}.${signature}`,
    `Bearer ${b64url({ alg: 'HS512' })}.${payload}.${signature}`,
    'Bearer bm90anNvbg.e30.x',
    'Bearer a.b.c',
    'Bearer ..',
    `Bearer ${'a'.repeat(9_000)}.b.c`,
    `Bearer ${await sign({ scope: 'admin', exp: t - 60, iat: t - 3600 })}`,
    `Bearer ${await sign({ scope: 'read', iat: t, exp: t + 600 })}`,
    `Bearer ${await sign({ scope: ['reader', 'administrator'], iat: t, exp: t + 600 })}`,
    // Without iat: refused since ADMIN_JWT_MAX_AGE.
    `Bearer ${await sign({ scope: 'admin', exp: t + 600 })}`,
    `Bearer ${await sign({ scope: 'admin' })}`,
    `Bearer ${await sign({ scope: 'admin', exp: t + 600, nbf: t + 3600 })}`,
    `Bearer ${await sign({ scope: 'admin', exp: t + 600 }, 'HS256', 'another-secret-0123456789abcdef0123456789')}`,
    `Bearer ${await sign({ scope: 'admin', exp: 'never' })}`,
  );
  tokens.overlong.push(
    `Bearer ${await sign({ scope: 'admin', iat: t, exp: t + 1000 * 365 * 86_400 })}`,
    `Bearer ${await sign({ scope: 'admin', iat: t + 86_400, exp: t + 2 * 86_400 })}`,
  );

  // A Bull Board session, and one signed with another key.
  const login = await fetch(`${served.origin}/admin/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${h.token}`,
    redirect: 'manual',
  });
  sessionCookie = /trackway_admin=[^;]+/.exec(login.headers.get('set-cookie') ?? '')![0];
  foreignCookie = `trackway_admin=${hs256({ scope: 'admin', iss: 'trackway-admin-session', exp: t + 600 }, 'not-the-session-key-0123456789abcdef', { alg: 'HS256' })}`;
}, 120_000);

afterAll(async () => {
  await client?.close();
  await served?.close();
  await h?.close();
});

// ---------------------------------------------------------------------------------------------
// Values: mostly valid (so the request gets past the first check), or hostile JSON of any shape.

const SURROGATE = '@@SURROGATE@@';
const BAD_UTF8 = '@@BADUTF8@@';

const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constantFrom(null, [], {}, [1], { a: 1 }, 2_147_483_648, -1, 0, 1e308, 2 ** 53 + 2, 0.5, '', ' ') },
  { weight: 1, arbitrary: fc.constantFrom(`a${SURROGATE}b`, `${BAD_UTF8}`, `x${BAD_UTF8}y`) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const or = <T>(valid: fc.Arbitrary<T>, weight = 4): fc.Arbitrary<unknown> => fc.oneof({ weight, arbitrary: valid }, { weight: 1, arbitrary: hostileJson });

const nameArb = fc.oneof(
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }),
  fc.constantFrom('Acme', 'Müller GmbH', '日本の店', '🙂 shop', 'x'.repeat(200), '  padded  ', "O'Brien & Co", '<b>bold</b>'),
);
const moneyArb = fc.oneof(
  fc.tuple(fc.nat({ max: 99_999 }), fc.nat({ max: 99 })).map(([a, b]) => `${a}.${String(b).padStart(2, '0')}`),
  fc.constantFrom('0', '5', '5.00', '99999999999999.9999', '0.0001'),
);
const currencyArb = fc.constantFrom('USD', 'EUR', 'JPY', 'GBP');
const idOf = <T>(pool: () => T[]) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.nat().map((i) => pool()[i % pool().length]) },
    { weight: 1, arbitrary: fc.constantFrom(0, -1, 1.5, 2_147_483_647, 2_147_483_648, 1e21, '1', null) },
  );

const destinationArb = fc.constantFrom(
  'https://shop.example/?c={click_id}',
  'https://shop.example/p/{sub1}?a={affiliate_id}&o={offer_id}',
  'http://a.example',
  'https://shop.example/?x={sub5}#frag',
  'https://xn--mller-kva.example/',
  `https://shop.example/${'a'.repeat(2000)}`,
);
/** Destinations that must be refused: macros that can change the host (open redirect), control characters the URL parser strips. */
const MACRO_IN_HOST = [
  'https://{sub1}/',
  'https://shop.example{sub1}/',
  'https://{sub1}@shop.example/',
  '{sub1}://shop.example/',
  'https://shop.{click_id}.example/',
  'https://shop.example:{sub2}/',
  'http{sub1}://x.example/',
];
const CONTROL_IN_URL = [
  'https://shop.example/\r\nx',
  'https://shop.exa\tmple/',
  'https://shop.example/a\nb',
  'https://shop.example/?c={click_id}\r',
  '\thttps://shop.example/',
];
/** Endpoint URLs whose literal address is private, loopback-but-not-allowed, link-local…: refused at creation. */
const PRIVATE_URLS = [
  'http://10.0.0.1/',
  'http://169.254.169.254/latest/meta-data/',
  'http://[::1]/',
  'http://0.0.0.0/',
  'http://[::ffff:10.0.0.1]/',
  'http://0x0a000001/',
  'http://167772161/',
  'http://012.0.0.1/',
  'http://[fd00::1]/',
  'http://100.64.0.1/',
  'http://192.168.1.1:8080/',
  'http://[fe80::1]/',
  'http://224.0.0.1/',
  'http://[::]/',
  'http://172.16.0.1/',
  'https://[::ffff:a9fe:a9fe]/',
];

type Body = Record<string, unknown>;
interface BodyPlan {
  body: Body;
  refuse: Refusal[];
}

const plain = (body: Body): BodyPlan => ({ body, refuse: [] });

const namedBody = (partial: boolean) =>
  fc
    .record({ name: or(nameArb), status: or(fc.constantFrom('active', 'inactive')) }, { requiredKeys: partial ? [] : ['name'] })
    .map((b) => plain(partial ? b : { name: b.name }));

const offerBody = (partial: boolean) =>
  fc
    .record(
      {
        advertiser_id: or(idOf(() => pools.advertisers)),
        name: or(nameArb),
        destination_url: fc.oneof(
          { weight: 6, arbitrary: destinationArb.map((url) => ({ url, refuse: [] as Refusal[] })) },
          {
            weight: 1,
            arbitrary: fc.constantFrom(...MACRO_IN_HOST).map((url) => ({ url, refuse: [{ why: `a destination whose host a macro can change: ${url}` }] })),
          },
          {
            weight: 1,
            arbitrary: fc.constantFrom(...CONTROL_IN_URL).map((url) => ({ url, refuse: [{ why: `a destination with CR/LF/TAB: ${JSON.stringify(url)}` }] })),
          },
          { weight: 1, arbitrary: hostileJson.map((url) => ({ url, refuse: [] as Refusal[] })) },
        ),
        currency: or(currencyArb),
        payout: or(
          fc.oneof(
            moneyArb.map((amount) => ({ type: 'fixed', amount })),
            fc.constantFrom('0', '10', '12.5', '100', '100.0001', '101', '-1').map((percent) => ({ type: 'percent', percent })),
            fc.record({ type: fc.constantFrom('fixed', 'percent', 'tiered'), amount: hostileJson, percent: hostileJson }),
          ),
        ),
        attribution_window_days: or(fc.integer({ min: 1, max: 365 })),
        min_ctit_seconds: or(fc.integer({ min: 0, max: 86_400 })),
        amount_cap: or(fc.option(moneyArb)),
        revenue: or(
          fc.option(
            fc.oneof(
              moneyArb.map((amount) => ({ type: 'fixed', amount })),
              fc.constantFrom('0', '12.5', '100', '101', '-1').map((percent) => ({ type: 'percent', percent })),
              fc.record({ type: fc.constantFrom('fixed', 'percent', 'cpa'), amount: hostileJson, percent: hostileJson }),
            ),
          ),
        ),
        share_amount_with_partners: or(fc.boolean()),
        status: or(fc.constantFrom('active', 'inactive')),
      },
      { requiredKeys: partial ? [] : ['advertiser_id', 'name', 'destination_url', 'currency', 'payout'] },
    )
    .map(({ destination_url, status, ...rest }) => {
      const body: Body = { ...rest };
      if (destination_url) body.destination_url = destination_url.url;
      if (partial && status !== undefined) body.status = status;
      return { body, refuse: destination_url?.refuse ?? [] };
    });

const endpointUrlArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .constantFrom(
        'https://hooks.example/in',
        'http://127.0.0.1:9/hook',
        'https://hooks.example:8443/a?b=c',
        'https://xn--mller-kva.example/',
        'http://localhost:1/',
      )
      .map((url) => ({ url, refuse: [] as Refusal[] })),
  },
  { weight: 2, arbitrary: fc.constantFrom(...PRIVATE_URLS).map((url) => ({ url, refuse: [{ why: `an endpoint at a private address literal: ${url}` }] })) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        'https://user:pass@hooks.example/',
        'ftp://hooks.example/',
        'javascript:alert(1)',
        'hooks.example',
        '//hooks.example/',
        'https://',
        'file:///etc/passwd',
      )
      .map((url) => ({ url, refuse: [{ why: `not an http(s) URL without credentials: ${url}` }] })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...CONTROL_IN_URL).map((url) => ({ url, refuse: [{ why: `an endpoint URL with CR/LF/TAB: ${JSON.stringify(url)}` }] })),
  },
  { weight: 1, arbitrary: hostileJson.map((url) => ({ url, refuse: [] as Refusal[] })) },
);
const headersArb = fc.oneof(
  fc.dictionary(
    fc.constantFrom('Authorization', 'X-Api-Key', 'X-Team', 'x-a', 'X_B'),
    fc.nat().map((n) => `${SECRET_MARK}${n}`),
    { maxKeys: 3 },
  ),
  fc.dictionary(
    fc.oneof(
      fc.constantFrom('content-type', 'User-Agent', 'webhook-signature', 'Webhook-Id', 'Host', '', 'a b', 'x\r\ny', 'é', 'a'.repeat(65)),
      fc.string({ maxLength: 10 }),
    ),
    hostileJson,
    { maxKeys: 3 },
  ),
  fc.integer({ min: 19, max: 25 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']))),
  hostileJson,
);
const endpointBody = (partial: boolean) =>
  fc
    .record(
      {
        url: endpointUrlArb,
        event_types: or(
          fc.oneof(
            fc.constant(['*']),
            fc.subarray(
              ['conversion.created', 'conversion.approved', 'conversion.rejected', 'commission.created', 'fraud.flagged', 'payout.sent', 'endpoint.disabled'],
              { minLength: 1 },
            ),
            fc.constantFrom(
              [],
              ['webhook.test'],
              ['nope'],
              ['*', 'conversion.created'],
              Array.from({ length: 51 }, () => '*'),
            ),
          ),
        ),
        description: or(fc.option(nameArb)),
        headers: headersArb,
        rate_limit_per_second: or(fc.option(fc.integer({ min: 1, max: 10_000 }))),
      },
      { requiredKeys: partial ? [] : ['url', 'event_types'] },
    )
    .map(({ url, ...rest }) => ({ body: url ? { url: url.url, ...rest } : rest, refuse: url?.refuse ?? [] }));

const partnerUrlArb = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .constantFrom(
        'https://tracker.example/pb?cid={sub1}&p={payout}&c={payout_currency}&token=abc',
        'https://tracker.example/{affiliate_id}/pb?s={status}&e={event}&t={event_type}&ts={timestamp}#{conversion_id}',
        'https://tracker.example/pb',
        'https://tracker.example/pb?a={amount}&s5={sub5}&o={offer_id}&k={click_id}',
      )
      .map((url) => ({ url, refuse: [] as Refusal[] })),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        'https://tracker.example/?x={nope}',
        'https://tracker.example/?x={SUB1}',
        'https://{sub1}.example/',
        'https://tracker.example:{offer_id}/',
        'https://tracker.example/?token=***',
        'https://{sub1}@tracker.example/',
      )
      .map((url) => ({ url, refuse: [{ why: `a partner URL with an unknown or misplaced macro, or a masked value: ${url}` }] })),
  },
  { weight: 3, arbitrary: endpointUrlArb },
);
const partnerBody = (partial: boolean) =>
  fc
    .record(
      {
        affiliate_id: or(idOf(() => pools.affiliates)),
        url: partnerUrlArb,
        offer_id: or(fc.option(idOf(() => pools.offers))),
        event_types: or(
          fc.oneof(
            fc.subarray(['conversion.created', 'conversion.approved', 'conversion.rejected', 'conversion.updated'], { minLength: 1 }),
            fc.constantFrom([], ['commission.created'], ['*'], ['webhook.test'], ['conversion.approved', 'conversion.approved']),
          ),
        ),
        method: or(fc.constantFrom('GET', 'POST', 'get', 'PUT')),
        preset: or(fc.option(fc.constantFrom('voluum', 'binom', 'keitaro', 'redtrack', 'everflow', 'affise', 'bemob', 'cake', 'Keitaro'))),
        description: or(fc.option(nameArb)),
        rate_limit_per_second: or(fc.option(fc.integer({ min: 1, max: 10_000 }))),
      },
      { requiredKeys: partial ? [] : ['affiliate_id', 'url'] },
    )
    .map(({ url, affiliate_id, ...rest }) => {
      const body: Body = { ...rest };
      if (url) body.url = url.url;
      // PATCH does not take the affiliate (a postback moves to no other affiliate): refused as unknown.
      if (affiliate_id !== undefined) body.affiliate_id = affiliate_id;
      return { body, refuse: [...(url?.refuse ?? []), ...(partial && affiliate_id !== undefined ? [{ why: 'affiliate_id in a PATCH' }] : [])] };
    });

const DATES = [
  '2024-01-01T00:00:00Z',
  '1970-01-01T00:00:00Z',
  '2000-02-29T12:00:00.123+05:30',
  '9999-12-31T23:59:59.999Z',
  '0001-01-01T00:00:00Z',
  '2024-02-30T00:00:00Z',
  '2024-13-01T00:00:00Z',
  '2024-01-01T24:00:00Z',
  '2024-01-01T00:00:60Z',
  '2024-01-01T00:00:00+25:00',
  '2024-01-01',
  '+275760-09-13T00:00:00Z',
  '2024-01-01T00:00:00.123456789Z',
  '0000-01-01T00:00:00Z',
  '0000-12-31T23:59:59-01:00',
  '0001-01-01T00:00:00+01:00',
  '0000-06-15T12:00:00Z',
  'now',
  '',
  '1700000000',
];
const recoverBody = fc
  .oneof(
    { weight: 4, arbitrary: fc.date({ min: new Date('1970-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString()) },
    { weight: 3, arbitrary: fc.constantFrom(...DATES) },
    { weight: 1, arbitrary: hostileJson },
  )
  .map((since): BodyPlan => {
    return { body: { since }, refuse: [] };
  });

const payoutBody = fc
  .record(
    {
      affiliate_id: or(
        fc.oneof(
          idOf(() => pools.affiliates),
          fc.constant('overflow'),
        ),
      ),
      currency: or(fc.oneof(currencyArb, fc.constantFrom('usd', 'XXX', 'US'))),
    },
    { requiredKeys: ['affiliate_id', 'currency'] },
  )
  .map(({ affiliate_id, currency }): BodyPlan => {
    const body = { affiliate_id: affiliate_id === 'overflow' ? overflow.affiliateId : affiliate_id, currency };
    return { body, refuse: [] };
  });

// ---------------------------------------------------------------------------------------------
// Routes. Ids come from the pools, or are malformed; lists get filters, valid or hostile.

interface Route {
  method: string;
  path: string;
  id?: fc.Arbitrary<string>;
  body?: fc.Arbitrary<BodyPlan>;
  /** A list: its filters (besides cursor and limit); any other query name must be refused. */
  filters?: Record<string, fc.Arbitrary<string>>;
  cursor?: 'int' | 'string';
}

const MALFORMED_IDS = [
  '0',
  '-1',
  '1.5',
  '2147483648',
  '99999999999',
  '1e3',
  '0x1',
  '%31',
  '%2531',
  ' 1',
  '1%00',
  'abc',
  '..',
  '%2e%2e',
  'null',
  '__proto__',
  'constructor',
  '1;drop',
  '%E9',
  '%FF',
  '1%2F2',
  'ep_',
  'ep_01ARZ3NDEKTSV4RRFFQ69G5FAV',
  'EP_01ARZ3NDEKTSV4RRFFQ69G5FAV',
  'ep_01arz3ndektsv4rrffq69g5fav',
  `ep_${'0'.repeat(40)}`,
  '%',
  '%zz',
];
const intIdArb = (pool: () => number[]) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.nat().map((i) => String(pool()[i % pool().length])) },
    { weight: 2, arbitrary: fc.constantFrom(...MALFORMED_IDS) },
    { weight: 1, arbitrary: fc.nat().map(String) },
  );
const strIdArb = (prefix: string, pool: () => string[]) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.nat().map((i) => pool()[i % pool().length] ?? `${prefix}_01ARZ3NDEKTSV4RRFFQ69G5FAV`) },
    { weight: 2, arbitrary: fc.constantFrom(...MALFORMED_IDS) },
    { weight: 1, arbitrary: fc.stringMatching(/^[0-9A-Z]{26}$/).map((u) => `${prefix}_${u}`) },
  );

const filterValue = (valid: fc.Arbitrary<string>) => fc.oneof({ weight: 4, arbitrary: valid }, { weight: 1, arbitrary: hostileString });
const statusFilter = (...values: string[]) => filterValue(fc.constantFrom(...values));
const idFilter = (pool: () => number[]) => filterValue(fc.nat().map((i) => String(pool()[i % pool().length])));

const ROUTES: Route[] = [
  { method: 'POST', path: '/v1/advertisers', body: namedBody(false) },
  { method: 'GET', path: '/v1/advertisers', filters: { status: statusFilter('active', 'inactive') }, cursor: 'int' },
  { method: 'GET', path: '/v1/advertisers/{id}', id: intIdArb(() => pools.advertisers) },
  { method: 'PATCH', path: '/v1/advertisers/{id}', id: intIdArb(() => pools.advertisers), body: namedBody(true) },
  { method: 'POST', path: '/v1/advertisers/{id}/rotate-key', id: intIdArb(() => pools.advertisers) },
  { method: 'POST', path: '/v1/affiliates', body: namedBody(false) },
  { method: 'GET', path: '/v1/affiliates', filters: { status: statusFilter('active', 'inactive') }, cursor: 'int' },
  { method: 'GET', path: '/v1/affiliates/{id}', id: intIdArb(() => pools.affiliates) },
  { method: 'PATCH', path: '/v1/affiliates/{id}', id: intIdArb(() => pools.affiliates), body: namedBody(true) },
  { method: 'POST', path: '/v1/offers', body: offerBody(false) },
  {
    method: 'GET',
    path: '/v1/offers',
    filters: { advertiser_id: idFilter(() => pools.advertisers), status: statusFilter('active', 'inactive') },
    cursor: 'int',
  },
  { method: 'GET', path: '/v1/offers/{id}', id: intIdArb(() => pools.offers) },
  { method: 'PATCH', path: '/v1/offers/{id}', id: intIdArb(() => pools.offers), body: offerBody(true) },
  {
    method: 'GET',
    path: '/v1/conversions',
    filters: {
      order_id: filterValue(fc.constantFrom('O-1', 'x')),
      advertiser_id: idFilter(() => pools.advertisers),
      offer_id: idFilter(() => pools.offers),
      affiliate_id: idFilter(() => pools.affiliates),
      status: statusFilter('pending', 'approved', 'rejected'),
      sub1: filterValue(fc.constantFrom('aff-click-1', 'x', 'é')),
      sub5: filterValue(fc.constantFrom('x')),
      created_from: filterValue(fc.constantFrom(...DATES)),
      created_to: filterValue(fc.constantFrom(...DATES)),
    },
    cursor: 'string',
  },
  { method: 'GET', path: '/v1/conversions/{id}', id: strIdArb('cnv', () => pools.conversions) },
  {
    method: 'PATCH',
    path: '/v1/conversions/{id}',
    id: strIdArb('cnv', () => pools.conversions),
    body: fc.record({ status: or(fc.constantFrom('approved', 'rejected', 'pending')) }).map(plain),
  },
  { method: 'GET', path: '/v1/postbacks/{id}', id: strIdArb('pb', () => pools.postbacks) },
  { method: 'POST', path: '/v1/webhook-endpoints', body: endpointBody(false) },
  { method: 'GET', path: '/v1/webhook-endpoints', filters: { enabled: statusFilter('true', 'false') }, cursor: 'string' },
  { method: 'GET', path: '/v1/webhook-endpoints/{id}', id: strIdArb('ep', () => pools.endpoints) },
  { method: 'PATCH', path: '/v1/webhook-endpoints/{id}', id: strIdArb('ep', () => pools.endpoints), body: endpointBody(true) },
  { method: 'DELETE', path: '/v1/webhook-endpoints/{id}', id: strIdArb('ep', () => pools.deletable) },
  { method: 'POST', path: '/v1/webhook-endpoints/{id}/enable', id: strIdArb('ep', () => pools.endpoints) },
  { method: 'POST', path: '/v1/webhook-endpoints/{id}/disable', id: strIdArb('ep', () => pools.endpoints) },
  { method: 'POST', path: '/v1/webhook-endpoints/{id}/rotate-secret', id: strIdArb('ep', () => pools.endpoints) },
  { method: 'POST', path: '/v1/webhook-endpoints/{id}/test', id: strIdArb('ep', () => pools.endpoints) },
  {
    method: 'GET',
    path: '/v1/webhook-endpoints/{id}/deliveries',
    id: strIdArb('ep', () => pools.endpoints),
    filters: { status: statusFilter('pending', 'succeeded', 'failed') },
    cursor: 'string',
  },
  { method: 'POST', path: '/v1/webhook-endpoints/{id}/recover', id: strIdArb('ep', () => pools.endpoints), body: recoverBody },
  { method: 'POST', path: '/v1/partner-postbacks', body: partnerBody(false) },
  {
    method: 'GET',
    path: '/v1/partner-postbacks',
    filters: { affiliate_id: idFilter(() => pools.affiliates), offer_id: idFilter(() => pools.offers), enabled: statusFilter('true', 'false') },
    cursor: 'string',
  },
  { method: 'GET', path: '/v1/partner-postbacks/{id}', id: strIdArb('pp', () => pools.partners) },
  { method: 'PATCH', path: '/v1/partner-postbacks/{id}', id: strIdArb('pp', () => pools.partners), body: partnerBody(true) },
  { method: 'DELETE', path: '/v1/partner-postbacks/{id}', id: strIdArb('pp', () => pools.partnersDeletable) },
  { method: 'POST', path: '/v1/partner-postbacks/{id}/enable', id: strIdArb('pp', () => pools.partners) },
  { method: 'POST', path: '/v1/partner-postbacks/{id}/disable', id: strIdArb('pp', () => pools.partners) },
  { method: 'POST', path: '/v1/partner-postbacks/{id}/test', id: strIdArb('pp', () => pools.partners) },
  {
    method: 'GET',
    path: '/v1/partner-postbacks/{id}/deliveries',
    id: strIdArb('pp', () => pools.partners),
    filters: { status: statusFilter('pending', 'succeeded', 'failed') },
    cursor: 'string',
  },
  { method: 'POST', path: '/v1/partner-postbacks/{id}/recover', id: strIdArb('pp', () => pools.partners), body: recoverBody },
  { method: 'GET', path: '/v1/deliveries/{id}', id: strIdArb('dlv', () => pools.deliveries) },
  { method: 'POST', path: '/v1/deliveries/{id}/retry', id: strIdArb('dlv', () => pools.deliveries) },
  { method: 'POST', path: '/v1/payouts', body: payoutBody },
  {
    method: 'GET',
    path: '/v1/payouts',
    filters: { affiliate_id: idFilter(() => pools.affiliates), status: statusFilter('pending', 'sent') },
    cursor: 'string',
  },
  { method: 'GET', path: '/v1/payouts/{id}', id: strIdArb('po', () => pools.payouts) },
  { method: 'POST', path: '/v1/payouts/{id}/mark-sent', id: strIdArb('po', () => pools.payouts), body: fc.record({ reference: or(nameArb) }).map(plain) },
  { method: 'GET', path: '/v1/event-types' },
];

/** Routes whose body has a schema (the others ignore it). */
const READS_BODY = (route: Route) => route.body !== undefined;

const UNKNOWN_FILTERS = [
  'order_id[$ne]',
  'a[b]',
  '__proto__',
  'constructor',
  'sort',
  'offset',
  'page',
  'where',
  'Status',
  'STATUS',
  'status ',
  'limit[]',
  'q',
  '',
];

const queryArb = (route: Route) => {
  const names = [...Object.keys(route.filters ?? {}), 'cursor', 'limit'];
  const valueFor = (name: string): fc.Arbitrary<string> =>
    name === 'cursor'
      ? fc.oneof(
          fc
            .nat()
            .map((i) =>
              encodeCursor(
                route.cursor === 'int'
                  ? [...pools.advertisers, ...pools.affiliates, ...pools.offers][i % 9]
                  : [...pools.conversions, ...pools.endpoints, ...pools.payouts][i % 9],
              ),
            ),
          fc.constantFrom(
            'garbage',
            '',
            'e30',
            b64url({ id: -1 }),
            b64url({ id: 2 ** 31 }),
            b64url({ id: 'x' }),
            b64url({ id: { lt: 1 } }),
            b64url('[1]'),
            b64url({ id: 'cnv_01ARZ3NDEKTSV4RRFFQ69G5FAV' }),
            'A'.repeat(201),
          ),
          hostileString,
        )
      : name === 'limit'
        ? fc.oneof(
            fc.integer({ min: 1, max: 200 }).map(String),
            fc.constantFrom('0', '201', '-1', '1e2', '5.5', ' 5', 'NaN', 'Infinity', '0x10', '', '99999999999999999999'),
            hostileString,
          )
        : route.filters![name];
  return fc
    .record({
      pairs: fc.array(
        fc.constantFrom(...names).chain((n) => valueFor(n).map((v) => [n, v] as const)),
        { maxLength: 4 },
      ),
      unknown: fc.option(fc.tuple(fc.constantFrom(...UNKNOWN_FILTERS), hostileString), { freq: 8 }),
      repeat: fc.option(fc.constantFrom(...names), { freq: 10 }),
      filler: fc.oneof({ weight: 30, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1_001, 1_500) }),
      how: urlEncoding,
    })
    .map(({ pairs, unknown, repeat, filler, how }) => {
      const refuse: Refusal[] = [];
      const list = [...pairs];
      const seen = new Set<string>();
      for (const [n] of list) {
        if (seen.has(n)) refuse.push({ why: `${n} given twice` });
        seen.add(n);
      }
      if (repeat) {
        list.push([repeat, '1'], [repeat, '2']);
        refuse.push({ why: `${repeat} given twice` });
      }
      if (unknown) {
        list.push(unknown);
        refuse.push({ why: `the unknown filter ${JSON.stringify(unknown[0])}` });
      }
      const text = list.map(([n, v]) => `${encodeComponent(Buffer.from(n), 'percent')}=${encodeComponent(Buffer.from(v), how)}`);
      for (let i = 0; i < filler; i++) text.push(`f${i}=`);
      if (filler > 0) refuse.push({ why: `${text.length} query parameters` });
      return { query: text.join('&'), refuse };
    });
};

const authArb = fc.oneof(
  { weight: 30, arbitrary: fc.constant('valid-main') },
  { weight: 3, arbitrary: fc.nat().map((i) => `valid:${i}`) },
  { weight: 5, arbitrary: fc.nat().map((i) => `refused:${i}`) },
  { weight: 1, arbitrary: fc.nat().map((i) => `overlong:${i}`) },
  { weight: 1, arbitrary: fc.constantFrom('bearer-lower', 'bearer-double-space', 'bearer-twice', 'bearer-tab') },
);
type AuthKind = 'valid' | 'refused' | 'overlong' | 'odd';
function authorization(choice: string): { value: string | undefined; kind: AuthKind } {
  const pick = (list: string[], i: string) => list[Number(i) % list.length];
  const [kind, i] = choice.split(':');
  if (choice === 'valid-main') return { value: tokens.valid[0], kind: 'valid' };
  if (kind === 'valid') return { value: pick(tokens.valid, i), kind: 'valid' };
  if (kind === 'refused') return { value: pick(tokens.refused, i) || undefined, kind: 'refused' };
  if (kind === 'overlong') return { value: pick(tokens.overlong, i), kind: 'overlong' };
  const token = tokens.valid[0].slice('Bearer '.length);
  const odd: Record<string, string> = {
    'bearer-lower': `bearer ${token}`,
    'bearer-double-space': `Bearer  ${token}`,
    'bearer-twice': `Bearer ${token}, Bearer ${token}`,
    'bearer-tab': `Bearer ${token}\t`,
  };
  return { value: odd[choice], kind: 'odd' };
}

/** JSON text for a body: duplicate keys kept, markers turned into a lone surrogate escape or raw bytes that are not UTF-8. */
function bodyBytes(body: unknown, duplicate: boolean): Buffer {
  let text = JSON.stringify(body) ?? 'null';
  if (duplicate && body && typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length > 0) {
    text = `${text.slice(0, -1)},${JSON.stringify(Object.keys(body)[0])}:"duplicate"}`;
  }
  const parts = text.split(BAD_UTF8).map((p) => Buffer.from(p.split(SURROGATE).join('\\ud800'), 'utf8'));
  return Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from([0xff, 0xfe]), p])));
}

const routeArb: fc.Arbitrary<FuzzRequest> = fc
  .record({
    route: fc.constantFrom(...ROUTES),
    seed: fc.nat(),
    auth: authArb,
    pathCase: fc.constantFrom('as-is', 'as-is', 'as-is', 'as-is', 'upper', 'trailing-slash', 'double-slash', 'encoded'),
    shape: fc.constantFrom('planned', 'planned', 'planned', 'planned', 'planned', 'odd-json', 'no-body', 'duplicate-key', 'big'),
    contentType: fc.oneof({ weight: 12, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES, undefined) }),
    encoding: fc.oneof(
      { weight: 12, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...CONTENT_ENCODINGS), fc.boolean()) },
    ),
    odd: oddJsonText,
    method: fc.oneof(
      { weight: 20, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'QUERY', 'FOO') },
    ),
  })
  .chain((g) =>
    fc
      .record({
        id: g.route.id ?? fc.constant(''),
        body: g.route.body ?? fc.constant(undefined),
        query: g.route.filters ? queryArb(g.route) : fc.constant({ query: '', refuse: [] as Refusal[] }),
      })
      .map(({ id, body, query }) => {
        // A method the route does not have reaches no handler: what its query or body would have to get does not apply.
        const refuse: Refusal[] = g.method === null ? [...query.refuse] : [];
        const idInPath = g.pathCase === 'encoded' ? [...Buffer.from(id)].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('') : id;
        let path = g.route.path.replace('{id}', idInPath);
        if (g.pathCase === 'upper') path = path.toUpperCase().replace(/(EP|CNV|PB|DLV|PO)_/g, (m) => m.toLowerCase());
        if (g.pathCase === 'trailing-slash') path = `${path}/`;
        if (g.pathCase === 'double-slash') path = path.replace('/v1/', '/v1//');
        if (query.query) path = `${path}?${query.query}`;
        const method = g.method ?? g.route.method;

        let bytes: Buffer | undefined;
        if (g.shape === 'odd-json') bytes = Buffer.from(g.odd);
        else if (g.shape === 'big') bytes = Buffer.from(JSON.stringify({ name: 'x'.repeat(100 * 1024 - 20 + (g.seed % 200)) }));
        else if (g.shape !== 'no-body' && body) {
          bytes = bodyBytes(body.body, g.shape === 'duplicate-key');
          // With the first key given again, JSON.parse keeps the second ("duplicate"): what is read is that.
          const first = Object.keys(body.body)[0];
          const read = g.shape === 'duplicate-key' && first !== undefined ? { ...body.body, [first]: 'duplicate' } : body.body;
          const text = JSON.stringify(read) ?? '';
          // What the route does with a body it reads; a route without a schema ignores it.
          if (READS_BODY(g.route) && g.method === null) {
            if (read === body.body || !['url', 'destination_url'].includes(first)) refuse.push(...body.refuse);
            if (text.includes(SURROGATE)) refuse.push({ why: 'a lone surrogate in the JSON body' });
            if (text.includes(BAD_UTF8)) refuse.push({ why: 'bytes that are not UTF-8 in the JSON body' });
          }
        }
        const headers: Record<string, string> = {};
        const auth = authorization(g.auth);
        if (auth.value !== undefined) headers.authorization = auth.value;
        if (bytes) {
          if (g.contentType !== undefined) headers['content-type'] = g.contentType;
          if (g.encoding) {
            headers['content-encoding'] = g.encoding[0];
            bytes = encodeBody(bytes, g.encoding[0], g.encoding[1]);
          }
        }
        if (auth.kind === 'refused') refuse.push({ why: 'the credential is not a valid admin token' });
        if (auth.kind === 'overlong') refuse.push({ why: 'the token lives too long, or was issued in the future' });
        return {
          kind: `${g.route.method} ${g.route.path}`,
          method,
          path,
          headers,
          body: method === 'GET' || method === 'HEAD' ? undefined : bytes,
          refuse,
          authFailure: auth.kind === 'refused',
        } satisfies FuzzRequest & { authFailure: boolean };
      }),
  );

// ---------------------------------------------------------------------------------------------
// Bull Board and its login: no way in without a valid token or session; a failed login sets no cookie.

const BOARD_PATHS = [
  '/admin/queues',
  '/admin/queues/',
  '/admin/queues/api/queues',
  '/admin/queues/api/queues?activeQueue=postbacks&status=latest&page=1&jobsPerPage=10',
  '/admin/queues/api/queues?activeQueue=nope&status=%00&page=-1',
  '/admin/queues/api/queues/postbacks/retry/failed',
  '/admin/queues/api/queues/nope/clean/failed',
  '/admin/queues/api/queues/postbacks/pb_x',
  '/admin/queues/api/queues/postbacks/pb_x/logs',
  '/admin/queues/api/redis/stats',
  '/admin/queues/static/..%2f..%2fpackage.json',
  '/admin/queues/queue/postbacks',
  '/admin/queues/%2e%2e/%2e%2e/etc/passwd',
  '/admin/queues/api/queues/postbacks/pause',
  '/admin/QUEUES',
  '/admin/login',
  '/admin/login?error=1',
  '/admin/logout',
];
const boardArb: fc.Arbitrary<FuzzRequest> = fc
  .record({
    path: fc.constantFrom(...BOARD_PATHS),
    method: fc.constantFrom('GET', 'GET', 'POST', 'PUT', 'DELETE'),
    cred: fc.constantFrom('none', 'none', 'valid-bearer', 'session', 'foreign-session', 'refused-bearer', 'expired-cookie-shape'),
    accept: fc.constantFrom('text/html', 'application/json', '*/*', undefined),
    loginToken: fc.oneof(
      fc.constant('valid'),
      fc.nat().map((i) => `refused:${i}`),
      hostileString,
    ),
  })
  .map((g) => {
    const headers: Record<string, string> = {};
    if (g.accept) headers.accept = g.accept;
    if (g.cred === 'valid-bearer') headers.authorization = tokens.valid[0];
    if (g.cred === 'refused-bearer') headers.authorization = tokens.refused[6];
    if (g.cred === 'session') headers.cookie = sessionCookie;
    if (g.cred === 'foreign-session') headers.cookie = foreignCookie;
    if (g.cred === 'expired-cookie-shape') headers.cookie = 'trackway_admin=eyJhbGciOiJIUzI1NiJ9.e30.x';
    const refuse: Refusal[] = [];
    const signedIn = g.cred === 'valid-bearer' || g.cred === 'session';
    if (g.path.startsWith('/admin/queues') && !signedIn) refuse.push({ why: 'Bull Board without a valid token or session' });
    let body: Buffer | undefined;
    let failedLogin = false;
    if (g.path === '/admin/login' && g.method === 'POST') {
      const token =
        g.loginToken === 'valid'
          ? h.token
          : g.loginToken.startsWith('refused:')
            ? tokens.refused[Number(g.loginToken.slice(8)) % tokens.refused.length].replace(/^Bearer ?/, '')
            : g.loginToken;
      body = Buffer.from(`token=${encodeURIComponent(token)}`);
      headers['content-type'] = 'application/x-www-form-urlencoded';
      failedLogin = g.loginToken !== 'valid';
    }
    return {
      kind: `board ${g.method} ${g.path.split('?')[0]}`,
      method: g.method,
      path: g.path,
      headers,
      body,
      refuse,
      redirectIsRefusal: true,
      failedLogin,
    } satisfies FuzzRequest & { failedLogin: boolean };
  });

// Anything else: health, metrics, unknown paths, odd methods and headers.
const otherArb: fc.Arbitrary<FuzzRequest> = fc
  .record({
    path: fc.constantFrom(
      '/healthz',
      '/readyz',
      '/metrics',
      '/',
      '/v1',
      '/v1/',
      '/v2/advertisers',
      '/v1/nope',
      '/%',
      '/%zz',
      '/v1/%E9',
      '/V1/EVENT-TYPES',
      '/v1/advertisers;x',
      '/v1/advertisers%2F1',
      '/..%2fv1/advertisers',
      'http://x/v1/advertisers',
      'http://[::1/v1',
      '/v1/advertisers/1/../2',
    ),
    method: fc.constantFrom('GET', 'POST', 'HEAD', 'OPTIONS', 'PUT', 'TRACE', 'PROPFIND', 'get'),
    auth: authArb,
    header: fc.option(
      fc.tuple(
        fc.constantFrom('x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-http-method-override', 'accept', 'origin', 'cookie'),
        hostileString.map((s) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?')),
      ),
    ),
  })
  .map((g) => {
    const auth = authorization(g.auth);
    const headers: Record<string, string> = {};
    if (auth.value) headers.authorization = auth.value;
    if (g.header) headers[g.header[0]] = g.header[1];
    return { kind: 'other', method: g.method, path: g.path, headers } satisfies FuzzRequest;
  });

const rawArb = rawRequest(
  fc.constantFrom('/v1/advertisers', '/v1/offers', '/healthz', '/admin/queues'),
  () => 'limit=5',
  () => [`Authorization: ${tokens.valid[0]}`],
);

const requestArb = fc.oneof(
  { weight: 14, arbitrary: routeArb },
  { weight: 2, arbitrary: boardArb },
  { weight: 1, arbitrary: otherArb },
  { weight: 1, arbitrary: rawArb },
);

// ---------------------------------------------------------------------------------------------

const ISSUES_SECRETS =
  /^(POST \/v1\/advertisers|POST \/v1\/advertisers\/\{id\}\/rotate-key|POST \/v1\/webhook-endpoints|POST \/v1\/webhook-endpoints\/\{id\}\/rotate-secret)$/;
const SECRET_SHAPES = /pk_[A-Za-z0-9_-]{32}|whsec_[A-Za-z0-9+/=]{16,}/g;

/**
 * NOT OURS: Bull Board's own JSON API (signed in) answers its errors in its own shape,
 * `{"error": {"key": "ERRORS.…"}}`, which its UI reads; the envelope is Trackway's contract, not its.
 */
function bullBoardOwnError(req: FuzzRequest, a: FuzzAnswer): boolean {
  if (!req.kind.startsWith('board') || !req.path.startsWith('/admin/queues/api/')) return false;
  try {
    return typeof (JSON.parse(a.body.toString('utf8')) as { error?: { key?: unknown } }).error?.key === 'string';
  } catch {
    return false;
  }
}

/** What a request-specific property says about its answer, or null. Records issued secrets. */
function specificProblem(
  req: FuzzRequest & { authFailure?: boolean; failedLogin?: boolean },
  a: FuzzAnswer,
  issued: Set<string>,
  _tally: Tally,
): string | null {
  // (Bytes Node's parser refuses never reach the app, credential or not; nor does a query string
  // of more than 1,000 parameters, which the query parser refuses first.)
  const tooManyParameters =
    a.status === 400 &&
    (a.body.toString('utf8').includes('"code":"too_many_parameters"') || (req.method === 'HEAD' && (req.path.split('?')[1] ?? '').split('&').length > 1000));
  if (req.authFailure && ![401, 403, 429, 431].includes(a.status) && !isParserAnswer(req, a) && !tooManyParameters)
    return `a request with a bad credential answered ${a.status}, not 401/403`;
  if (req.failedLogin && /trackway_admin=[^;\s]+/.test(String(a.headers['set-cookie'] ?? ''))) return 'a failed login set a session cookie';
  const text = a.body.toString('utf8');
  if (ISSUES_SECRETS.test(req.kind) && req.method === req.kind.split(' ')[0] && a.status < 300) {
    for (const s of text.match(SECRET_SHAPES) ?? []) issued.add(s);
  } else {
    for (const s of text.match(SECRET_SHAPES) ?? [])
      if (issued.has(s)) return `an answer shows the secret ${s.slice(0, 12)}… again, outside the answer that issued it`;
  }
  // A custom endpoint header's value is sealed and shown masked: never in an answer.
  if (text.includes(SECRET_MARK)) return `an answer shows a custom endpoint header's value (${SECRET_MARK})`;
  return null;
}

describe('the admin API under fuzzing', () => {
  it(`answers ${TOTAL.toLocaleString('en')} generated requests (create/patch bodies, list filters, ids, recover, payouts, tokens, Bull Board, raw bytes) with no 5xx, the envelope on every 4xx, no way in without a valid token, and stays alive`, async () => {
    const issued = new Set<string>();
    const tally = newTally();
    await fuzzInBatches({
      name: 'fuzz-api',
      client,
      arb: requestArb,
      runs: RUNS,
      batch: BATCH,
      // Issuing answers first, so a leak elsewhere in the same batch is seen.
      order: (batch) => batch.map((_, i) => i).sort((x, y) => Number(ISSUES_SECRETS.test(batch[y].kind)) - Number(ISSUES_SECRETS.test(batch[x].kind))),
      check: (req, a) => specificProblem(req, a, issued, tally),
      nonEnvelope: bullBoardOwnError,
      tally,
    });
    expect(client.sent).toBe(TOTAL + RUNS); // and one /healthz per batch
    // The fuzz got past authentication and into the handlers: rows read, created, refused, missing, in conflict.
    for (const status of ['200', '201', '202', '204', '302', '400', '401', '403', '404', '409', '413', '415', '422'])
      expect(tally.statuses[status] ?? 0).toBeGreaterThan(0);
    expect((tally.statuses['200'] ?? 0) + (tally.statuses['201'] ?? 0)).toBeGreaterThan(TOTAL * 0.15);
    // Afterwards an ordinary request still works.
    const after = await client.send({ kind: 'after', method: 'GET', path: '/v1/advertisers?limit=1', headers: { authorization: tokens.valid[0] } });
    expect(after instanceof Error ? after.message : after[0].status).toBe(200);
  }, 240_000);
});
