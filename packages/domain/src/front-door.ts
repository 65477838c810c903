/**
 * What the front door decides about a postback before its fields are read: pure functions,
 * the ingest handler loads what they need (the advertiser, the client's address, the
 * replica's view of the rate) and answers what they say.
 */

/** The limit that applies to an advertiser: its own, when set (0 = none), else the global. */
export function effectiveRateLimit(globalPerSecond: number, advertiserPerSecond: number | null | undefined): number {
  return advertiserPerSecond ?? globalPerSecond;
}

/**
 * Whether one more postback fits into the current one-second window: `used` is what this
 * replica knows the window holds (synced from Redis, plus its own not yet synced). Returns 0
 * when it fits, else the whole seconds to wait (Retry-After, at least 1).
 */
export function rateLimitWait(input: { limit: number; used: number; msLeft: number }): number {
  if (input.limit <= 0 || input.used < input.limit) return 0;
  return Math.max(1, Math.ceil(input.msLeft / 1000));
}

export type SignatureCheck = { verdict: 'unsigned' } | { verdict: 'verify' } | { verdict: 'refuse'; reason: string };

/**
 * What to do with a postback's Standard Webhooks headers: verify them whenever any is sent
 * (a wrong signature is refused even when signing is not required), refuse a postback without
 * them when the advertiser requires signing, or when it requires it but has no secret.
 */
export function signatureCheck(input: { required: boolean; hasSecret: boolean; headersSent: boolean }): SignatureCheck {
  if (!input.headersSent) {
    return input.required
      ? { verdict: 'refuse', reason: 'This advertiser requires signed postbacks: send webhook-id, webhook-timestamp and webhook-signature.' }
      : { verdict: 'unsigned' };
  }
  if (!input.hasSecret) return { verdict: 'refuse', reason: 'The postback is signed, but this advertiser has no signing secret; rotate one first.' };
  return { verdict: 'verify' };
}

export type KeyChoice = { kind: 'missing' } | { kind: 'malformed'; problem?: string } | { kind: 'key'; key: string };

/**
 * Which postback key a request carries: the X-Postback-Key header, the path (`/postback/{key}`)
 * or the `key` parameter. Two of them with different values is a problem named on `key`, never
 * a silent choice.
 */
export function choosePostbackKey(header: string | string[] | undefined, param: unknown, path?: string): KeyChoice {
  const fromHeader = Array.isArray(header) ? header[0] : header || undefined;
  const fromParam = param === '' ? undefined : param;
  const given = [
    ['the X-Postback-Key header', fromHeader],
    ['the path', path || undefined],
    ['a parameter', fromParam],
  ].filter(([, value]) => value !== undefined) as [string, unknown][];
  if (given.some(([, value]) => value !== given[0][1])) {
    return { kind: 'malformed', problem: `given as ${given.map(([where]) => where).join(' and as ')}, with different values` };
  }
  const key = given[0]?.[1];
  if (key === undefined || key === '') return { kind: 'missing' };
  if (typeof key !== 'string' || key.length > 128) return { kind: 'malformed' };
  return { kind: 'key', key };
}

/**
 * Whether a request from an address over AUTH_FAILURE_LIMIT is refused before its credential is
 * looked up: only when the credential is not one already known to be good (then it passes, so
 * an attacker sharing the address cannot lock its owner out). Returns the seconds to wait, or 0.
 */
export function blockedBeforeLookup(input: { blockedForSeconds: number; credentialKnownGood: boolean }): number {
  return input.blockedForSeconds > 0 && !input.credentialKnownGood ? input.blockedForSeconds : 0;
}
