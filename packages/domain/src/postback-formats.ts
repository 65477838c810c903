import type { PartnerMacro } from './partner-macros';
import { CONVERSION_STATUSES, type ConversionStatus, STATUS_VOCABULARY } from './status';

/**
 * Postback dialects: which parameter names an advertiser's tracker sends for each of
 * Trackway's fields, the status values it uses, whether its amounts may have a decimal comma,
 * and what a conversion is unique on when it sends no order reference. An advertiser's
 * `postback_format` names a preset and overrides parts of it; `resolveFormat` turns it into
 * what ingest reads a postback with. The table of presets in docs/postbacks.md is PRESETS.
 *
 * The same entries write partner postbacks: a preset with `writes` is a tracker Trackway can
 * post an affiliate's conversions to, in that tracker's dialect (presetQuery, presetStatusWord).
 * One owner per dialect: the names written are the names read, and the status words written are
 * words the preset reads back as the same status.
 */
export const POSTBACK_FIELDS = ['click_id', 'order_id', 'amount', 'currency', 'status', 'event'] as const;
export type PostbackField = (typeof POSTBACK_FIELDS)[number];

export const PRESET_NAMES = ['trackway', 'everflow', 'tune', 'voluum', 'binom', 'keitaro', 'redtrack', 'affise', 'cake', 'offer18', 'bemob'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** The presets a partner postback can be written in: trackers that document the postback they receive. */
export const PARTNER_PRESET_NAMES = ['voluum', 'binom', 'keitaro', 'redtrack', 'everflow', 'affise', 'bemob'] as const;
export type PartnerPresetName = (typeof PARTNER_PRESET_NAMES)[number];

export const DEDUPE_MODES = ['order_id', 'click_id'] as const;
export type DedupeMode = (typeof DEDUPE_MODES)[number];

/** What a postback's fields may hold (ingest checks them; the OpenAPI document shows them). */
export const CLICK_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const EVENT_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
export const ORDER_ID_MAX = 255;

/** An advertiser's setting, as the admin API takes and shows it. */
export interface PostbackFormat {
  preset: PresetName;
  /** Per field, the names read for it instead of the preset's (Trackway's own name is always read too). */
  params?: Partial<Record<PostbackField, string[]>>;
  /** Status values (case-insensitive) over the preset's: e.g. {"1": "approved", "2": "pending"}. */
  status_values?: Record<string, ConversionStatus>;
  decimal_comma?: boolean;
  dedupe?: DedupeMode;
}

export interface Preset {
  params: Readonly<Record<PostbackField, readonly string[]>>;
  status_values: Readonly<Record<string, ConversionStatus>>;
  decimal_comma: boolean;
  dedupe: DedupeMode;
  /** The tracker's documentation of the postback this preset reads. */
  source: string | null;
}

/** What a partner postback to the preset's tracker carries (the tracker's own postback documentation). */
export interface PresetWrites {
  /**
   * The fields written, in order, each with the macro its value comes from (`status`: the
   * preset's status word). A field is written under the preset's first name for it
   * (`params[field][0]`), or, where the preset lists none, under Trackway's own name for it,
   * which every preset reads too (Everflow documents `currency` under that name).
   */
  fields: readonly (readonly [PostbackField, PartnerMacro])[];
  /** The word written for each status, when `status` is among the fields. */
  status_words?: Readonly<Record<ConversionStatus, string>>;
  /** Documentation of a written name that `source` does not show. */
  source?: string;
}

type PresetTable = { readonly [P in PresetName]: P extends PartnerPresetName ? Preset & { writes: PresetWrites } : Preset };

const none: readonly string[] = [];

/** The dialects. `trackway` is the global alias table: what an advertiser without a format is read with. */
export const PRESETS: PresetTable = {
  trackway: {
    params: {
      click_id: ['transaction_id', 'clickid', 'cid', 'click'],
      order_id: ['adv_sub', 'txid', 'tid', 'order', 'orderid'],
      amount: ['payout', 'revenue', 'sale_amount', 'value'],
      currency: ['cur', 'currency_code'],
      status: ['conversion_status'],
      event: ['goal', 'event_name'],
    },
    status_values: {},
    decimal_comma: false,
    dedupe: 'order_id',
    source: null,
  },
  // transaction_id is the click; an order reference is optional. "&amount=12,34" is read as 12.34.
  everflow: {
    params: { click_id: ['transaction_id'], order_id: ['order_id'], amount: ['amount'], currency: none, status: none, event: ['adv_event_id', 'event_id'] },
    status_values: {},
    decimal_comma: true,
    dedupe: 'click_id',
    source: 'https://helpdesk.everflow.io/customer/accessing-editing-s2s-postback-urls',
    // No status parameter; adv_event_id is Everflow's own event id, which Trackway does not know.
    // The partner's URL carries its nid.
    writes: {
      fields: [
        ['click_id', 'sub1'],
        ['order_id', 'conversion_id'],
        ['amount', 'payout'],
        ['currency', 'payout_currency'],
      ],
      source: 'https://helpdesk.everflow.io/en/articles/6120678-currency-configurations',
    },
  },
  // transaction_id is the session (the click); the default template carries no order reference.
  tune: {
    params: { click_id: ['transaction_id'], order_id: ['adv_sub'], amount: ['amount'], currency: none, status: none, event: ['goal_id'] },
    status_values: {},
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://support.tune.com/hc/en-us/articles/4413247665431-Receiving-Conversions-via-Postback-URL',
  },
  voluum: {
    params: { click_id: ['cid'], order_id: ['txid'], amount: ['payout'], currency: ['currency'], status: none, event: ['et'] },
    status_values: {},
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://doc.voluum.com/en/tracking_conversions_postback.html',
    // No status parameter. et names a custom conversion type the Voluum account must define first.
    writes: {
      fields: [
        ['click_id', 'sub1'],
        ['order_id', 'conversion_id'],
        ['amount', 'payout'],
        ['currency', 'payout_currency'],
      ],
    },
  },
  // No order reference: a status change (cnv_status) is a repeat of the click's conversion.
  binom: {
    params: { click_id: ['cnv_id'], order_id: none, amount: ['payout'], currency: ['cnv_currency'], status: ['cnv_status'], event: none },
    status_values: {},
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://docs.binom.org/postback-url.php',
    // cnv_status is free text to Binom: Trackway's own words, which it reads back.
    writes: {
      fields: [
        ['click_id', 'sub1'],
        ['amount', 'payout'],
        ['currency', 'payout_currency'],
        ['status', 'status'],
      ],
      status_words: { pending: 'pending', approved: 'approved', rejected: 'rejected' },
    },
  },
  // Keitaro's tid is the order (transaction); its status is lead, sale or rejected.
  keitaro: {
    params: { click_id: ['subid', 'sub_id'], order_id: ['tid'], amount: ['payout', 'revenue'], currency: ['currency'], status: ['status'], event: none },
    status_values: {},
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://docs.keitaro.io/en/conversions-and-postback/postback.html',
    writes: {
      fields: [
        ['click_id', 'sub1'],
        ['order_id', 'conversion_id'],
        ['amount', 'payout'],
        ['currency', 'payout_currency'],
        ['status', 'status'],
      ],
      status_words: { pending: 'lead', approved: 'sale', rejected: 'rejected' },
    },
  },
  // rdtk_event_id is the reference RedTrack deduplicates by, when it sends one.
  redtrack: {
    params: { click_id: ['clickid'], order_id: ['rdtk_event_id'], amount: ['sum'], currency: none, status: ['status'], event: ['type'] },
    status_values: {},
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://docs.redtrack.io/knowledgebase/tracking-event-types/',
    // RedTrack's statuses are Approved, Pending, Declined (and Other); type names a conversion
    // type the account must define first, so it is not written.
    writes: {
      fields: [
        ['click_id', 'sub1'],
        ['order_id', 'conversion_id'],
        ['amount', 'payout'],
        ['status', 'status'],
      ],
      status_words: { pending: 'Pending', approved: 'Approved', rejected: 'Declined' },
    },
  },
  // Numeric statuses: 1 approved, 2 pending, 3 declined, 5 hold.
  affise: {
    params: { click_id: ['clickid'], order_id: ['action_id'], amount: ['sum'], currency: none, status: ['status'], event: ['goal'] },
    status_values: { '1': 'approved', '2': 'pending', '3': 'rejected', '5': 'pending' },
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://help-center.affise.com/en/articles/6475468-affise-postback-url-parameters',
    // goal must match one of the offer's goals in Affise, so it is not written.
    writes: {
      fields: [
        ['click_id', 'sub1'],
        ['order_id', 'conversion_id'],
        ['amount', 'payout'],
        ['status', 'status'],
      ],
      status_words: { pending: '2', approved: '1', rejected: '3' },
    },
  },
  // r is the request (session) id, t the advertiser's transaction id, p the price, e the event.
  cake: {
    params: { click_id: ['r'], order_id: ['t'], amount: ['p'], currency: ['eccu'], status: none, event: ['e'] },
    status_values: {},
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://support.getcake.com/support/solutions/articles/5000546124-conversion-pixel-variables',
  },
  // Offer18's tid is the click (Keitaro's is the order); adv_sub1 the advertiser's order id.
  offer18: {
    params: { click_id: ['tid'], order_id: ['adv_sub1'], amount: ['sale'], currency: none, status: none, event: ['event'] },
    status_values: {},
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://offer18.gitbook.io/knowledge-base/global-postback-parameters',
  },
  // cid is the click, txid the transaction; status words are whatever the BeMob account maps to
  // its New, Approved, Declined and Chargeback statuses, so the shared vocabulary reads them.
  bemob: {
    params: { click_id: ['cid'], order_id: ['txid'], amount: ['payout'], currency: none, status: ['status'], event: none },
    status_values: {},
    decimal_comma: false,
    dedupe: 'click_id',
    source: 'https://docs.bemob.com/en/create-custom-affiliate-network',
    // The BeMob account enters these words in its affiliate network's "Use conversion statuses".
    writes: {
      fields: [
        ['click_id', 'sub1'],
        ['order_id', 'conversion_id'],
        ['amount', 'payout'],
        ['status', 'status'],
      ],
      status_words: { pending: 'pending', approved: 'approved', rejected: 'rejected' },
      source: 'https://help.bemob.com/docs/using-postback-statuses',
    },
  },
};

/** The query a preset writes, in order: each parameter's name and the macro its value comes from ('status' is written as the preset's status word). */
export function presetQuery(preset: PartnerPresetName): ReadonlyArray<{ name: string; macro: PartnerMacro }> {
  const { params, writes } = PRESETS[preset];
  return writes.fields.map(([field, macro]) => ({ name: params[field][0] ?? field, macro }));
}

/** Whether the preset's tracker reads a status: where it does not, every postback to it is a conversion. */
export function presetWritesStatus(preset: PartnerPresetName): boolean {
  return PRESETS[preset].writes.fields.some(([field]) => field === 'status');
}

/**
 * The word the preset's tracker reads for a status (e.g. keitaro: pending → "lead", approved →
 * "sale", rejected → "rejected"). A preset that writes no status (presetWritesStatus) gives
 * Trackway's own word, which it never writes.
 */
export function presetStatusWord(preset: PartnerPresetName, status: ConversionStatus): string {
  return PRESETS[preset].writes.status_words?.[status] ?? status;
}

/** What ingest reads a postback with. */
export interface ResolvedFormat {
  preset: PresetName;
  /** Per field, the names read for it, in order of preference. */
  names: Readonly<Record<PostbackField, readonly string[]>>;
  /** Every name read for a field, and `key`: the parameters that are not ignored. */
  readNames: ReadonlySet<string>;
  /** Status values by their lower-case text. */
  statusValues: Readonly<Record<string, ConversionStatus>>;
  decimalComma: boolean;
  dedupe: DedupeMode;
}

/** A parameter name as trackers send them: letters, digits, `_ . -`, at most 64. */
const PARAM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const RESERVED = new Set(['key']);

/**
 * What is wrong with a format beyond its shape, by path: a name that is no parameter name, the
 * key's, or read for two fields (an override against another override or against the preset's
 * names for another field), and status values that are the same once lower-cased.
 */
export function postbackFormatProblems(format: PostbackFormat): Record<string, string> {
  const problems: Record<string, string> = {};
  const preset = PRESETS[format.preset];
  const claimed = new Map<string, PostbackField>();
  // The fields the format overrides first, so a clash is named on the override.
  const overridden = POSTBACK_FIELDS.filter((field) => format.params?.[field] !== undefined);
  for (const field of [...overridden, ...POSTBACK_FIELDS.filter((f) => !overridden.includes(f))]) {
    const override = format.params?.[field];
    for (const name of override ?? preset?.params[field] ?? []) {
      const path = `postback_format.params.${field}`;
      if (override && !PARAM_NAME.test(name)) problems[path] ??= `"${name}" is not a parameter name (letters, digits, _ . -, at most 64)`;
      else if (override && RESERVED.has(name)) problems[path] ??= `"${name}" is the postback key's parameter`;
      else if (override && POSTBACK_FIELDS.includes(name as PostbackField) && name !== field) problems[path] ??= `"${name}" is Trackway's name for ${name}`;
      else if (claimed.has(name) && claimed.get(name) !== field) {
        const other = claimed.get(name)!;
        // Overrides come first: `other` is an override; this field is one too, or the preset's.
        if (override) problems[path] ??= `"${name}" is read for ${other} too`;
        else problems[`postback_format.params.${other}`] ??= `"${name}" is read for ${field} too (by the ${format.preset} preset; override ${field} as well)`;
      }
      if (!claimed.has(name)) claimed.set(name, field);
    }
  }
  const seen = new Map<string, string>();
  for (const value of Object.keys(format.status_values ?? {})) {
    const word = value.trim().toLowerCase();
    const path = `postback_format.status_values.${value}`;
    if (word === '__proto__') problems[path] ??= 'is not a status value';
    else if (seen.has(word)) problems[path] ??= `is "${seen.get(word)}" in another case: status values are read in any case`;
    seen.set(word, value);
  }
  return problems;
}

/**
 * A format with its preset filled in. A field's names are Trackway's own name for it (unless
 * the format reads that name for another field), then the override's or the preset's.
 * Status values: the override's over the preset's over the shared vocabulary (statusFor).
 */
export function resolveFormat(format: PostbackFormat | null | undefined): ResolvedFormat {
  const setting = format ?? { preset: 'trackway' };
  const preset = PRESETS[setting.preset];
  const lists = Object.fromEntries(POSTBACK_FIELDS.map((field) => [field, setting.params?.[field] ?? preset.params[field]])) as Record<
    PostbackField,
    readonly string[]
  >;
  const claimedElsewhere = (name: string, field: PostbackField) => POSTBACK_FIELDS.some((other) => other !== field && lists[other].includes(name));
  const names = Object.fromEntries(
    POSTBACK_FIELDS.map((field): [PostbackField, readonly string[]] => [
      field,
      [...new Set([...(claimedElsewhere(field, field) ? [] : [field]), ...lists[field]])],
    ]),
  ) as unknown as Record<PostbackField, readonly string[]>;
  // Own properties only (fromEntries, looked up with hasOwn): a status word such as
  // `constructor` or `__proto__` is no status.
  const statusValues = Object.fromEntries(
    Object.entries({ ...preset.status_values, ...setting.status_values }).map(([value, status]) => [value.trim().toLowerCase(), status]),
  );
  return {
    preset: setting.preset,
    names,
    readNames: new Set(['key', ...POSTBACK_FIELDS.flatMap((field) => names[field])]),
    statusValues,
    decimalComma: setting.decimal_comma ?? preset.decimal_comma,
    dedupe: setting.dedupe ?? preset.dedupe,
  };
}

/**
 * A stored postback_format, checked: the format, or why it is not one (a row written by hand,
 * or by a later version with a preset this one does not know). The api refuses such a format
 * on the way in; this guards the way out.
 */
export function readPostbackFormat(stored: unknown): { format: PostbackFormat | null; problem: string | null } {
  if (stored === null || stored === undefined) return { format: null, problem: null };
  const value = stored as Partial<PostbackFormat>;
  const strings = (list: unknown) => Array.isArray(list) && list.every((name) => typeof name === 'string');
  const problem =
    typeof stored !== 'object' || Array.isArray(stored)
      ? 'is not an object'
      : !PRESET_NAMES.includes(value.preset as PresetName)
        ? `has an unknown preset ${JSON.stringify(value.preset)}`
        : value.params !== undefined &&
            (typeof value.params !== 'object' ||
              !Object.entries(value.params).every(([field, names]) => POSTBACK_FIELDS.includes(field as PostbackField) && strings(names)))
          ? 'has params that are not lists of names per field'
          : value.status_values !== undefined &&
              (typeof value.status_values !== 'object' || !Object.values(value.status_values).every((s) => CONVERSION_STATUSES.includes(s as ConversionStatus)))
            ? 'has status_values that are not statuses'
            : (value.decimal_comma !== undefined && typeof value.decimal_comma !== 'boolean') ||
                (value.dedupe !== undefined && !DEDUPE_MODES.includes(value.dedupe))
              ? 'has a decimal_comma or dedupe that is not one'
              : (Object.values(postbackFormatProblems(value as PostbackFormat))[0] ?? null);
  return problem ? { format: null, problem } : { format: value as PostbackFormat, problem: null };
}

/** A status value as a conversion status: the format's values first, then the shared vocabulary; null when neither knows it. */
export function statusFor(value: string, format: ResolvedFormat): ConversionStatus | null {
  const word = value.trim().toLowerCase();
  if (Object.hasOwn(format.statusValues, word)) return format.statusValues[word];
  return Object.hasOwn(STATUS_VOCABULARY, word) ? STATUS_VOCABULARY[word] : null;
}

/** The status values a format understands, for an error message. */
export function statusWords(format: ResolvedFormat): string[] {
  return [...new Set([...Object.keys(STATUS_VOCABULARY), ...Object.keys(format.statusValues)])];
}

/**
 * An amount's text with a decimal comma made a point, when the format allows one (`12,50`).
 * Only a single comma between digits: `1.234,56` (a thousands separator too) stays as sent and
 * is refused as not a decimal number.
 */
export function withDecimalPoint(amount: string, format: ResolvedFormat): string {
  return format.decimalComma && /^\d+,\d+$/.test(amount) ? amount.replace(',', '.') : amount;
}

// A conversion deduplicated by its click (dedupe "click_id", no order reference sent) is stored
// under an order key no postback can send: order_id values never hold control characters.
const BY_CLICK = '\u001fclick:';

/** The order key of a postback with no order reference, under dedupe "click_id": one conversion per (advertiser, click, event). */
export function clickOrderKey(clickId: string): string {
  return `${BY_CLICK}${clickId}`;
}

/** The order_id a client sent for a stored order key: null for a conversion deduplicated by its click. */
export function sentOrderId(orderKey: string): string | null {
  return orderKey.startsWith(BY_CLICK) ? null : orderKey;
}
