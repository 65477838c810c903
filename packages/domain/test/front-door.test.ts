import { blockedBeforeLookup, choosePostbackKey, effectiveRateLimit, rateLimitWait, signatureCheck } from '../src/front-door';

describe('effectiveRateLimit', () => {
  test.each([
    [0, null, 0],
    [0, undefined, 0],
    [100, null, 100],
    [100, 5, 5],
    [100, 0, 0],
    [0, 7, 7],
  ])('global %p, advertiser %p → %p', (global, own, expected) => {
    expect(effectiveRateLimit(global, own)).toBe(expected);
  });
});

describe('rateLimitWait', () => {
  test.each([
    [{ limit: 0, used: 10_000, msLeft: 500 }, 0],
    [{ limit: 10, used: 0, msLeft: 500 }, 0],
    [{ limit: 10, used: 9, msLeft: 500 }, 0],
    [{ limit: 10, used: 10, msLeft: 500 }, 1],
    [{ limit: 10, used: 25, msLeft: 1 }, 1],
    [{ limit: 10, used: 10, msLeft: 0 }, 1],
    [{ limit: 10, used: 10, msLeft: 1500 }, 2],
  ])('%p → %p', (input, expected) => {
    expect(rateLimitWait(input)).toBe(expected);
  });
});

describe('signatureCheck', () => {
  test.each([
    [{ required: false, hasSecret: false, headersSent: false }, 'unsigned'],
    [{ required: false, hasSecret: true, headersSent: false }, 'unsigned'],
    [{ required: true, hasSecret: true, headersSent: false }, 'refuse'],
    [{ required: true, hasSecret: false, headersSent: false }, 'refuse'],
    [{ required: false, hasSecret: true, headersSent: true }, 'verify'],
    [{ required: true, hasSecret: true, headersSent: true }, 'verify'],
    [{ required: false, hasSecret: false, headersSent: true }, 'refuse'],
  ])('%p → %p', (input, verdict) => {
    expect(signatureCheck(input).verdict).toBe(verdict);
  });
});

describe('choosePostbackKey', () => {
  test.each([
    [undefined, undefined, { kind: 'missing' }],
    ['', '', { kind: 'missing' }],
    ['pk_a', undefined, { kind: 'key', key: 'pk_a' }],
    [undefined, 'pk_b', { kind: 'key', key: 'pk_b' }],
    ['pk_a', 'pk_a', { kind: 'key', key: 'pk_a' }],
    ['pk_a', '', { kind: 'key', key: 'pk_a' }],
    [['pk_a', 'pk_x'], undefined, { kind: 'key', key: 'pk_a' }],
    [undefined, 42, { kind: 'malformed' }],
    [undefined, 'k'.repeat(129), { kind: 'malformed' }],
  ])('header %p, param %p → %p', (header, param, expected) => {
    expect(choosePostbackKey(header as string | undefined, param)).toEqual(expected);
  });

  it('names a header and a different parameter as a problem', () => {
    expect(choosePostbackKey('pk_a', 'pk_b')).toMatchObject({ kind: 'malformed', problem: expect.stringContaining('X-Postback-Key') });
  });
});

describe('blockedBeforeLookup', () => {
  test.each([
    [{ blockedForSeconds: 0, credentialKnownGood: false }, 0],
    [{ blockedForSeconds: 0, credentialKnownGood: true }, 0],
    [{ blockedForSeconds: 42, credentialKnownGood: false }, 42],
    [{ blockedForSeconds: 42, credentialKnownGood: true }, 0],
  ])('%p → %p', (input, expected) => {
    expect(blockedBeforeLookup(input)).toBe(expected);
  });
});
