import { type IntakeAdvertiser, type PostbackRequestFacts, decidePostback, redactSecretShapes, redactSecrets, resolveFormat, secretsOf } from '../src';

const KEY = 'pk_3xJ9yq0Z7C2hV5mN8pR1tW4bK6dF0gHs';
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const CLICK = 'AQAAAAEAAAAHZ0k2AJx1n3Qd8fV0m2Yc5Jk3a1Rw';
const receivedAt = new Date('2026-12-06T12:00:00.000Z');
const advertiser = (overrides: Partial<IntakeAdvertiser> = {}): IntakeAdvertiser => ({
  id: 4,
  status: 'active',
  requireSignedPostbacks: false,
  hasSigningSecret: false,
  format: resolveFormat(null),
  secrets: secretsOf(KEY, []),
  ...overrides,
});
const facts = (overrides: Partial<PostbackRequestFacts> = {}): PostbackRequestFacts => ({
  method: 'GET',
  query: { key: KEY, click_id: CLICK, order_id: 'ORD-1', amount: '49.90' },
  advertiser: advertiser(),
  address: '203.0.113.7',
  addressAllowed: true,
  signature: { sent: false },
  receivedAt,
  ...overrides,
});
const signed = advertiser({ hasSigningSecret: true, secrets: secretsOf(KEY, [SECRET]) });

describe('decidePostback: refusals', () => {
  type Case = [string, Partial<PostbackRequestFacts>, { status: number; code: string; reason: string; authFailure: boolean; fields?: object }];
  const cases: Case[] = [
    ['a key that names no advertiser', { advertiser: null }, { status: 401, code: 'unauthorized', reason: 'unknown_key', authFailure: true }],
    [
      'an inactive advertiser',
      { advertiser: advertiser({ status: 'inactive' }) },
      { status: 401, code: 'unauthorized', reason: 'unknown_key', authFailure: true },
    ],
    ['an address outside allowed_ips', { addressAllowed: false }, { status: 403, code: 'ip_not_allowed', reason: 'ip_not_allowed', authFailure: false }],
    [
      'no signature where one is required',
      { advertiser: advertiser({ requireSignedPostbacks: true, hasSigningSecret: true }) },
      { status: 401, code: 'invalid_signature', reason: 'signature', authFailure: false },
    ],
    [
      'a signature without a secret to check it',
      { signature: { sent: true } },
      { status: 401, code: 'invalid_signature', reason: 'signature', authFailure: true },
    ],
    [
      'a webhook-id over 256 characters',
      { advertiser: signed, signature: { sent: true, idTooLong: true } },
      { status: 401, code: 'invalid_signature', reason: 'signature', authFailure: false },
    ],
    [
      'a wrong signature',
      { advertiser: signed, signature: { sent: true, verify: () => ({ error: 'no matching signature' }) } },
      { status: 401, code: 'invalid_signature', reason: 'signature', authFailure: true },
    ],
    [
      'a signed POST with fields in its query string',
      {
        advertiser: signed,
        method: 'POST',
        query: { key: KEY, order_id: 'X' },
        body: { click_id: CLICK },
        signature: { sent: true, verify: () => ({ id: 'msg_1' }) },
      },
      { status: 400, code: 'invalid_request', reason: 'validation', authFailure: false },
    ],
    [
      'a field that is not valid',
      { query: { key: KEY, click_id: CLICK, order_id: 'ORD-1', amount: '-1' } },
      { status: 400, code: 'invalid_request', reason: 'validation', authFailure: false, fields: { amount: 'must not be negative' } },
    ],
    [
      'the key sent as the order reference',
      { query: { key: KEY, click_id: CLICK, order_id: KEY } },
      { status: 400, code: 'invalid_request', reason: 'validation', authFailure: false, fields: { order_id: expect.stringMatching(/never stores/) } },
    ],
    [
      'the signing secret (without its prefix) as the event',
      { advertiser: signed, query: { key: KEY, click_id: CLICK, order_id: 'O', event: SECRET.slice(6) } },
      { status: 400, code: 'invalid_request', reason: 'validation', authFailure: false, fields: { event: expect.stringMatching(/never stores/) } },
    ],
    [
      'the key used as a parameter name',
      { query: { key: KEY, click_id: CLICK, order_id: 'O', [KEY]: '' } },
      { status: 400, code: 'invalid_request', reason: 'validation', authFailure: false, fields: { '[redacted]': expect.stringMatching(/named with/) } },
    ],
    [
      'white space around the order reference',
      { query: { key: KEY, click_id: CLICK, order_id: '\u00a0ORD-1' } },
      { status: 400, code: 'invalid_request', reason: 'validation', authFailure: false, fields: { order_id: 'must not begin or end with white space' } },
    ],
    [
      'a currency code that is not ASCII',
      { query: { key: KEY, click_id: CLICK, order_id: 'O', currency: 'uſd' } },
      { status: 400, code: 'invalid_request', reason: 'validation', authFailure: false, fields: { currency: 'must be an ISO 4217 currency code such as USD' } },
    ],
    [
      'a JSON amount with more than 4 decimals',
      { method: 'POST', query: { key: KEY }, body: { click_id: CLICK, order_id: 'O', amount: 1 }, numberTexts: { amount: '0.99999999999999999' } },
      {
        status: 400,
        code: 'invalid_request',
        reason: 'validation',
        authFailure: false,
        fields: { amount: 'must have at most 14 digits before the point and 4 after' },
      },
    ],
  ];
  it.each(cases)('%s', (_name, overrides, expected) => {
    const decision = decidePostback(facts(overrides));
    expect(decision.accepted).toBe(false);
    if (decision.accepted) return;
    const { refusal } = decision;
    expect({ status: refusal.status, code: refusal.code, reason: refusal.metric.reason, authFailure: refusal.authFailure }).toEqual({
      status: expected.status,
      code: expected.code,
      reason: expected.reason,
      authFailure: expected.authFailure,
    });
    if (expected.fields) expect(refusal.fields).toEqual(expected.fields);
  });
});

describe('decidePostback: accepted', () => {
  it('queues the fields read, in their one form, with what was not read kept and the key redacted from it', () => {
    const decision = decidePostback(
      facts({
        query: { key: KEY, cid: CLICK, order_id: 'ORD-9', event: 'Sale', cur: 'eur', api_key: KEY, note: 'x' },
      }),
    );
    expect(decision).toEqual({
      accepted: true,
      postback: {
        advertiserId: 4,
        receivedAt: receivedAt.toISOString(),
        clickId: CLICK,
        orderId: 'ORD-9',
        currency: 'EUR',
        status: 'approved',
        event: 'sale',
        eventAsSent: 'Sale',
        ignoredParams: { api_key: '[redacted]', note: 'x' },
      },
      ignoredNames: ['api_key', 'note'],
    });
  });

  it('leaves out an amount that was not sent: absence travels as absence', () => {
    const decision = decidePostback(facts({ query: { key: KEY, click_id: CLICK, order_id: 'O' } }));
    expect(decision.accepted && 'amount' in decision.postback).toBe(false);
  });

  it('reads a JSON number from its text: an order number keeps its digits, an amount its decimals', () => {
    const decision = decidePostback(
      facts({
        method: 'POST',
        query: { key: KEY },
        body: { click_id: CLICK, order_id: 123456789012345680000, amount: 1234567890123 },
        numberTexts: { order_id: '123456789012345678901', amount: '1234567890123.0001' },
      }),
    );
    expect(decision.accepted && decision.postback).toMatchObject({ orderId: '123456789012345678901', amount: '1234567890123.0001' });
  });

  it("carries a verified signature's webhook-id", () => {
    const decision = decidePostback(facts({ advertiser: signed, signature: { sent: true, verify: () => ({ id: 'msg_2K' }) } }));
    expect(decision.accepted && decision.signedId).toBe('msg_2K');
  });

  it.each([
    ['an inactive advertiser', { advertiser: advertiser({ status: 'inactive', hasSigningSecret: true }) }],
    ['an address outside allowed_ips', { advertiser: signed, addressAllowed: false }],
    ['a webhook-id over 256 characters', { advertiser: signed, signature: { sent: true, idTooLong: true } }],
    [
      'a signed POST with fields in its query string',
      { advertiser: signed, method: 'POST' as const, query: { key: KEY, order_id: 'X' }, body: { click_id: CLICK } },
    ],
  ])('verifies no signature (no HMAC) for a request refused before that: %s', (_what, given) => {
    const verify = jest.fn(() => ({ id: 'msg_1' }));
    const decision = decidePostback(facts({ ...given, signature: { sent: true, ...('signature' in given ? given.signature : {}), verify } }));
    expect(decision.accepted).toBe(false);
    expect(verify).not.toHaveBeenCalled();
  });
});

describe('redactSecrets', () => {
  it.each([
    ['a string holding a secret', `Bearer ${KEY}`, '[redacted]'],
    ['one without', 'plain', 'plain'],
    ['nested values', { a: [KEY, 1, { b: `x${KEY}` }], c: null }, { a: ['[redacted]', 1, { b: '[redacted]' }], c: null }],
    ['a nested key named with a secret', { meta: { [KEY]: 1, kept: 2 } }, { meta: { '[redacted]': '[redacted]', kept: 2 } }],
  ])('%s', (_name, value, expected) => {
    expect(redactSecrets(value, [KEY])).toEqual(expected);
  });
});

describe("redactSecretShapes (postbacks queued before ingest redacted the advertiser's own secrets)", () => {
  const shaped = 'pk_3xJ9yq0Z7C2hV5mN8pR1tW4bK6dF0gHs';
  it.each([
    ['a key-shaped value', { api_key: shaped }, { api_key: '[redacted]' }],
    ['a signing-secret-shaped one inside text', { auth: 'Bearer whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }, { auth: '[redacted]' }],
    ['a key-shaped parameter name, with its value', { meta: { [shaped]: 1, kept: 'pk_short' } }, { meta: { '[redacted]': '[redacted]', kept: 'pk_short' } }],
    ['nothing shaped so', { sum: '30.00', list: ['x', null] }, { sum: '30.00', list: ['x', null] }],
  ])('%s', (_name, value, expected) => {
    expect(redactSecretShapes(value)).toEqual(expected);
  });
});
