import { normalizeEvent } from './attribution';
import { signatureCheck } from './front-door';
import { MONEY_PATTERN, isCurrency } from './money';
import { unreplacedPlaceholder } from './placeholders';
import {
  CLICK_ID_PATTERN,
  EVENT_PATTERN,
  ORDER_ID_MAX,
  POSTBACK_FIELDS,
  type PostbackField,
  type ResolvedFormat,
  clickOrderKey,
  statusFor,
  statusWords,
  withDecimalPoint,
} from './postback-formats';
import type { ConversionStatus, EntityStatus } from './status';
import { textProblem } from './text';

/*
 * Whether ingest accepts a postback, and what it queues: decided without I/O. Ingest parses the
 * request, looks the key's advertiser up and checks a signature, then calls decidePostback and
 * answers what it says (a refusal, or the postback to enqueue).
 */

export type FieldErrors = Record<string, string>;
type Raw = Record<string, unknown>;
type Values = Partial<Record<PostbackField, unknown>>;
type SentAs = Partial<Record<PostbackField, string>>;

const KEY = 'key';

/**
 * One field from query and body, under any of its names. A parameter given twice (in the
 * query, or under two names with different values) is an error, not a guess. Returns the
 * value and the name it came as.
 */
function collectField(sources: Raw[], field: string, names: readonly string[], fields: FieldErrors): { value?: unknown; as?: string } {
  let value: unknown;
  let as: string | undefined;
  for (const source of sources) {
    for (const name of names) {
      if (!Object.hasOwn(source, name)) continue;
      const given = source[name];
      if (Array.isArray(given)) {
        fields[field] = `given more than once (as ${name})`;
        continue;
      }
      if (as !== undefined && !sameValue(value, given)) {
        fields[field] = `given more than once with different values (as ${as} and ${name})`;
        continue;
      }
      as ??= name;
      value = given;
    }
  }
  return { value, as };
}

/** The `key` parameter, from query or body. */
export function collectKey(sources: Raw[], fields: FieldErrors): unknown {
  return collectField(sources, KEY, [KEY], fields).value;
}

/**
 * Trackway's fields from query and body, read with the advertiser's format, and every other
 * parameter as sent (`ignored`: kept on the postback and named in the 202, never dropped
 * silently). The key is not a field and not ignored.
 */
function collectParams(sources: Raw[], format: ResolvedFormat): { values: Values; fields: FieldErrors; sentAs: SentAs; ignored: Raw } {
  const values: Values = {};
  const sentAs: SentAs = {};
  const fields: FieldErrors = {};
  for (const field of POSTBACK_FIELDS) {
    const { value, as } = collectField(sources, field, format.names[field], fields);
    if (as !== undefined) {
      values[field] = value;
      sentAs[field] = as;
    }
  }
  // Kept as sent, so stored as sent: text Postgres can store (no NUL, no lone surrogate), no
  // `__proto__` (an object would lose it), nesting bounded. A Map, then own properties only.
  const unread = new Map<string, unknown[]>();
  for (const source of sources) {
    for (const [name, value] of Object.entries(source)) {
      if (format.readNames.has(name)) continue;
      const problem = name === '__proto__' ? 'is a name Trackway cannot keep; rename the parameter' : (textProblem(name) ?? unreadValueProblem(value, 1));
      if (problem) {
        // As an own property: `fields.__proto__ = …` would set the prototype, not a field.
        const shown = JSON.stringify(name).slice(1, -1);
        if (!Object.hasOwn(fields, shown)) Object.defineProperty(fields, shown, { value: problem, enumerable: true, writable: true, configurable: true });
        continue;
      }
      unread.set(name, [...(unread.get(name) ?? []), value]);
    }
  }
  // The same name in the query and the body: both values kept, [query's, body's].
  const ignored = Object.fromEntries([...unread].map(([name, list]) => [name, list.length === 1 ? list[0] : list]));
  return { values, fields, sentAs, ignored };
}

/** How deep a value Trackway does not read may nest (a body nests no deeper than this). */
export const MAX_NESTING = 32;

/** Why a parameter Trackway does not read cannot be kept as sent, or null. */
function unreadValueProblem(value: unknown, depth: number): string | null {
  if (typeof value === 'string') return textProblem(value);
  if (value === null || typeof value !== 'object') return null;
  if (depth > MAX_NESTING) return `nests deeper than ${MAX_NESTING} levels`;
  for (const [key, inner] of Object.entries(value)) {
    const problem = key === '__proto__' ? 'holds a key named __proto__' : (textProblem(key) ?? unreadValueProblem(inner, depth + 1));
    if (problem) return problem;
  }
  return null;
}

// Only strings and numbers are compared: anything else is refused later as "must be a string".
function sameValue(a: unknown, b: unknown): boolean {
  const scalar = (v: unknown) => typeof v === 'string' || typeof v === 'number';
  return a === b || (scalar(a) && scalar(b) && String(a) === String(b));
}

/** A postback as read: what ingest queues (with the advertiser, the time and the id it adds). */
export interface PostbackInput {
  clickId: string;
  /** The order reference; under dedupe "click_id" without one, the click's order key (clickOrderKey). */
  orderId: string;
  /** Absent when none was sent: absence travels as absence (it changes no amount). */
  amount?: string;
  currency?: string;
  status: ConversionStatus;
  /** In its one form (lower case). */
  event: string;
  /** The event as sent, when that is not its one form. */
  eventAsSent?: string;
}

// Printable text only: control characters in an order reference are a broken integration.
const CONTROL = /[\u0000-\u001f\u007f]/;
const PLAIN_DECIMAL = /^-?\d+(\.\d+)?$/;

/** What reading one field needs beyond its value. */
interface FieldContext {
  fields: FieldErrors;
  sentAs: SentAs;
  /** A JSON body's top-level numbers as written. */
  numberTexts: Readonly<Record<string, string>>;
  /** Values no field may hold (the advertiser's key and signing secrets). */
  secrets: readonly string[];
}

/**
 * A field's text. Strings are taken as sent (order_id untrimmed: white space around it is an
 * error, not silently cut); a JSON number is read from the text it was written as, never through
 * a float, so `0.99999999999999999` is refused like the same string and a long order number
 * keeps its digits.
 */
function fieldText(field: PostbackField, value: unknown, ctx: FieldContext): string | undefined {
  if (typeof value === 'string') {
    const problem = textProblem(value);
    if (problem) {
      ctx.fields[field] ??= problem;
      return undefined;
    }
    if (field === 'order_id') {
      if (value.trim() !== value) ctx.fields[field] ??= 'must not begin or end with white space';
      return value;
    }
    return value.trim();
  }
  if (typeof value === 'number' && Number.isFinite(value)) {
    const written = ctx.numberTexts[ctx.sentAs[field] ?? field];
    if (written === undefined) return String(value);
    if (!PLAIN_DECIMAL.test(written)) {
      ctx.fields[field] ??= 'must be written as a plain decimal number such as 49.90 (no exponent), or sent as a string';
      return undefined;
    }
    return written;
  }
  ctx.fields[field] ??= 'must be a string';
  return undefined;
}

/**
 * The postback's fields, checked, or null with every bad field named in `fields`. A value that
 * holds one of `secrets` (the advertiser's postback key or signing secret) is refused: it would
 * be stored.
 */
function validatePostback(
  values: Values,
  fields: FieldErrors,
  sentAs: SentAs,
  format: ResolvedFormat,
  options: { numberTexts?: Readonly<Record<string, string>>; secrets?: readonly string[] } = {},
): PostbackInput | null {
  const ctx: FieldContext = { fields, sentAs, numberTexts: options.numberTexts ?? {}, secrets: options.secrets ?? [] };
  const text = (field: PostbackField): string | undefined => {
    const value = values[field];
    if (value === undefined || value === null || value === '') return undefined;
    const read = fieldText(field, value, ctx);
    if (read === undefined || fields[field]) return read;
    if (holdsSecret(read, ctx.secrets)) {
      fields[field] =
        "holds the advertiser's postback key or signing secret, which Trackway never stores: send the key only as `key`, in the path or in X-Postback-Key";
      return undefined;
    }
    // A placeholder the advertiser's tracker left unreplaced is no value: named as it was sent.
    const placeholder = unreplacedPlaceholder(read);
    if (placeholder !== null) {
      const name = sentAs[field] ?? field;
      fields[field] = `is an unreplaced placeholder: ${name}=${read} was sent${name === field ? '' : ` (${name} is read as ${field})`}`;
      return undefined;
    }
    return read;
  };

  const clickId = text('click_id');
  if (!fields.click_id) {
    if (!clickId) fields.click_id = 'is required';
    else if (!CLICK_ID_PATTERN.test(clickId)) fields.click_id = 'is not a click ID (URL-safe characters, at most 64)';
  }

  let orderId = text('order_id');
  if (!fields.order_id) {
    // Under dedupe "click_id", a postback without an order reference is one conversion per
    // (advertiser, click, event); an order_id, when sent, still wins.
    if (!orderId && format.dedupe === 'click_id') orderId = clickId && !fields.click_id ? clickOrderKey(clickId) : undefined;
    else if (!orderId) fields.order_id = 'is required';
    else if (orderId.length > ORDER_ID_MAX) fields.order_id = `must be at most ${ORDER_ID_MAX} characters`;
    else if (CONTROL.test(orderId)) fields.order_id = 'must not contain control characters';
  }

  const amountText = text('amount');
  let amount = amountText === undefined ? undefined : withDecimalPoint(amountText, format);
  if (amount !== undefined && !fields.amount) {
    if (/^-/.test(amount)) fields.amount = 'must not be negative';
    else if (/^\d+,\d+$/.test(amount))
      fields.amount = "must be a decimal number such as 49.90 (a decimal comma is read only when the advertiser's postback_format has decimal_comma: true)";
    else if (!/^\d+(\.\d+)?$/.test(amount)) fields.amount = 'must be a decimal number such as 49.90';
    else if (!MONEY_PATTERN.test(amount)) fields.amount = 'must have at most 14 digits before the point and 4 after';
    else amount = normalizeDecimal(amount);
  }

  // ASCII letters only: `uſd` upper-cases to USD, and must not be read as it.
  const currencyText = text('currency');
  const currency = currencyText !== undefined && /^[A-Za-z]{3}$/.test(currencyText) ? currencyText.toUpperCase() : undefined;
  if (!fields.currency && currencyText !== undefined && (currency === undefined || !isCurrency(currency))) {
    fields.currency = 'must be an ISO 4217 currency code such as USD';
  }

  const statusText = text('status');
  const status = statusText === undefined ? 'approved' : statusFor(statusText, format);
  if (!fields.status && status === null) fields.status = `must be one of ${statusWords(format).join(', ')} (any case)`;

  const eventAsSent = text('event') ?? 'conversion';
  if (!fields.event && !EVENT_PATTERN.test(eventAsSent)) fields.event = 'must be 1-64 letters, digits, or _ . : -';
  // One form for the dedupe key and what is shown: sale, Sale and SALE are one event.
  const event = normalizeEvent(eventAsSent);

  if (Object.keys(fields).length > 0) return null;
  return {
    clickId: clickId!,
    orderId: orderId!,
    ...(amount === undefined ? {} : { amount }),
    ...(currency === undefined ? {} : { currency }),
    status: status as ConversionStatus,
    event,
    ...(eventAsSent === event ? {} : { eventAsSent }),
  };
}

function normalizeDecimal(value: string): string {
  const [int, frac] = value.split('.');
  const intPart = int.replace(/^0+(?=\d)/, '');
  return frac ? `${intPart}.${frac}` : intPart;
}

const REDACTED = '[redacted]';

const holdsSecret = (text: string, secrets: readonly string[]) => secrets.some((secret) => text.includes(secret));

/**
 * Parameters kept as sent, except that any text holding one of `secrets` is replaced by REDACTED,
 * at any depth, in a nested object's keys as in values.
 */
export function redactSecrets<T>(value: T, secrets: readonly string[]): T {
  return secrets.length === 0 ? value : redactWhere(value, (text) => holdsSecret(text, secrets));
}

// Values shaped like Trackway's postback keys and signing secrets, whoever's they are.
const SECRET_SHAPE = /(?:pk|whsec)_[A-Za-z0-9+/_=-]{12,}/;

/**
 * Parameters of a postback queued before ingest redacted the advertiser's own secrets: any text
 * shaped like a postback key or signing secret is replaced by REDACTED (at any depth, in keys as
 * in values).
 */
export function redactSecretShapes<T>(value: T): T {
  return redactWhere(value, (text) => SECRET_SHAPE.test(text));
}

/** A value with every text that `holds` says holds a secret replaced by REDACTED, at any depth: a key so held takes its value with it. */
function redactWhere<T>(value: T, holds: (text: string) => boolean): T {
  if (typeof value === 'string') return (holds(value) ? REDACTED : value) as T;
  if (Array.isArray(value)) return value.map((inner) => redactWhere(inner, holds)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, inner]) => (holds(k) ? [REDACTED, REDACTED] : [k, redactWhere(inner, holds)]))) as T;
  }
  return value;
}

/**
 * The values no stored parameter may hold for an advertiser: its key as sent, and its live
 * signing secrets with and without their `whsec_` prefix.
 */
export function secretsOf(key: string, signingSecrets: readonly string[]): string[] {
  return [key, ...signingSecrets.flatMap((secret) => [secret, secret.replace(/^whsec_/, '')])].filter((s) => s.length >= 8);
}

/** The advertiser a postback's key names, as the decision needs it. */
export interface IntakeAdvertiser {
  id: number;
  status: EntityStatus;
  requireSignedPostbacks: boolean;
  /** Whether it has a live signing secret. */
  hasSigningSecret: boolean;
  format: ResolvedFormat;
  /** What no postback may store or show (secretsOf). */
  secrets: readonly string[];
}

export interface PostbackRequestFacts {
  method: 'GET' | 'POST';
  query: Raw;
  body?: Raw;
  /** A JSON body's top-level numbers as written (name → text). */
  numberTexts?: Readonly<Record<string, string>>;
  /** The advertiser of the key, or null when the key names none. */
  advertiser: IntakeAdvertiser | null;
  /** The client's address, and whether the advertiser's allowed_ips admit it. */
  address: string | undefined;
  addressAllowed: boolean;
  /**
   * The Standard Webhooks headers: whether a signature was sent, a webhook-id over 256
   * characters, and how to verify it against the advertiser's live secrets — called only when
   * the decision comes to it, so a request refused earlier costs no HMAC.
   */
  signature: { sent: boolean; idTooLong?: boolean; verify?: () => { id: string } | { error: string } };
  receivedAt: Date;
}

export interface PostbackRefusal {
  status: 400 | 401 | 403;
  code: 'invalid_request' | 'unauthorized' | 'invalid_signature' | 'ip_not_allowed';
  message: string;
  fields?: FieldErrors;
  /** The postbacks metric's labels. */
  metric: { outcome: 'invalid' | 'unauthorized'; reason: string };
  /** Counted toward the address's AUTH_FAILURE_LIMIT. */
  authFailure: boolean;
}

/** A postback ingest queues: PostbackJob without the id the enqueuer mints. */
export interface AcceptedPostback extends PostbackInput {
  advertiserId: number;
  receivedAt: string;
  ignoredParams?: Raw;
}

export type PostbackDecision =
  | { accepted: false; refusal: PostbackRefusal }
  | {
      accepted: true;
      postback: AcceptedPostback;
      /** Names of the parameters not read, as sent (the 202 lists them). */
      ignoredNames: string[];
      /** A signed postback's webhook-id: accepted once. */
      signedId?: string;
    };

const refuse = (refusal: PostbackRefusal): PostbackDecision => ({ accepted: false, refusal });
const unauthorized = (code: 'unauthorized' | 'invalid_signature', message: string, reason: string, authFailure = true) =>
  refuse({ status: 401, code, message, metric: { outcome: 'unauthorized', reason }, authFailure });

/**
 * Accept or refuse a postback whose key was given: the advertiser must be active, the address
 * allowed, the signature (when sent or required) valid, every field readable; what it does not
 * read is kept, any text holding the advertiser's key or secret redacted.
 */
export function decidePostback(facts: PostbackRequestFacts): PostbackDecision {
  const { advertiser } = facts;
  if (advertiser?.status !== 'active') return unauthorized('unauthorized', 'The postback key is not valid.', 'unknown_key');
  if (!facts.addressAllowed) {
    return refuse({
      status: 403,
      code: 'ip_not_allowed',
      message: `Postbacks for this advertiser are not accepted from ${facts.address ?? 'this address'}.`,
      metric: { outcome: 'unauthorized', reason: 'ip_not_allowed' },
      authFailure: false,
    });
  }

  let signedId: string | undefined;
  const check = signatureCheck({ required: advertiser.requireSignedPostbacks, hasSecret: advertiser.hasSigningSecret, headersSent: facts.signature.sent });
  if (check.verdict === 'refuse') return unauthorized('invalid_signature', check.reason, 'signature', facts.signature.sent);
  if (check.verdict === 'verify') {
    if (facts.signature.idTooLong) return unauthorized('invalid_signature', 'The webhook-id is longer than 256 characters.', 'signature', false);
    // GET: the query string as sent is signed; POST: the body's bytes, so its fields are all in
    // the body: the query may carry only the key.
    if (facts.method === 'POST' && Object.keys(facts.query).some((name) => name !== KEY)) {
      return refuse({
        status: 400,
        code: 'invalid_request',
        message: 'A signed POST carries its fields in the body.',
        fields: { _: 'a signed POST carries its fields in the body; the query string may hold only `key`' },
        metric: { outcome: 'invalid', reason: 'validation' },
        authFailure: false,
      });
    }
    const verified = facts.signature.verify?.();
    if (!verified || 'error' in verified) {
      return unauthorized('invalid_signature', `The postback's signature is not valid: ${verified ? verified.error : 'it was not checked'}.`, 'signature');
    }
    signedId = verified.id;
  }

  // Read in the advertiser's dialect (its postback_format); what it does not read is kept.
  const sources = facts.body ? [facts.query, facts.body] : [facts.query];
  const { values, fields, sentAs, ignored } = collectParams(sources, advertiser.format);
  const ignoredNames = Object.keys(ignored);
  // A secret used as a parameter's name (`?pk_…` without `key=`) would be listed and stored.
  if (ignoredNames.some((name) => holdsSecret(name, advertiser.secrets))) {
    fields[REDACTED] = "is a parameter named with the advertiser's postback key or signing secret, which Trackway never stores: send the key as `key`";
  }
  const input = validatePostback(values, fields, sentAs, advertiser.format, { numberTexts: facts.numberTexts, secrets: advertiser.secrets });
  if (!input) {
    return refuse({
      status: 400,
      code: 'invalid_request',
      message: 'The request has invalid fields.',
      fields,
      metric: { outcome: 'invalid', reason: 'validation' },
      authFailure: false,
    });
  }
  return {
    accepted: true,
    postback: {
      advertiserId: advertiser.id,
      receivedAt: facts.receivedAt.toISOString(),
      ...input,
      ...(ignoredNames.length > 0 ? { ignoredParams: redactSecrets(ignored, advertiser.secrets) } : {}),
    },
    ignoredNames,
    ...(signedId === undefined ? {} : { signedId }),
  };
}
