import {
  CLICK_ID_PATTERN,
  type ConversionStatus,
  EVENT_PATTERN,
  ORDER_ID_MAX,
  MONEY_PATTERN,
  POSTBACK_FIELDS,
  PRESETS,
  type PostbackField,
  type ResolvedFormat,
  clickOrderKey,
  normalizeEvent,
  isCurrency,
  statusFor,
  statusWords,
  unreplacedPlaceholder,
  withDecimalPoint,
} from '@trackway/domain';
import { isUtf8 } from 'node:buffer';
import querystring from 'node:querystring';
import { type FieldErrors, badRequest, parseQueryString, textProblem } from '@trackway/http';
import { visit } from 'jsonc-parser';

/**
 * Parameter names advertisers already send, mapped to Trackway's: the `trackway` preset, what
 * an advertiser without a postback_format is read with. The README's alias table is this one.
 */
export const POSTBACK_ALIASES = PRESETS.trackway.params;

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
const KEY = 'key';

type Raw = Record<string, unknown>;
type Values = Partial<Record<PostbackField, unknown>>;
type SentAs = Partial<Record<PostbackField, string>>;

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
export function collectParams(
  sources: Raw[],
  format: ResolvedFormat,
): { values: Values; fields: FieldErrors; sentAs: SentAs; ignored: Record<string, unknown> } {
  const values: Values = {};
  const sentAs: SentAs = {};
  const fields: FieldErrors = {};
  for (const field of POSTBACK_FIELDS) {
    const names = format.names[field];
    const { value, as } = collectField(sources, field, names, fields);
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
  const ignored = Object.fromEntries([...unread].map(([name, values]) => [name, values.length === 1 ? values[0] : values]));
  return { values, fields, sentAs, ignored };
}

/** How deep a value Trackway does not read may nest (a body nests no deeper than this, see checkBody). */
const MAX_NESTING = 32;

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

// A JSON number below 10^11 with at most 4 decimals has at most 15 significant digits, so its
// shortest round-trip text is exactly what the client wrote. Larger ones may already have lost
// digits in JSON.parse: those amounts must come as strings.
const EXACT_JSON_NUMBER = 1e11;

function asText(value: unknown, field: string, fields: FieldErrors): string | undefined {
  if (typeof value === 'string') {
    const problem = textProblem(value);
    if (problem) fields[field] ??= problem;
    return value.trim();
  }
  if (typeof value === 'number' && Number.isFinite(value)) {
    if (Math.abs(value) >= EXACT_JSON_NUMBER) fields[field] ??= 'send amounts of 10^11 or more as a string, to keep them exact';
    return String(value);
  }
  fields[field] ??= 'must be a string';
  return undefined;
}

export function validatePostback(values: Values, fields: FieldErrors, sentAs: SentAs, format: ResolvedFormat): PostbackInput | null {
  const text = (field: PostbackField): string | undefined => {
    const value = values[field];
    if (value === undefined || value === null || value === '') return undefined;
    const read = asText(value, field, fields);
    // A placeholder the advertiser's tracker left unreplaced is no value: named as it was sent.
    const placeholder = read === undefined || fields[field] ? null : unreplacedPlaceholder(read);
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
    else if (!CLICK_ID_PATTERN.test(clickId)) {
      fields.click_id = 'is not a click ID (URL-safe characters, at most 64)';
    }
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

  const currencyRaw = text('currency');
  const currency = currencyRaw?.toUpperCase();
  if (!fields.currency && currency !== undefined && !isCurrency(currency)) {
    fields.currency = 'must be an ISO 4217 currency code such as USD';
  }

  const statusText = text('status');
  const status = statusText === undefined ? 'approved' : statusFor(statusText, format);
  if (!fields.status && status === null) {
    fields.status = `must be one of ${statusWords(format).join(', ')} (any case)`;
  }

  const eventAsSent = text('event') ?? 'conversion';
  if (!fields.event && !EVENT_PATTERN.test(eventAsSent)) fields.event = 'must be 1-64 letters, digits, or _ . : -';
  // One form for the dedupe key and what is shown: sale, Sale and SALE are one event.
  const event = normalizeEvent(eventAsSent);

  if (Object.keys(fields).length > 0) return null;
  return {
    clickId: clickId!,
    orderId: orderId!,
    ...(amount === undefined ? {} : { amount }),
    currency,
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

// A percent-encoded byte of 0x80 or more, or a raw non-ASCII character: the only ways to send
// text that may not be UTF-8.
const NON_ASCII = /%[89a-fA-F]|[^\x00-\x7f]/;

/**
 * The query string, parsed as the api parses it (parseQueryString: more than 1,000 parameters
 * is a 400, not the rest dropped), refusing too what node:querystring would alter silently:
 * bytes that are not UTF-8 (it makes them U+FFFD, so distinct orders would collide) and raw
 * non-ASCII characters.
 */
export function parseQuery(raw: string): Record<string, string | string[] | undefined> {
  refuseNonUtf8(raw, false);
  return parseQueryString(raw);
}

/** Throws a 400 naming each parameter whose percent-encoded bytes are not UTF-8 (or that holds a raw non-ASCII character, unless allowed). */
function refuseNonUtf8(raw: string, allowRaw: boolean): void {
  if (!NON_ASCII.test(raw)) return;
  const fields: FieldErrors = {};
  for (const pair of raw.split('&')) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    const decodedName = strictDecode(name, allowRaw);
    if (decodedName === null || strictDecode(value, allowRaw) === null) {
      fields[decodedName ?? querystring.unescape(name)] = allowRaw
        ? 'must be UTF-8 text (its percent-encoded bytes are not UTF-8)'
        : 'must be percent-encoded UTF-8 (a byte sequence that is not UTF-8, or a raw non-ASCII character, was sent)';
    }
  }
  if (Object.keys(fields).length > 0) throw badRequest(fields, 'The parameters are not valid UTF-8.');
}

/** A component decoded as UTF-8, or null when its bytes are not UTF-8 (a stray "%" stays literal, as querystring leaves it). */
function strictDecode(component: string, allowRaw: boolean): string | null {
  if (!allowRaw && /[^\x00-\x7f]/.test(component)) return null;
  try {
    return decodeURIComponent(component.replace(/\+/g, ' ').replace(/%(?![0-9a-fA-F]{2})/g, '%25'));
  } catch {
    return null;
  }
}

/**
 * A body's bytes, checked before its parsed fields are used: bytes that are not UTF-8 (the
 * parser made them U+FFFD) and, in JSON, a key given twice (JSON.parse keeps the last) are a 400
 * naming the field.
 */
export function checkBody(raw: Buffer, parsed: Record<string, unknown> | undefined, json: boolean): void {
  if (!isUtf8(raw)) {
    const named = Object.entries(parsed ?? {}).filter(([name, value]) => name.includes('\uFFFD') || (typeof value === 'string' && value.includes('\uFFFD')));
    const fields: FieldErrors = {};
    for (const [name] of named) fields[name] = 'must be UTF-8 text (the body holds bytes that are not UTF-8)';
    if (named.length === 0) fields._ = 'the body holds bytes that are not UTF-8';
    throw badRequest(fields, 'The request body is not valid UTF-8.');
  }
  if (!json) {
    // A form body decodes its percent-escapes as the query string does.
    refuseNonUtf8(raw.toString('utf8'), true);
    return;
  }
  // Before anything walks it recursively (a 12 KB body can nest 6,000 levels).
  if (nestsDeeper(parsed, MAX_NESTING)) throw badRequest({ _: `the JSON body nests deeper than ${MAX_NESTING} levels` }, 'The JSON body nests too deep.');
  const duplicates = duplicateJsonKeys(raw.toString('utf8'));
  if (duplicates.length > 0) {
    throw badRequest(Object.fromEntries(duplicates.map((name) => [name, 'given more than once in the JSON body'])), 'The JSON body has a key more than once.');
  }
}

/** Whether a parsed JSON value nests deeper than `levels` (walking no deeper than that). */
function nestsDeeper(value: unknown, levels: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (levels === 0) return true;
  return Object.values(value).some((inner) => nestsDeeper(inner, levels - 1));
}

/** Keys that appear twice in one object of a JSON text. */
function duplicateJsonKeys(text: string): string[] {
  const objects: Set<string>[] = [];
  const duplicates: string[] = [];
  visit(text, {
    onObjectBegin: () => void objects.push(new Set()),
    onObjectEnd: () => void objects.pop(),
    onObjectProperty: (name) => {
      const keys = objects[objects.length - 1];
      if (!keys) return;
      if (keys.has(name)) duplicates.push(name);
      else keys.add(name);
    },
  });
  return duplicates;
}
