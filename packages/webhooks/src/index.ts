import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Standard Webhooks signing and verification (https://www.standardwebhooks.com), usable by
 * Trackway and by subscribers on their side. A secret is `whsec_` + base64 of the key bytes;
 * a signature is `v1,` + base64 HMAC-SHA256 of `${id}.${timestamp}.${body}`; several
 * signatures (during a secret rotation) are separated by spaces.
 */
export const SECRET_PREFIX = 'whsec_';
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

/** Headers Trackway sets on every request: an endpoint's custom headers may not replace them. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
  'host',
  'connection',
  'transfer-encoding',
]);

export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError';
}

/** A new signing secret: `whsec_` + base64 of `bytes` random bytes (24 to 64). */
export function generateSecret(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < 24 || bytes > 64) throw new RangeError('a secret has 24 to 64 bytes');
  return SECRET_PREFIX + randomBytes(bytes).toString('base64');
}

export function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new WebhookVerificationError('the secret is not base64');
  const key = Buffer.from(encoded, 'base64');
  if (key.length === 0) throw new WebhookVerificationError('the secret is empty');
  return key;
}

export interface SignInput {
  id: string;
  /** Unix seconds, or a Date. */
  timestamp: number | Date;
  body: string;
}

const unix = (t: number | Date) => (t instanceof Date ? Math.floor(t.getTime() / 1000) : t);

/**
 * One `v1,<base64>` signature per secret, space-separated (the webhook-signature header).
 * Refuses (RangeError) what a receiver could not verify: a timestamp that is not a whole,
 * non-negative number of seconds, or an id that is empty or holds a `.` or whitespace (the
 * signed content is `${id}.${timestamp}.${body}`, and headers cannot carry whitespace safely).
 */
export function sign(input: SignInput, secrets: string | string[]): string {
  const list = Array.isArray(secrets) ? secrets : [secrets];
  const timestamp = unix(input.timestamp);
  if (!Number.isSafeInteger(timestamp) || timestamp < 0)
    throw new RangeError(`webhook-timestamp must be whole seconds since 1970, not ${String(input.timestamp)}`);
  if (input.id === '' || /[.\s]/.test(input.id)) throw new RangeError(`webhook-id must be non-empty, without "." or whitespace: ${JSON.stringify(input.id)}`);
  const message = `${input.id}.${timestamp}.${input.body}`;
  return list.map((secret) => `v1,${createHmac('sha256', secretKey(secret)).update(message).digest('base64')}`).join(' ');
}

/** The three Standard Webhooks headers for a request body. */
export function signedHeaders(input: SignInput, secrets: string | string[]): Record<string, string> {
  return {
    'webhook-id': input.id,
    'webhook-timestamp': String(unix(input.timestamp)),
    'webhook-signature': sign(input, secrets),
  };
}

export interface VerifyOptions {
  toleranceSeconds?: number;
  now?: Date;
}

/**
 * Checks a request's Standard Webhooks headers against one or more secrets (e.g. old and new
 * during a rotation), in constant time per comparison, rejecting timestamps outside the
 * tolerance (±5 min). `payload` is what was signed, as text or the raw bytes. Returns the
 * message id and timestamp; throws WebhookVerificationError saying why otherwise.
 */
export function verifySignature(
  payload: string | Buffer,
  headers: Record<string, string | string[] | undefined>,
  secrets: string | string[],
  options: VerifyOptions = {},
): { id: string; timestamp: number } {
  const header = (name: string) => {
    const value = Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
    return Array.isArray(value) ? value[0] : value;
  };
  const id = header('webhook-id');
  const timestamp = header('webhook-timestamp');
  const signatures = header('webhook-signature');
  if (!id || !timestamp || !signatures) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature');
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError('invalid webhook-timestamp');
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const ts = Number(timestamp);
  if (now - ts > tolerance) throw new WebhookVerificationError('timestamp too old');
  if (ts - now > tolerance) throw new WebhookVerificationError('timestamp too new');

  // Only canonical base64 of a 32-byte HMAC counts, as in the reference implementation.
  const passed = signatures
    .split(' ')
    .map((s) => s.split(','))
    .filter(([version, sig]) => version === 'v1' && /^[A-Za-z0-9+/]{43}=$/.test(sig ?? '') && Buffer.from(sig, 'base64').toString('base64') === sig)
    .map(([, sig]) => Buffer.from(sig, 'base64'));
  for (const secret of Array.isArray(secrets) ? secrets : [secrets]) {
    const expected = createHmac('sha256', secretKey(secret)).update(`${id}.${ts}.`).update(payload).digest();
    if (passed.some((candidate) => candidate.length === expected.length && timingSafeEqual(candidate, expected))) return { id, timestamp: ts };
  }
  throw new WebhookVerificationError('no matching signature');
}

/** Verifies a webhook (see verifySignature) and returns its parsed JSON body. */
export function verify(
  body: string | Buffer,
  headers: Record<string, string | string[] | undefined>,
  secrets: string | string[],
  options: VerifyOptions = {},
): unknown {
  verifySignature(body, headers, secrets, options);
  const text = typeof body === 'string' ? body : body.toString('utf8');
  return text === '' ? undefined : JSON.parse(text);
}
export * from './destination-policy';
