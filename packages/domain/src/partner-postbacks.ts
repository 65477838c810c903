import { appendQuery, authorityOf, parseHttpUrl } from './destination';
import type { EventType } from './events';
import { PARTNER_MACROS, type PartnerMacro } from './partner-macros';
import { PARTNER_PRESET_NAMES, type PartnerPresetName, presetQuery, presetStatusWord, presetWritesStatus } from './postback-formats';
import type { ConversionStatus } from './status';

export { PARTNER_MACROS, type PartnerMacro };

/**
 * Partner postbacks: an affiliate's own tracker told of its conversions, a GET (or a form POST)
 * to a URL template with macros filled in, or to a base URL with a preset's query (the tracker's
 * dialect, postback-formats.ts). Decided here; the delivery worker sends what `partnerRequest`
 * builds through the same engine as webhooks.
 */

/** The conversion events a partner postback may subscribe to (a reversal must be able to reach the partner). */
export const PARTNER_EVENT_TYPES = [
  'conversion.created',
  'conversion.approved',
  'conversion.rejected',
  'conversion.updated',
] as const satisfies readonly EventType[];
export type PartnerEventType = (typeof PARTNER_EVENT_TYPES)[number];
export const DEFAULT_PARTNER_EVENT_TYPES: PartnerEventType[] = ['conversion.approved'];
export const PARTNER_METHODS = ['GET', 'POST'] as const;
export type PartnerMethod = (typeof PARTNER_METHODS)[number];

/** What a partner postback is sent from (its stored row, the URL opened). */
export interface PartnerTemplate {
  url: string;
  method: PartnerMethod;
  preset: PartnerPresetName | null;
}

/**
 * A stored row's method and preset as partner postbacks take them (a value no version writes
 * reads as GET, and as no preset).
 */
export function partnerSettingsOf(row: { method: string; preset: string | null }): Pick<PartnerTemplate, 'method' | 'preset'> {
  return {
    method: row.method === 'POST' ? 'POST' : 'GET',
    preset: PARTNER_PRESET_NAMES.includes(row.preset as PartnerPresetName) ? (row.preset as PartnerPresetName) : null,
  };
}

/** Every `{name}` in a template: known or not. */
const ANY_MACRO = /\{([^{}/?#&=]*)\}/g;
const KNOWN = new Set<string>(PARTNER_MACROS);

/** Fills every known macro of a template (values percent-encoded: none can bring a "/", "?", "#", "@" or ":"). */
function fill(template: string, value: (name: PartnerMacro) => string): string {
  return template.replace(ANY_MACRO, (whole, name: string) => (KNOWN.has(name) ? encodeURIComponent(value(name as PartnerMacro)) : whole));
}

/**
 * Why a partner postback's URL cannot be used, or null when it can: it must be an http(s) URL
 * without credentials, carry only known macros, and no macro may reach the scheme, host or
 * port (checked by filling every macro with two different values, as offer destinations are).
 * Whether its host is an address Trackway may call is the caller's check (the SSRF policy).
 */
export function partnerUrlProblem(url: string): string | null {
  const parsed = parseHttpUrl(url);
  if (!parsed) return 'must be an http(s) URL';
  const unknown = [...url.matchAll(ANY_MACRO)].map((m) => m[1]).filter((name) => !KNOWN.has(name));
  if (unknown.length > 0)
    return `has unknown macros: ${[...new Set(unknown)].map((n) => `{${n}}`).join(', ')}; the macros are ${PARTNER_MACROS.map((n) => `{${n}}`).join(', ')}`;
  if (parsed.username || parsed.password) return 'must not contain credentials';
  if ([...parsed.searchParams].some(([name, value]) => value === '***' || (name === '***' && value === '')))
    return 'holds a masked value (***): send the URL whole, as at creation';
  const authority = authorityOf(parsed);
  for (const value of ['a', '0']) {
    const filled = parseHttpUrl(fill(url, () => value));
    if (!filled || authorityOf(filled) !== authority) return 'macros may only be in the path, query or fragment, not in the scheme, host or port';
  }
  return null;
}

/**
 * Why a preset cannot take these event types, or null: a tracker without a status parameter
 * (Voluum, Everflow) counts every postback as a conversion, so it may only be told of approvals.
 */
export function partnerEventTypesProblem(preset: PartnerPresetName | null, eventTypes: readonly string[]): string | null {
  if (!preset || presetWritesStatus(preset)) return null;
  const others = eventTypes.filter((t) => t !== 'conversion.approved');
  return others.length === 0
    ? null
    : `the ${preset} preset writes no status, so its tracker would count ${others.join(', ')} as a conversion: subscribe to conversion.approved only`;
}

const isMacro = (value: string) => /^\{[a-z0-9_]+\}$/.test(value) && KNOWN.has(value.slice(1, -1));

/**
 * The URL as every read after creation shows it: query values that are not a macro masked
 * (a partner's token is usually one), a bare value (`?s3cr3t`) too. The path and the parameter
 * names stay as they are.
 */
export function maskPartnerUrl(url: string): string {
  const queryAt = url.indexOf('?');
  if (queryAt === -1) return url;
  const hashAt = url.indexOf('#', queryAt);
  const query = hashAt === -1 ? url.slice(queryAt + 1) : url.slice(queryAt + 1, hashAt);
  const masked = query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      // A bare value (`?s3cr3t`) is masked like any other.
      if (eq === -1) return pair === '' || isMacro(pair) ? pair : '***';
      const value = pair.slice(eq + 1);
      let decoded = value;
      try {
        decoded = decodeURIComponent(value);
      } catch {
        // shown masked, like any other value
      }
      return value === '' || isMacro(decoded) ? pair : `${pair.slice(0, eq + 1)}***`;
    })
    .join('&');
  return `${url.slice(0, queryAt + 1)}${masked}${hashAt === -1 ? '' : url.slice(hashAt)}`;
}

/** The event a partner postback is built from: a conversion event's envelope. */
export interface PartnerEvent {
  type: string;
  timestamp: string;
  data: { conversion?: Record<string, unknown> } & Record<string, unknown>;
}

/** The request a partner postback makes: a GET to `url`, or a POST of `body` (form-encoded) to `url`. */
export interface PartnerRequest {
  method: PartnerMethod;
  url: string;
  body: string | null;
  /** Macros that had no value (each filled with ""), in the order of PARTNER_MACROS. */
  missing: PartnerMacro[];
}

const text = (value: unknown): string => (value === null || value === undefined ? '' : String(value));

/**
 * Each macro's value for an event: the conversion's fields as the API writes them (money as
 * "5.00"), its sub IDs, the event's type and time (Unix seconds). `amount` (the sale) only when
 * the offer shares it with partners; never the network's revenue.
 */
function partnerValues(event: PartnerEvent, options: { shareAmount: boolean }): Record<PartnerMacro, string> {
  const c = event.data.conversion ?? {};
  return {
    click_id: text(c.click_id),
    sub1: text(c.sub1),
    sub2: text(c.sub2),
    sub3: text(c.sub3),
    sub4: text(c.sub4),
    sub5: text(c.sub5),
    conversion_id: text(c.id),
    event: text(c.event),
    event_type: event.type,
    status: text(c.status),
    payout: text(c.payout),
    payout_currency: text(c.payout_currency),
    offer_id: text(c.offer_id),
    affiliate_id: text(c.affiliate_id),
    timestamp: String(Math.floor(Date.parse(event.timestamp) / 1000)),
    amount: options.shareAmount ? text(c.amount) : '',
  };
}

/**
 * What a partner postback sends for an event. Without a preset, the URL's macros are filled in;
 * with one, the URL (its own macros filled in too) gets the preset's query appended. A POST sends
 * the filled query as an `application/x-www-form-urlencoded` body to the URL without its query.
 * Null when the result would leave the template's scheme, credentials, host or port (a stored
 * template that was never accepted: refused at creation).
 */
export function partnerRequest(template: PartnerTemplate, event: PartnerEvent, options: { shareAmount: boolean }): PartnerRequest | null {
  const values = partnerValues(event, options);
  const used = new Set<PartnerMacro>();
  let url = fill(template.url, (name) => {
    used.add(name);
    return values[name];
  });
  if (template.preset) {
    const preset = template.preset;
    const pairs = presetQuery(preset).map(({ name, macro }) => {
      used.add(macro);
      const value = macro === 'status' && values.status ? presetStatusWord(preset, values.status as ConversionStatus) : values[macro];
      return `${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
    });
    url = appendQuery(url, pairs.join('&'));
  }
  const before = parseHttpUrl(template.url);
  const after = parseHttpUrl(url);
  if (!before || !after || authorityOf(before) !== authorityOf(after)) return null;
  const missing = PARTNER_MACROS.filter((name) => used.has(name) && values[name] === '');
  if (template.method === 'GET') return { method: 'GET', url, body: null, missing };
  const body = after.search.slice(1);
  after.search = '';
  return { method: 'POST', url: after.toString(), body, missing };
}

/** A partner postback as fan-out chooses among them. */
export interface PartnerSubscriber {
  id: string;
  affiliateId: number;
  offerId: number | null;
  eventTypes: readonly string[];
}

/**
 * The partner postbacks an event goes to: the conversion's affiliate's postbacks subscribed to
 * its type — those limited to its offer when there are any for this type (an offer-level postback
 * replaces the affiliate's global ones for the types it subscribes to), else the global ones.
 */
export function partnerTargets<P extends PartnerSubscriber>(postbacks: readonly P[], eventType: string, affiliateId: number, offerId: number): P[] {
  const mine = postbacks.filter((p) => p.affiliateId === affiliateId && p.eventTypes.includes(eventType));
  const forOffer = mine.filter((p) => p.offerId === offerId);
  return forOffer.length > 0 ? forOffer : mine.filter((p) => p.offerId === null);
}
