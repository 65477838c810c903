import { CLICK_ID_PATTERN, EVENT_PATTERN, ORDER_ID_MAX, POSTBACK_FIELDS, PRESETS, PRESET_NAMES, type PostbackField, type PresetName } from '@trackway/domain';
import { INT_ID_MAX } from '@trackway/http';
import { z } from 'zod';
import { ids } from './representations';

/*
 * Ingest's /click and /postback (a second server in the document). Ingest reads its hot paths
 * by hand (no zod per request, see services/ingest/src/app.ts); these schemas document what it
 * takes and answers, and the tests hold its real answers to them. The postback's parameters are
 * built from the presets (PRESETS in @trackway/domain), never listed by hand: every name any
 * preset reads is a documented parameter saying which field it is read as, and under which
 * presets.
 */

/** What each of Trackway's postback fields is, and what it may hold (a name read for one field only is held to it). */
const FIELDS = {
  click_id: {
    schema: z.string().regex(CLICK_ID_PATTERN),
    description: 'The click ID Trackway put in the landing URL (URL-safe, at most 64).',
    example: 'AQAAAAEAAAAHZ0k2AJx1n3Qd8fV0m2Yc5Jk3a1Rw',
  },
  order_id: {
    schema: z.string().max(ORDER_ID_MAX),
    description:
      "The advertiser's order reference; with event, what makes a conversion unique. Optional where the advertiser's format deduplicates by click (dedupe click_id): then a postback without it is one conversion per click and event.",
    example: 'ORDER-1001',
  },
  amount: {
    schema: z.string(),
    description: 'Decimal, at most 14 digits before the point and 4 after (a decimal comma where the format allows one); absent: 0 for a new conversion.',
    example: '49.90',
  },
  currency: { schema: z.string(), description: "ISO 4217, any case; absent: the offer's currency.", example: 'USD' },
  status: {
    schema: z.string(),
    description:
      "approved (the default), pending or rejected, or a word trackers send for them (sale, lead, hold, declined, chargeback…, and the format's status_values), any case.",
    example: 'approved',
  },
  event: {
    schema: z.string().regex(EVENT_PATTERN),
    description: 'The conversion event: letters, digits, _ . : - (at most 64); default conversion.',
    example: 'conversion',
  },
} satisfies Record<PostbackField, { schema: z.ZodString; description: string; example: string }>;

const presetList = (presets: PresetName[]) => {
  const names = presets.map((p) => (p === 'trackway' ? 'trackway (the default, for an advertiser without a postback_format)' : p));
  return `${names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : names[0]} preset${names.length > 1 ? 's' : ''}`;
};

/** Every name a preset reads, with the field it is read as under each preset (in PRESETS' order). */
function presetParameterNames(): Map<string, Map<PostbackField, PresetName[]>> {
  const names = new Map<string, Map<PostbackField, PresetName[]>>();
  for (const preset of PRESET_NAMES) {
    for (const field of POSTBACK_FIELDS) {
      for (const name of PRESETS[preset].params[field]) {
        if ((POSTBACK_FIELDS as readonly string[]).includes(name)) continue; // Trackway's own names: read under every preset
        const fields = names.get(name) ?? new Map<PostbackField, PresetName[]>();
        fields.set(field, [...(fields.get(field) ?? []), preset]);
        names.set(name, fields);
      }
    }
  }
  return names;
}

/** The documented parameters of a postback: Trackway's six names, then every preset's names. */
function postbackParameters(amountInBody: boolean): Record<string, z.ZodType> {
  const params: Record<string, z.ZodType> = {};
  for (const field of POSTBACK_FIELDS) {
    const { schema, description, example } = FIELDS[field];
    const value = field === 'amount' && amountInBody ? z.union([schema, z.number()]) : schema;
    params[field] = value.optional().meta({ description: `${description} Trackway's own name: read under every preset.`, example });
  }
  for (const [name, fields] of presetParameterNames()) {
    const readAs = [...fields].map(([field, presets]) => `as ${field} by the ${presetList(presets)}`).join('; ');
    // A name read as one field is held to that field's rule; one read as different fields by different presets is text.
    const [only] = fields.size === 1 ? [...fields.keys()] : [undefined];
    const base = only ? FIELDS[only].schema : z.string();
    const value = only === 'amount' && amountInBody ? z.union([base, z.number()]) : base;
    params[name] = value.optional().meta({
      description: `Read ${readAs}.${only ? ` ${FIELDS[only].description}` : ''} Under another preset it is not read (and is listed in ignored_params), unless the advertiser's postback_format names it.`,
    });
  }
  return params;
}

const keyParam = z.string().meta({ description: 'The postback key (or the X-Postback-Key header).', example: 'pk_3xJ9yq0Z7C2hV5mN8pR1tW4bK6dF0gHs' });

export const PostbackQuery = z.object({ ...postbackParameters(false), key: keyParam.optional() });

export const PostbackBody = z.looseObject({ ...postbackParameters(true), key: keyParam.optional() }).meta({
  id: 'PostbackRequest',
  description:
    "The fields of a postback, in the body or the query string, under Trackway's names or the names of the advertiser's postback_format (its preset, and the names its params override). Nothing is required by the document: a postback needs a click ID and, unless the format deduplicates by click, an order ID, under any name read for them; a missing one is a 400 naming it. Names not read are reported in ignored_params. A JSON number (amount, or an order number) is read from the text it is written as: a plain decimal, never rounded; amount has at most 14 digits before the point and 4 after. A signed POST carries every field in its body.",
});

const header = (description: string, example: string) => z.string().optional().meta({ description, example });
export const PostbackHeaders = z.object({
  'x-postback-key': header('The postback key (instead of `key`).', 'pk_3xJ9yq0Z7C2hV5mN8pR1tW4bK6dF0gHs'),
  'webhook-id': header(
    'Standard Webhooks: a unique id for this postback (at most 256); a signed postback is accepted once.',
    'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
  ),
  'webhook-timestamp': header('Standard Webhooks: Unix seconds, within 5 minutes of now.', '1764238492'),
  'webhook-signature': header(
    "Standard Webhooks: v1,<base64 HMAC-SHA256> of `id.timestamp.payload` (GET: the query string as sent; POST: the body's bytes) with the advertiser's signing secret.",
    'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
  ),
});
export const PostbackKeyPath = z.object({ key: keyParam });
export const PostbackAccepted = z
  .strictObject({
    postback_id: ids.postback,
    status: z.literal('queued'),
    ignored_params: z
      .array(z.string())
      .meta({ description: 'Names of the parameters Trackway did not read (kept on the postback), as sent.', example: ['sum', 'et'] }),
  })
  .meta({ id: 'PostbackAccepted', description: 'The postback is durably queued; GET /v1/postbacks/{postback_id} tells its outcome.' });

const clickIntId = (description: string, example: number) => z.int().min(1).max(INT_ID_MAX).meta({ description, example });
export const ClickQuery = z.object({
  offer_id: clickIntId('The offer.', 1),
  affiliate_id: clickIntId('The affiliate sending the traffic.', 7),
  ...Object.fromEntries(
    ['sub1', 'sub2', 'sub3', 'sub4', 'sub5'].map((name) => [
      name,
      z
        .string()
        .max(255)
        .optional()
        .meta({ description: `The affiliate's own value, passed to the destination's {${name}} (at most 255).` }),
    ]),
  ),
});
