import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { DEFAULT_TOLERANCE_SECONDS, SECRET_PREFIX, WebhookVerificationError, generateSecret, secretKey, sign, signedHeaders, verify } from '../src';

const nowSeconds = () => Math.floor(Date.now() / 1000);
const b64 = (secret: string) => secret.slice(SECRET_PREFIX.length);

/** A header bag as standardwebhooks expects it (its verify takes Record<string, string>). */
const theirSign = (secret: string, id: string, ts: number, body: string): Record<string, string> => ({
  'webhook-id': id,
  'webhook-timestamp': String(ts),
  'webhook-signature': new Webhook(secret).sign(id, new Date(ts * 1000), body),
});

const SECRETS = [generateSecret(24), generateSecret(32), generateSecret(64), generateSecret(24), generateSecret(64)];
// (An id with a "." or whitespace is refused by sign: see below.)
const IDS = ['msg_p5jXN8AQM9LWM0D4loKWxJek', 'evt_01HZX3K9Q2', 'a', 'id_with-dashes', '🆔-ünïcødé'];
// Ids sign accepts: non-empty, without "." or whitespace.
const signableId = (id: string) => id.replace(/[.\s]/g, '_');
const BODIES = [
  '{}',
  '{"type":"conversion.approved","data":{"amount":"49.90"}}',
  JSON.stringify({ note: 'héllo 👋 世界', rtl: 'مرحبا', combining: 'e\u0301', zwj: '👩‍👩‍👧', nul: '\u0000' }),
  JSON.stringify({ big: 'x'.repeat(100_000) }),
  '[1,2,3]',
  '"just a string"',
  `{"spaced" :  1 ,\n"keeps": "raw bytes"}`,
];

describe('interop with the unmodified standardwebhooks library', () => {
  describe.each(SECRETS.map((s) => [Buffer.from(b64(s), 'base64').length, s] as const))('secret of %i bytes', (_bytes, secret) => {
    it.each(IDS)('ours → theirs and theirs → ours for id %j over every body', (id) => {
      const ts = nowSeconds();
      for (const body of BODIES) {
        const ours = signedHeaders({ id, timestamp: ts, body }, secret);
        expect(new Webhook(secret).verify(body, ours)).toEqual(JSON.parse(body));
        const theirs = theirSign(secret, id, ts, body);
        expect(theirs['webhook-signature']).toBe(ours['webhook-signature']);
        expect(verify(body, theirs, secret)).toEqual(JSON.parse(body));
      }
    });
  });

  it('a Date timestamp is signed as its unix seconds (floor), as standardwebhooks does', () => {
    const secret = SECRETS[1];
    const date = new Date(Date.now() - 1234); // sub-second part must be dropped
    const headers = signedHeaders({ id: 'msg_date', timestamp: date, body: '{"a":1}' }, secret);
    expect(headers['webhook-timestamp']).toBe(String(Math.floor(date.getTime() / 1000)));
    expect(headers['webhook-signature']).toBe(new Webhook(secret).sign('msg_date', date, '{"a":1}'));
    expect(new Webhook(secret).verify('{"a":1}', headers)).toEqual({ a: 1 });
  });

  it('a secret without the whsec_ prefix signs like the prefixed one, on both sides', () => {
    const secret = SECRETS[2];
    const ts = nowSeconds();
    const prefixed = sign({ id: 'm', timestamp: ts, body: '{}' }, secret);
    expect(sign({ id: 'm', timestamp: ts, body: '{}' }, b64(secret))).toBe(prefixed);
    expect(new Webhook(b64(secret)).sign('m', new Date(ts * 1000), '{}')).toBe(prefixed);
  });

  it('property: any grapheme string body, any signable id, any of 24..64-byte secret agree both ways', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 24, max: 64 }),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
        fc.string({ unit: 'grapheme', maxLength: 200 }),
        fc.integer({ min: -DEFAULT_TOLERANCE_SECONDS + 5, max: DEFAULT_TOLERANCE_SECONDS - 5 }),
        (bytes, rawId, text, skew) => {
          const id = signableId(rawId);
          const secret = generateSecret(bytes);
          const ts = nowSeconds() + skew;
          const body = JSON.stringify({ text, id });
          const ours = signedHeaders({ id, timestamp: ts, body }, secret);
          expect(new Webhook(secret).verify(body, ours)).toEqual({ text, id });
          const theirs = theirSign(secret, id, ts, body);
          expect(theirs['webhook-signature']).toBe(ours['webhook-signature']);
          expect(verify(body, theirs, secret)).toEqual({ text, id });
          expect(verify(Buffer.from(body, 'utf8'), theirs, secret)).toEqual({ text, id });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: full-unicode (incl. astral) bodies sign identically on both sides', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 100 }),
        fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 20 }).map(signableId),
        (text, id) => {
          const secret = SECRETS[0];
          const ts = nowSeconds();
          const body = JSON.stringify([text]);
          expect(sign({ id, timestamp: ts, body }, secret)).toBe(new Webhook(secret).sign(id, new Date(ts * 1000), body));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: a signature over one body never verifies a different body (both libraries)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 60 }), (a, b) => {
        fc.pre(a !== b);
        const secret = SECRETS[3];
        const ts = nowSeconds();
        const headers = signedHeaders({ id: 'msg_prop', timestamp: ts, body: JSON.stringify(a) }, secret);
        expect(() => verify(JSON.stringify(b), headers, secret)).toThrow(WebhookVerificationError);
        expect(() => new Webhook(secret).verify(JSON.stringify(b), headers)).toThrow();
      }),
      { numRuns: 200 },
    );
  });
});

describe('known-answer vectors (computed with standardwebhooks 1.1.1, hardcoded)', () => {
  const vectors = [
    {
      // The example published in the Standard Webhooks specification.
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      timestamp: 1614265330,
      body: '{"test": 2432232314}',
      expected: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    },
    {
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      id: 'evt_01HZX3K9Q2',
      timestamp: 1700000000,
      body: JSON.stringify({ type: 'conversion.approved', data: { payout: '12.50 €', note: 'héllo 👋 世界' } }),
      expected: 'v1,o0wSEloDwMnmclSLkCgvXjjwSqA/ImqavmK6XH7k7nY=',
    },
  ];

  it.each(vectors)('$id @ $timestamp → $expected', ({ secret, id, timestamp, body, expected }) => {
    expect(sign({ id, timestamp, body }, secret)).toBe(expected);
    expect(sign({ id, timestamp: new Date(timestamp * 1000), body }, secret)).toBe(expected);
    expect(new Webhook(secret).sign(id, new Date(timestamp * 1000), body)).toBe(expected);
    // And it is plain HMAC-SHA256 over `${id}.${ts}.${body}` with the base64-decoded key.
    const raw = createHmac('sha256', Buffer.from(b64(secret), 'base64'))
      .update(`${id}.${timestamp}.${body}`)
      .digest('base64');
    expect(`v1,${raw}`).toBe(expected);
    const headers = { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': expected };
    expect(verify(body, headers, secret, { now: new Date(timestamp * 1000) })).toEqual(JSON.parse(body));
  });
});

describe('verify', () => {
  const oldSecret = SECRETS[0];
  const newSecret = SECRETS[2];
  const other = SECRETS[4];
  const T = 1_750_000_000;
  const now = new Date(T * 1000);
  const body = JSON.stringify({ type: 'payout.created', data: { amount: '10.00', who: 'Zoë' } });
  const parsed = JSON.parse(body);
  const headersFor = (secrets: string | string[], over: Partial<{ id: string; timestamp: number; body: string }> = {}) =>
    signedHeaders({ id: over.id ?? 'msg_1', timestamp: over.timestamp ?? T, body: over.body ?? body }, secrets);

  it('returns the parsed body for a valid request, and undefined for an empty body', () => {
    expect(verify(body, headersFor(newSecret), newSecret, { now })).toEqual(parsed);
    expect(verify('', headersFor(newSecret, { body: '' }), newSecret, { now })).toBeUndefined();
  });

  describe('rotation', () => {
    const both = headersFor([oldSecret, newSecret]);

    it('signs once per secret, space-separated, in order', () => {
      const parts = both['webhook-signature'].split(' ');
      expect(parts).toHaveLength(2);
      expect(parts[0]).toBe(headersFor(oldSecret)['webhook-signature']);
      expect(parts[1]).toBe(headersFor(newSecret)['webhook-signature']);
    });

    it('either secret alone verifies a header carrying old+new signatures (ours and theirs)', () => {
      expect(verify(body, both, oldSecret, { now })).toEqual(parsed);
      expect(verify(body, both, newSecret, { now })).toEqual(parsed);
      expect(() => verify(body, both, other, { now })).toThrow(WebhookVerificationError);
      const fresh = headersFor([oldSecret, newSecret], { timestamp: nowSeconds() });
      expect(new Webhook(oldSecret).verify(body, fresh)).toEqual(parsed);
      expect(new Webhook(newSecret).verify(body, fresh)).toEqual(parsed);
    });

    it('a list of secrets verifies a signature made with any one of them', () => {
      expect(verify(body, headersFor(oldSecret), [other, newSecret, oldSecret], { now })).toEqual(parsed);
      expect(verify(body, headersFor(newSecret), [newSecret, oldSecret], { now })).toEqual(parsed);
      expect(() => verify(body, headersFor(other), [newSecret, oldSecret], { now })).toThrow(/no matching signature/);
      expect(() => verify(body, headersFor(other), [], { now })).toThrow(/no matching signature/);
    });
  });

  it('rejects a wrong secret', () => {
    expect(() => verify(body, headersFor(oldSecret), newSecret, { now })).toThrow(new WebhookVerificationError('no matching signature'));
  });

  it('rejects a tampered body (one byte, whitespace, or a Buffer of it)', () => {
    const h = headersFor(newSecret);
    expect(() => verify(body.replace('10.00', '10.01'), h, newSecret, { now })).toThrow(/no matching signature/);
    expect(() => verify(`${body} `, h, newSecret, { now })).toThrow(/no matching signature/);
    expect(() => verify(Buffer.from(body.replace('Zoë', 'Zoe')), h, newSecret, { now })).toThrow(/no matching signature/);
  });

  it('rejects a tampered id', () => {
    const h = headersFor(newSecret);
    expect(() => verify(body, { ...h, 'webhook-id': 'msg_2' }, newSecret, { now })).toThrow(/no matching signature/);
  });

  it('rejects a tampered timestamp even within the tolerance', () => {
    const h = headersFor(newSecret);
    expect(() => verify(body, { ...h, 'webhook-timestamp': String(T + 1) }, newSecret, { now })).toThrow(/no matching signature/);
    expect(() => verify(body, { ...h, 'webhook-timestamp': String(T - 60) }, newSecret, { now })).toThrow(/no matching signature/);
  });

  it.each(['webhook-id', 'webhook-timestamp', 'webhook-signature'])('rejects a missing or empty %s', (name) => {
    const h: Record<string, string | undefined> = { ...headersFor(newSecret) };
    expect(() => verify(body, { ...h, [name]: undefined }, newSecret, { now })).toThrow(/missing webhook-id/);
    expect(() => verify(body, { ...h, [name]: '' }, newSecret, { now })).toThrow(/missing webhook-id/);
    delete h[name];
    expect(() => verify(body, h, newSecret, { now })).toThrow(WebhookVerificationError);
  });

  it.each(['abc', '17500000x0', '1.75e9', '-1750000000', ' 1750000000', '1750000000.0', '0x6850'])('rejects the non-numeric timestamp %j', (ts) => {
    const h = headersFor(newSecret);
    expect(() => verify(body, { ...h, 'webhook-timestamp': ts }, newSecret, { now })).toThrow(/invalid webhook-timestamp/);
  });

  describe('timestamp tolerance (default ±300 s)', () => {
    it.each([
      ['exactly 300 s old', -300, true],
      ['exactly 300 s ahead', 300, true],
      ['301 s old', -301, false],
      ['301 s ahead', 301, false],
      ['1 h old', -3600, false],
      ['now', 0, true],
    ] as const)('%s', (_name, offset, ok) => {
      const h = headersFor(newSecret, { timestamp: T + offset });
      if (ok) expect(verify(body, h, newSecret, { now })).toEqual(parsed);
      else expect(() => verify(body, h, newSecret, { now })).toThrow(offset < 0 ? /too old/ : /too new/);
    });

    it('checks the window before the signature (an expired request is refused even if validly signed)', () => {
      expect(() => verify(body, headersFor(newSecret, { timestamp: T - 301 }), newSecret, { now })).toThrow(new WebhookVerificationError('timestamp too old'));
    });

    it('uses the real clock when `now` is not given', () => {
      expect(verify(body, headersFor(newSecret, { timestamp: nowSeconds() }), newSecret)).toEqual(parsed);
      expect(() => verify(body, headersFor(newSecret, { timestamp: nowSeconds() - 400 }), newSecret)).toThrow(/too old/);
    });

    it('honours a custom toleranceSeconds', () => {
      const opts = { now, toleranceSeconds: 10 };
      expect(verify(body, headersFor(newSecret, { timestamp: T - 10 }), newSecret, opts)).toEqual(parsed);
      expect(verify(body, headersFor(newSecret, { timestamp: T + 10 }), newSecret, opts)).toEqual(parsed);
      expect(() => verify(body, headersFor(newSecret, { timestamp: T - 11 }), newSecret, opts)).toThrow(/too old/);
      expect(() => verify(body, headersFor(newSecret, { timestamp: T + 11 }), newSecret, opts)).toThrow(/too new/);
      const wide = { now, toleranceSeconds: 3600 };
      expect(verify(body, headersFor(newSecret, { timestamp: T - 3600 }), newSecret, wide)).toEqual(parsed);
      expect(() => verify(body, headersFor(newSecret, { timestamp: T - 3601 }), newSecret, wide)).toThrow(/too old/);
      const zero = { now, toleranceSeconds: 0 };
      expect(verify(body, headersFor(newSecret), newSecret, zero)).toEqual(parsed);
      expect(() => verify(body, headersFor(newSecret, { timestamp: T - 1 }), newSecret, zero)).toThrow(/too old/);
    });
  });

  it('ignores v2 and garbage signature entries, and still finds the v1 one', () => {
    const valid = headersFor(newSecret)['webhook-signature'];
    const sig = valid.slice(3);
    const noise = [`v2,${sig}`, 'garbage', 'v1,', 'v1', ',,,', `V1,${sig}`, `v1a,${sig}`, 'v1,!!!notbase64!!!', `v1,${Buffer.alloc(32).toString('base64')}`];
    const h = headersFor(newSecret);
    expect(verify(body, { ...h, 'webhook-signature': `${noise.join(' ')} ${valid}` }, newSecret, { now })).toEqual(parsed);
    expect(verify(body, { ...h, 'webhook-signature': `${valid} ${noise.join(' ')}` }, newSecret, { now })).toEqual(parsed);
    // The same signature under another version tag is not accepted on its own.
    expect(() => verify(body, { ...h, 'webhook-signature': noise.join(' ') }, newSecret, { now })).toThrow(/no matching signature/);
    expect(() => verify(body, { ...h, 'webhook-signature': `v2,${sig}` }, newSecret, { now })).toThrow(/no matching signature/);
  });

  it('header names are case-insensitive, and array values use the first entry (node IncomingHttpHeaders)', () => {
    const h = headersFor(newSecret);
    const upper = { 'Webhook-Id': h['webhook-id'], 'WEBHOOK-TIMESTAMP': h['webhook-timestamp'], 'Webhook-Signature': h['webhook-signature'] };
    expect(verify(body, upper, newSecret, { now })).toEqual(parsed);
    const arrays = { 'webhook-id': [h['webhook-id'], 'x'], 'webhook-timestamp': [h['webhook-timestamp']], 'webhook-signature': [h['webhook-signature']] };
    expect(verify(body, arrays, newSecret, { now })).toEqual(parsed);
  });

  it('accepts a Buffer body (the raw bytes as received), including non-ASCII', () => {
    const h = headersFor(newSecret);
    expect(verify(Buffer.from(body, 'utf8'), h, newSecret, { now })).toEqual(parsed);
  });

  it('throws a JSON error (not a verification error) for a validly signed non-JSON body', () => {
    const h = headersFor(newSecret, { body: 'not json' });
    expect(() => verify('not json', h, newSecret, { now })).toThrow(SyntaxError);
  });

  describe('comparison of different-length signatures (timingSafeEqual needs equal lengths)', () => {
    it('a short or long v1 entry next to a valid one does not throw and still verifies', () => {
      const h = headersFor(newSecret);
      const valid = h['webhook-signature'];
      for (const odd of ['v1,abc', 'v1,YQ==', `v1,${Buffer.alloc(64, 7).toString('base64')}`, `v1,${Buffer.alloc(31, 7).toString('base64')}`]) {
        expect(verify(body, { ...h, 'webhook-signature': `${odd} ${valid}` }, newSecret, { now })).toEqual(parsed);
        expect(() => verify(body, { ...h, 'webhook-signature': odd }, newSecret, { now })).toThrow(new WebhookVerificationError('no matching signature'));
      }
    });
  });
});

describe('generateSecret', () => {
  it('is whsec_ + base64 of 32 random bytes by default', () => {
    const s = generateSecret();
    expect(s.startsWith('whsec_')).toBe(true);
    expect(s).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(Buffer.from(b64(s), 'base64')).toHaveLength(32);
    expect(secretKey(s)).toHaveLength(32);
  });

  it.each([24, 25, 32, 48, 63, 64])('makes a %i-byte key that standardwebhooks accepts', (bytes) => {
    const s = generateSecret(bytes);
    expect(s.startsWith(SECRET_PREFIX)).toBe(true);
    expect(secretKey(s)).toHaveLength(bytes);
    expect(() => new Webhook(s)).not.toThrow();
  });

  it.each([0, 1, 16, 23, 65, 128, -1, 32.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses %p bytes with a RangeError', (bytes) => {
    expect(() => generateSecret(bytes)).toThrow(RangeError);
  });

  it('never repeats over 1000 secrets', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => generateSecret()));
    expect(seen.size).toBe(1000);
    const small = new Set(Array.from({ length: 1000 }, () => generateSecret(24)));
    expect(small.size).toBe(1000);
  });
});

describe('secretKey', () => {
  it('decodes with and without the whsec_ prefix to the same bytes', () => {
    const s = generateSecret(40);
    const expected = Buffer.from(b64(s), 'base64');
    expect(secretKey(s).equals(expected)).toBe(true);
    expect(secretKey(b64(s)).equals(expected)).toBe(true);
    expect(secretKey('whsec_AAEC').equals(Buffer.from([0, 1, 2]))).toBe(true);
    expect(secretKey('AAEC').equals(Buffer.from([0, 1, 2]))).toBe(true);
  });

  it.each(['whsec_abc$def', 'whsec_ab cd', 'whsec_abc-_def', 'whsec_abc===', 'whsec_=abc', 'whsec_héllo', 'WHSEC_abcd', 'abc\n'])(
    'rejects the non-base64 secret %j',
    (s) => {
      expect(() => secretKey(s)).toThrow(WebhookVerificationError);
      expect(() => secretKey(s)).toThrow(/not base64/);
    },
  );

  it.each(['', 'whsec_'])('rejects the empty secret %j', (s) => {
    expect(() => secretKey(s)).toThrow(WebhookVerificationError);
  });

  it('rejects base64 that decodes to no bytes', () => {
    expect(() => secretKey('whsec_A')).toThrow(/the secret is empty/);
  });

  it('a malformed secret makes sign and verify throw instead of signing with an empty key', () => {
    expect(() => sign({ id: 'm', timestamp: 1, body: '{}' }, 'whsec_')).toThrow(WebhookVerificationError);
    const h = signedHeaders({ id: 'm', timestamp: 1, body: '{}' }, SECRETS[0]);
    expect(() => verify('{}', h, 'whsec_not*base64', { now: new Date(1000) })).toThrow(/not base64/);
  });
});

describe('sign refuses what a receiver could not verify', () => {
  const secret = generateSecret();
  it.each([
    [{ id: 'msg_1', timestamp: 1.5, body: '{}' }, 'timestamp'],
    [{ id: 'msg_1', timestamp: Number.NaN, body: '{}' }, 'timestamp'],
    [{ id: 'msg_1', timestamp: -1, body: '{}' }, 'timestamp'],
    [{ id: 'msg_1', timestamp: new Date(Number.NaN), body: '{}' }, 'timestamp'],
    [{ id: 'msg.1', timestamp: 1_700_000_000, body: '{}' }, 'id'],
    [{ id: 'msg 1', timestamp: 1_700_000_000, body: '{}' }, 'id'],
    [{ id: 'msg\t1', timestamp: 1_700_000_000, body: '{}' }, 'id'],
    [{ id: 'msg_1\n', timestamp: 1_700_000_000, body: '{}' }, 'id'],
    [{ id: '', timestamp: 1_700_000_000, body: '{}' }, 'id'],
  ])('%p (a bad %s)', (input, what) => {
    expect(() => sign(input, secret)).toThrow(RangeError);
    expect(() => sign(input, secret)).toThrow(what === 'id' ? /webhook-id/ : /webhook-timestamp/);
  });

  it('signs ordinary ids and timestamps as before', () => {
    const headers = signedHeaders({ id: 'evt_01ARZ3NDEKTSV4RRFFQ69G5FAV', timestamp: new Date(1_700_000_000_500), body: '{}' }, secret);
    expect(headers['webhook-timestamp']).toBe('1700000000');
    expect(() => verify('{}', headers, secret, { now: new Date(1_700_000_000_000) })).not.toThrow();
  });
});
