// Fuzzing ingest (issue 8 §4): generated requests against the real app on a real local port, with
// a real Postgres schema and Redis prefix. Every answer is a 2xx/3xx or a 4xx with the envelope,
// never ≥ 500; what must be refused is refused; a 202 queued what was sent; the server still
// answers /healthz and logs no error; nothing escapes to the process.
import { isUtf8 } from 'node:buffer';
import { findQueuedPostback } from '@trackway/queues';
import { type Fixture, createFixture } from '@trackway/testing';
import fc from 'fast-check';
import { POSTBACK_ALIASES } from '../services/ingest/src/postback-input';
import { createSecretBox } from '@trackway/domain';
import { generateSecret } from '@trackway/webhooks';
import { type IngestHarness, SECRETS_KEY, startIngest } from '../services/ingest/test/helpers';
import {
  CONTENT_ENCODINGS,
  CONTENT_TYPES,
  type FuzzRequest,
  type Refusal,
  type Served,
  type UrlEncoding,
  createClient,
  encodeBody,
  encodeComponent,
  fuzzInBatches,
  hostileBytes,
  hostileString,
  oddJsonText,
  rawRequest,
  readableText,
  serve,
  urlEncoding,
  writesOverlong,
} from './support/fuzz';

const RUNS = Number(process.env.FUZZ_RUNS ?? 600); // FUZZ_RUNS: fewer, while debugging a failure
const BATCH = 20;
const TOTAL = RUNS * BATCH; // 12,000 generated requests

let h: IngestHarness;
let fx: Fixture;
let inactive: Fixture;
let served: Served;
let client: ReturnType<typeof createClient>;
let clickIds: string[];

beforeAll(async () => {
  // AUTH_FAILURE_LIMIT off: thousands of bad keys come from one address here (the limiter has tests of its own).
  h = await startIngest({ frontDoor: { authFailureLimit: 1_000_000 } });
  fx = await createFixture(h.db.prisma, { destinationUrl: 'https://shop.example/land?c={click_id}&s={sub1}&t={sub2}' });
  // A signing secret (not required): postbacks carrying webhook-* headers reach the verification.
  await h.db.prisma.advertiser.update({ where: { id: fx.advertiserId }, data: { signingSecretSealed: createSecretBox(SECRETS_KEY).seal(generateSecret()) } });
  inactive = await createFixture(h.db.prisma);
  await h.db.prisma.advertiser.update({ where: { id: inactive.advertiserId }, data: { status: 'inactive' } });
  await h.db.prisma.offer.update({ where: { id: inactive.offerId }, data: { status: 'inactive' } });
  clickIds = [
    h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId }),
    h.clickIds.issue({ offerId: 1, affiliateId: 1, clickedAt: new Date(0) }),
    h.clickIds.issue({ offerId: 0xffffffff, affiliateId: 0xffffffff }),
  ];
  served = await serve(h.app);
  client = createClient(served, { connections: 8 });
}, 60_000);

afterAll(async () => {
  await client?.close();
  await served?.close();
  await h?.close();
});

// ---------------------------------------------------------------------------------------------
// Postbacks built field by field, so the test knows what must be refused and what a 202 must queue.

type Field = Exclude<keyof typeof POSTBACK_ALIASES, 'key'>;
const FIELDS = Object.keys(POSTBACK_ALIASES).filter((f) => f !== 'key') as Field[];
const namesOf = (field: Field) => [field, ...POSTBACK_ALIASES[field]];

/** A value as the client means it: bytes of text (maybe not UTF-8), a JSON number, or a JSON literal. */
type Value = { bytes: Buffer } | { number: number } | { literal: string; refuse?: string };

interface Param {
  name: string;
  value: Value;
  how: UrlEncoding;
  /** A canonical field this name stands for, when it is one (name or alias). */
  field?: Field | 'key';
}

const text = (s: string): Value => ({ bytes: Buffer.from(s, 'utf8') });

const UNKNOWN_NAMES = [
  'api_key',
  'token',
  'secret',
  'a[b]',
  'order_id[]',
  'order_id[$ne]',
  'click_id.x',
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  'KEY',
  'Key',
  'key ',
  ' key',
  'ORDER_ID',
  'sub1',
  'aff_sub',
  'x',
  '',
  '[]',
  '=',
  '&',
  'é',
  '\u0000',
];

const money = fc.oneof(
  fc
    .tuple(fc.bigInt({ min: 0n, max: 10n ** 14n - 1n }), fc.option(fc.integer({ min: 0, max: 9999 })))
    .map(([i, f]) => (f === null ? `${i}` : `${i}.${String(f).padStart(4, '0').replace(/0+$/, '') || '0'}`)),
  fc.constantFrom('0', '0.0', '00049.90', '49.90', '99999999999999.9999', '100000000000000', '-1', '1e3', '1.23456', ' 5 ', '5,00'),
);

const JSON_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json;charset=UTF-8',
  'APPLICATION/JSON',
  'application/json; charset="utf-8"',
  'application/vnd.api+json',
];
const FORM_TYPES = ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded; charset=utf-8'];

const bytes = (arb: fc.Arbitrary<Buffer>): fc.Arbitrary<Value> => arb.map((b) => ({ bytes: b }));
const JSON_LITERALS: Value[] = [
  { literal: '"A\\ud800"', refuse: 'a lone surrogate in a JSON string' },
  { literal: '"\\udfff"', refuse: 'a lone surrogate in a JSON string' },
  { literal: 'true' },
  { literal: 'false' },
  { literal: '{}' },
  { literal: '{"a":1}' },
  { literal: '[]' },
  { literal: '[1,2]' },
  { literal: 'null' },
  { literal: '"\\u0000"' },
  { literal: '1e400' },
  { literal: '-0' },
];

/** Numbers as clients get them wrong: signs, exponents, separators, other digits, too many digits. */
const numberish = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '-0.0',
      '1e3',
      '1E3',
      '1e-7',
      '0x10',
      '0b1',
      '0o7',
      '1,5',
      '1 000',
      '١٢',
      '１２',
      '²',
      '+1',
      '.5',
      '5.',
      '00.0',
      '-1',
      '- 1',
      '1-',
      '..1',
      '1..2',
      '9'.repeat(15),
      `${'9'.repeat(14)}.99999`,
      `${'9'.repeat(15)}.9`,
      '100000000000000',
      '0.00001',
      '1.23456',
      ' 5 ',
      '\t5',
      '5\u0000',
      '5%',
      '$5',
      '€5',
      '5 EUR',
    ),
  },
  fc.double().map(String),
  fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map(String),
  fc.tuple(fc.nat(), fc.nat()).map(([i, f]) => `${i}.${f}`),
  fc.tuple(fc.constantFrom('', '-', '+', ' ', '0'), money, fc.constantFrom('', ' ', 'e3', '.0', '%', '.', '\u00a0')).map(([a, m, b]) => `${a}${m}${b}`),
);

/** Hostile values, field by field: near misses of what each field takes, then anything at all. */
const hostileValueOf: Record<Field, fc.Arbitrary<Value>> = {
  click_id: fc.oneof(
    fc.tuple(fc.integer({ min: 0, max: 2 }), fc.nat(), fc.constantFrom('flip', 'cut', 'grow', 'case', 'pad')).map(([i, at, how]) => {
      const id = clickIds[i];
      const k = at % id.length;
      const mutated =
        how === 'flip'
          ? `${id.slice(0, k)}${id[k] === 'A' ? 'B' : 'A'}${id.slice(k + 1)}`
          : how === 'cut'
            ? id.slice(0, k)
            : how === 'grow'
              ? `${id}${'A'.repeat(k)}`
              : how === 'case'
                ? id.toLowerCase()
                : `${id}==`;
      return text(mutated);
    }),
    fc.stringMatching(/^[A-Za-z0-9_-]{0,70}$/).map(text),
    fc.constantFrom('{click_id}', '{clickid}', '${click_id}', '%7Bclick_id%7D', '[click_id]').map(text),
    bytes(hostileBytes),
  ),
  order_id: fc.oneof(
    bytes(hostileBytes),
    fc.integer().map((number) => ({ number })),
    fc.constantFrom(...JSON_LITERALS),
    fc.integer({ min: 250, max: 260 }).map((n) => text('x'.repeat(n))),
    fc.constantFrom('a\u0000b', 'a\rb', 'a\nb', 'a\tb', '\u007f', ' ', '\u00a0', '\ufeff').map(text),
  ),
  amount: fc.oneof(
    { weight: 4, arbitrary: numberish.map(text) },
    { weight: 1, arbitrary: fc.double().map((number) => ({ number })) },
    { weight: 1, arbitrary: bytes(hostileBytes) },
    { weight: 1, arbitrary: fc.constantFrom(...JSON_LITERALS) },
  ),
  currency: fc.oneof(
    fc.stringMatching(/^[A-Za-z]{0,5}$/).map(text),
    fc.constantFrom(' usd ', 'US D', 'usd\u0000', 'ＵＳＤ', 'XXX', 'XTS').map(text),
    bytes(hostileBytes),
    fc.constantFrom(...JSON_LITERALS),
  ),
  status: fc.oneof(
    fc
      .tuple(fc.constantFrom('approved', 'pending', 'rejected'), fc.array(fc.boolean(), { maxLength: 8 }))
      .map(([w, up]) => text([...w].map((c, i) => (up[i] ? c.toUpperCase() : c)).join(''))),
    fc.constantFrom('paid', 'approve', 'approved ', ' pending', 'approved\u0000', 'rejected,approved', '1', '0', 'APPROVED\u0130').map(text),
    bytes(hostileBytes),
    fc.constantFrom(...JSON_LITERALS),
  ),
  event: fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.:\- ]{0,70}$/).map(text), bytes(hostileBytes), fc.constantFrom(...JSON_LITERALS)),
};

type Transport = 'get' | 'post-query' | 'post-json' | 'post-form' | 'post-split';
type KeyAt = 'param' | 'header' | 'both-same' | 'both-different' | 'path' | 'none';

const keyValue = fc.oneof(
  { weight: 10, arbitrary: fc.constant('valid') },
  { weight: 1, arbitrary: fc.constant('inactive') },
  { weight: 1, arbitrary: fc.stringMatching(/^pk_[A-Za-z0-9_-]{32}$/) },
  { weight: 1, arbitrary: hostileString.filter((s) => /^[\t\x20-\x7e\x80-\xff]*$/.test(s)) },
);
const resolveKey = (k: string) => (k === 'valid' ? fx.postbackKey : k === 'inactive' ? inactive.postbackKey : k);

const CLEAN_TEXT = [
  'Müller-7',
  'café',
  'ORDER 1',
  'a+b',
  'a&b=c',
  '50%',
  '#1',
  '日本語-1',
  '🙂',
  'x'.repeat(255),
  "O'Brien",
  '<b>',
  '/a/b?c',
  'Ünïcödé',
  'a=b',
  '?',
  '~',
];

/** Values a well-integrated advertiser sends: still every script, space, symbol and encoding. */
const cleanValueOf: Record<Field, fc.Arbitrary<Value>> = {
  click_id: fc.integer({ min: 0, max: 2 }).map((i) => text(clickIds[i])),
  order_id: fc
    .oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), fc.constantFrom(...CLEAN_TEXT))
    .map(text),
  amount: money.filter((m) => /^\d{1,14}(\.\d{1,4})?$/.test(m)).map(text),
  currency: fc.constantFrom('USD', 'usd', 'EUR', 'JPY').map(text),
  status: fc.constantFrom('approved', 'pending', 'rejected', 'APPROVED').map(text),
  event: fc.constantFrom('sale', 'lead', 'conversion', 'sign:up', 'a.b-c_d').map(text),
};
const cleanEncoding = fc.constantFrom<UrlEncoding>('percent', 'percent-lower', 'plus', 'raw', 'double');

const fieldsOf = (values: Record<Field, fc.Arbitrary<Value>>, how: fc.Arbitrary<UrlEncoding>, presence: (f: Field) => number) =>
  fc.record(
    Object.fromEntries(FIELDS.map((f) => [f, fc.option(fc.record({ alias: fc.nat(), value: values[f], how }), { freq: presence(f) })])) as Record<
      Field,
      fc.Arbitrary<{ alias: number; value: Value; how: UrlEncoding } | null>
    >,
    { requiredKeys: FIELDS },
  );

/** Clean fields but one, the target, which gets hostile values (so the request gets as far as that field's check); or every field mixed. */
const hostileFields = fc
  .record({
    target: fc.constantFrom<Field | 'all'>(...FIELDS, 'all'),
    clean: fieldsOf(cleanValueOf, cleanEncoding, (f) => (f === 'click_id' || f === 'order_id' ? Number.MAX_SAFE_INTEGER : 2)),
    hostile: fieldsOf(hostileValueOf, urlEncoding, () => 10),
    mixed: fieldsOf(
      Object.fromEntries(FIELDS.map((f) => [f, fc.oneof(cleanValueOf[f], hostileValueOf[f])])) as Record<Field, fc.Arbitrary<Value>>,
      urlEncoding,
      (f) => (f === 'click_id' || f === 'order_id' ? 10 : 2),
    ),
  })
  .map(({ target, clean, hostile, mixed }) => (target === 'all' ? mixed : { ...clean, [target]: hostile[target] }));

const hostilePostback = fc.record({
  fields: hostileFields,
  duplicate: fc.option(fc.record({ field: fc.constantFrom(...FIELDS), alias: fc.nat(), same: fc.boolean() }), { freq: 6 }),
  extras: fc.array(fc.record({ name: fc.oneof(fc.constantFrom(...UNKNOWN_NAMES), fc.string({ maxLength: 12 })), value: hostileBytes, how: urlEncoding }), {
    maxLength: 4,
  }),
  keyAt: fc.constantFrom<KeyAt>('param', 'param', 'header', 'header', 'both-same', 'both-different', 'path', 'none'),
  key: keyValue,
  otherKey: keyValue,
  transport: fc.constantFrom<Transport>('get', 'get', 'post-query', 'post-json', 'post-json', 'post-form', 'post-split'),
  contentType: fc.oneof({ weight: 8, arbitrary: fc.constant<string | null>(null) }, { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES) }),
  encoding: fc.oneof({ weight: 8, arbitrary: fc.constant<string | null>(null) }, { weight: 2, arbitrary: fc.constantFrom(...CONTENT_ENCODINGS) }),
  lie: fc.boolean(),
  jsonEscapes: fc.boolean(),
  order: fc.nat(),
  breakAt: fc.nat(),
  filler: fc.oneof({ weight: 20, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(199, 200, 201, 990, 1_000, 1_001, 1_200, 2_500) }),
  // A body around the 16 KiB limit.
  pad: fc.oneof({ weight: 15, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 16 * 1024 - 200, max: 48 * 1024 }) }),
  path: fc.constantFrom('/postback', '/postback', '/postback', '/postback/', '/POSTBACK', '/Postback/'),
});

/** A postback that should be accepted: only its values' scripts and encodings vary (a 202 must queue them as sent). */
const cleanPostback = fc.record({
  fields: fieldsOf(cleanValueOf, cleanEncoding, (f) => (f === 'click_id' || f === 'order_id' ? Number.MAX_SAFE_INTEGER : 2)),
  duplicate: fc.constant(null),
  extras: fc.array(
    fc.record({
      name: fc.constantFrom('sub1', 'aff_sub', 'utm_source', 'x'),
      value: fc.string({ maxLength: 12 }).map((v) => Buffer.from(v)),
      how: cleanEncoding,
    }),
    { maxLength: 3 },
  ),
  keyAt: fc.constantFrom<KeyAt>('param', 'header', 'both-same', 'path'),
  key: fc.constant('valid'),
  otherKey: fc.constant('valid'),
  transport: fc.constantFrom<Transport>('get', 'post-query', 'post-json', 'post-form', 'post-split'),
  contentType: fc.constantFrom<string | null>(null, null, null, 'application/json; charset=utf-8'),
  encoding: fc.constantFrom<string | null>(null, null, null, null, 'gzip', 'deflate', 'br'),
  lie: fc.constant(false),
  jsonEscapes: fc.boolean(),
  order: fc.nat(),
  breakAt: fc.nat(),
  filler: fc.constant(0),
  pad: fc.constant(0),
  path: fc.constantFrom('/postback', '/postback/', '/POSTBACK'),
});

const postbackArb: fc.Arbitrary<FuzzRequest> = fc.oneof(cleanPostback, hostilePostback).map((g) => {
  const params: Param[] = [];
  for (const field of FIELDS) {
    const f = g.fields[field];
    if (!f) continue;
    const names = namesOf(field);
    params.push({ name: names[f.alias % names.length], value: f.value, how: f.how, field });
  }
  const refuse: Refusal[] = [];
  if (g.duplicate && g.fields[g.duplicate.field]) {
    const field = g.duplicate.field;
    const first = params.find((p) => p.field === field)!;
    const names = namesOf(field);
    const name = names[g.duplicate.alias % names.length];
    // A deliberate duplicate: the very same value, or one that surely differs.
    params.push(g.duplicate.same ? { ...first, name } : { name, value: text(`DUP-${field}-${g.duplicate.alias}`), how: 'percent', field });
  }
  for (const e of g.extras) params.push({ name: e.name, value: { bytes: e.value }, how: e.how });
  // Rotate the order: where a field comes in the request must not matter.
  const rotated = params.length === 0 ? params : [...params.slice(g.order % params.length), ...params.slice(0, g.order % params.length)];

  const key = resolveKey(g.key);
  const otherKey = g.keyAt === 'both-same' ? key : resolveKey(g.otherKey);
  const keyParam = g.keyAt === 'param' ? key : g.keyAt === 'both-same' || g.keyAt === 'both-different' ? otherKey : undefined;
  const keyHeader = g.keyAt === 'header' || g.keyAt === 'both-same' || g.keyAt === 'both-different' ? key : undefined;
  // /postback/{key}: the key as a path segment, percent-encoded.
  const keyPath = g.keyAt === 'path' ? key : undefined;
  if (keyParam !== undefined) rotated.push({ name: 'key', value: text(keyParam), how: 'percent', field: 'key' });

  // Which params travel in the query and which in the body.
  const inBody = (i: number) => g.transport === 'post-json' || g.transport === 'post-form' || (g.transport === 'post-split' && i % 2 === 1);
  const queryParams = rotated.filter((_, i) => !inBody(i));
  const bodyParams = rotated.filter((_, i) => inBody(i));
  const bodyKind = g.transport === 'post-form' ? 'form' : g.transport === 'post-json' || g.transport === 'post-split' ? 'json' : null;

  if (g.pad > 0) bodyParams.push({ name: 'pad', value: { bytes: Buffer.alloc(g.pad, 'x') }, how: 'percent' });
  const queryPairs = queryParams.map(
    (p) => `${encodeComponent(Buffer.from(p.name), p.how === 'raw' ? 'raw' : 'percent')}=${encodeComponent(valueBytes(p.value), p.how, g.breakAt)}`,
  );
  // Many parameters: in the form body when there is one (past 200 it is refused), else in the query.
  if (bodyKind === 'form') for (let i = 0; i < g.filler; i++) bodyParams.push({ name: `f${i}`, value: { bytes: Buffer.alloc(0) }, how: 'percent' });
  else for (let i = 0; i < g.filler; i++) queryPairs.push(`f${i}=`);
  const query = queryPairs.join('&');
  const base = keyPath === undefined ? g.path : `${g.path.replace(/\/$/, '')}/${encodeURIComponent(keyPath)}`;
  const path = query ? `${base}?${query}` : base;

  const headers: Record<string, string> = {};
  if (keyHeader !== undefined) headers['x-postback-key'] = keyHeader;
  let body: Buffer | undefined;
  let contentType: string | undefined;
  if (bodyKind === 'json') {
    body = jsonBody(bodyParams, g.jsonEscapes);
    contentType = g.contentType ?? 'application/json';
  } else if (bodyKind === 'form') {
    body = Buffer.from(
      bodyParams.map((p) => `${encodeComponent(Buffer.from(p.name), 'percent')}=${encodeComponent(valueBytes(p.value), p.how, g.breakAt)}`).join('&'),
      'latin1',
    );
    contentType = g.contentType ?? 'application/x-www-form-urlencoded';
  }
  if (body && contentType !== undefined) headers['content-type'] = contentType;
  if (body && g.encoding !== null) {
    headers['content-encoding'] = g.encoding;
    body = encodeBody(body, g.encoding, g.lie);
  }
  const method = g.transport === 'get' ? 'GET' : 'POST';

  // Where the server reads each param: the query always; the body only when its type and
  // encoding are ones the server decodes (else it is refused, or read as something else).
  const bodyRead =
    (contentType === undefined || (bodyKind === 'json' ? JSON_TYPES : FORM_TYPES).includes(contentType)) &&
    (g.encoding === null || (!g.lie && ['identity', 'gzip', 'deflate'].includes(g.encoding)));
  const readAs = (p: Param): 'query' | 'json' | 'form' | null => (!inBody(rotated.indexOf(p)) ? 'query' : bodyRead ? bodyKind : null);

  // What must be refused, whatever else is wrong with the request.
  // Node trims header values; an empty header is no header.
  const header = keyHeader?.trim() || undefined;
  const validKey = header ? header === fx.postbackKey : keyPath !== undefined ? keyPath === fx.postbackKey : keyParam === fx.postbackKey;
  if (!validKey) refuse.push({ why: 'no valid, active postback key' });
  if (header && keyParam && header !== keyParam) refuse.push({ why: 'X-Postback-Key and key differ' });
  if (!g.fields.order_id) refuse.push({ why: 'order_id is missing' });
  if (!g.fields.click_id) refuse.push({ why: 'click_id is missing' });
  if (queryPairs.length > 1_000) refuse.push({ why: `${queryPairs.length} query parameters (past the 1,000th are dropped)` });
  // In JSON the last of two equal names wins (JSON.parse): the first is never read.
  const shadowed = (p: Param) => readAs(p) === 'json' && rotated.slice(rotated.indexOf(p) + 1).some((q) => q.name === p.name && readAs(q) === 'json');
  for (const p of rotated) {
    if (!p.field || p.field === 'key') continue;
    const where = readAs(p);
    if (!where || shadowed(p)) continue;
    const read = readsAs(p, where);
    if (read && !isUtf8(read)) refuse.push({ why: `${p.name} is not UTF-8` });
    if ('literal' in p.value && p.value.refuse && where === 'json') refuse.push({ why: `${p.name}: ${p.value.refuse}` });
  }
  if (g.duplicate && g.fields[g.duplicate.field]) {
    const both = rotated.filter((p) => p.field === g.duplicate!.field);
    const where = both.map(readAs);
    if (where.every((w) => w !== null)) {
      if (!g.duplicate.same) {
        const inJson = where.every((w) => w === 'json') && both[0].name === both[1].name;
        refuse.push(
          inJson ? { why: `${both[0].name} twice in the JSON body with different values` } : { why: `${g.duplicate.field} given twice with different values` },
        );
      } else if (both[0].name === both[1].name && where[0] === where[1] && where[0] !== 'json') {
        // The same name twice in one query string (or form body) is refused even with equal values.
        refuse.push({ why: `${both[0].name} twice in one ${where[0]}` });
      }
    }
  }

  // What a 202 must have queued: each field as sent (trimmed, but order_id, which is taken
  // exactly; the event in its one, lower-case form), when the test can say what was meant.
  const faithful: Record<string, string> = {};
  const intended = (field: Field) => {
    const p = rotated.find((q) => q.field === field);
    const where = p && readAs(p);
    if (!p || !where) return undefined;
    if ('number' in p.value) return where === 'json' ? String(p.value.number) : undefined;
    if ('literal' in p.value) return undefined;
    if (where === 'json') return readableText(p.value.bytes) ?? undefined;
    if (p.how === 'broken' || p.how === 'overlong') return undefined;
    // Encoded twice, decoded once: the server reads the once-encoded text.
    if (p.how === 'double') return encodeComponent(p.value.bytes, 'percent');
    return readableText(p.value.bytes) ?? undefined;
  };
  for (const [field, as] of [
    ['click_id', 'clickId'],
    ['order_id', 'orderId'],
    ['event', 'event'],
  ] as const) {
    const value = intended(field);
    // An empty value is no value (the field's default applies).
    if (value === undefined || value === '') continue;
    if (field === 'order_id' && value.trim() !== value) refuse.push({ why: 'white space around order_id' });
    faithful[as] = field === 'order_id' ? value : field === 'event' ? value.trim().toLowerCase() : value.trim();
  }
  const req: FuzzRequest = { kind: `postback:${g.transport}`, method, path, headers, body, refuse, faithful };
  return req;
});

function valueBytes(value: Value): Buffer {
  if ('bytes' in value) return value.bytes;
  if ('number' in value) return Buffer.from(String(value.number));
  return Buffer.from(value.literal);
}

/** The bytes a server reads for a param: the query or form decoding of what was written, or the JSON string's bytes. */
function readsAs(p: Param, where: 'query' | 'form' | 'json' | null): Buffer | null {
  if (!('bytes' in p.value)) return null;
  if (where === 'json') return p.value.bytes;
  if (p.how === 'broken' || p.how === 'double') return null;
  if (p.how === 'overlong' && writesOverlong(p.value.bytes)) return Buffer.from([0xc0]); // overlong forms are never UTF-8
  return p.value.bytes;
}

/** A JSON object written by hand: duplicate names kept, strings with raw bytes (maybe not UTF-8) or \u escapes. */
function jsonBody(params: Param[], escapes: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const p of params) {
    let value: Buffer;
    if ('number' in p.value) value = Buffer.from(JSON.stringify(p.value.number) ?? 'null');
    else if ('literal' in p.value) value = Buffer.from(p.value.literal);
    else value = jsonString(p.value.bytes, escapes);
    parts.push(Buffer.concat([Buffer.from(`${JSON.stringify(p.name)}:`), value]));
  }
  return Buffer.concat([Buffer.from('{'), ...parts.flatMap((part, i) => (i === 0 ? [part] : [Buffer.from(','), part])), Buffer.from('}')]);
}

function jsonString(bytes: Buffer, escapes: boolean): Buffer {
  if (isUtf8(bytes)) {
    const s = JSON.stringify(bytes.toString('utf8'));
    return Buffer.from(escapes ? s.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) : s, 'utf8');
  }
  // Not UTF-8: the bytes go in raw, only quote, backslash and control bytes escaped.
  const out: number[] = [0x22];
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c) out.push(0x5c, b);
    else if (b < 0x20) out.push(...Buffer.from(`\\u${b.toString(16).padStart(4, '0')}`));
    else out.push(b);
  }
  out.push(0x22);
  return Buffer.from(out);
}

// ---------------------------------------------------------------------------------------------
// Clicks: ids, sub values with every encoding, repeated names; a 302 carries the subs as sent.

const clickArb: fc.Arbitrary<FuzzRequest> = fc
  .record({
    offer: fc.oneof(
      { weight: 6, arbitrary: fc.constant('valid') },
      { weight: 1, arbitrary: fc.constant('inactive') },
      { weight: 2, arbitrary: fc.constantFrom('0', '-1', '1.5', '2147483647', '2147483648', '99999999999', '1e3', '0x1', ' 1', '01', 'abc', '') },
      { weight: 1, arbitrary: hostileString },
    ),
    affiliate: fc.oneof(
      { weight: 6, arbitrary: fc.constant('valid') },
      { weight: 1, arbitrary: fc.constant('inactive') },
      { weight: 1, arbitrary: hostileString },
    ),
    subs: fc.array(
      fc.record({
        n: fc.integer({ min: 1, max: 5 }),
        value: fc.oneof(
          fc.oneof(fc.constantFrom(...CLEAN_TEXT), fc.string({ unit: 'grapheme', maxLength: 20 })).map((t) => Buffer.from(t)),
          hostileBytes,
        ),
        how: urlEncoding,
      }),
      { maxLength: 4 },
    ),
    repeat: fc.constantFrom('', '', '', '', 'offer_id', 'sub1'),
    method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD'),
    filler: fc.oneof({ weight: 20, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1_000, 1_001, 2_000) }),
    path: fc.constantFrom('/click', '/click', '/click/', '/CLICK', '/Click'),
    breakAt: fc.nat(),
  })
  .map((g) => {
    const offer = g.offer === 'valid' ? String(fx.offerId) : g.offer === 'inactive' ? String(inactive.offerId) : g.offer;
    const affiliate = g.affiliate === 'valid' ? String(fx.affiliateId) : g.affiliate === 'inactive' ? String(inactive.affiliateId) : g.affiliate;
    const pairs = [`offer_id=${encodeComponent(Buffer.from(offer), 'percent')}`, `affiliate_id=${encodeComponent(Buffer.from(affiliate), 'percent')}`];
    const refuse: Refusal[] = [];
    const seen = new Set<number>();
    for (const s of g.subs) {
      pairs.push(`sub${s.n}=${encodeComponent(s.value, s.how, g.breakAt)}`);
      // An empty value is no value: sub1=&sub1=x is not a repeat.
      if (seen.has(s.n) && s.value.length > 0) refuse.push({ why: `sub${s.n} given twice` });
      seen.add(s.n);
      const bytes = s.how === 'broken' || s.how === 'double' ? null : s.how === 'overlong' && writesOverlong(s.value) ? Buffer.from([0xc0]) : s.value;
      if (bytes && !isUtf8(bytes)) refuse.push({ why: `sub${s.n} is not UTF-8` });
    }
    if (g.repeat === 'offer_id') pairs.push(`offer_id=${encodeComponent(Buffer.from(offer), 'percent')}`);
    if (g.repeat === 'sub1') pairs.push('sub1=a', 'sub1=b');
    if (g.repeat) refuse.push({ why: `${g.repeat} given twice` });
    for (let i = 0; i < g.filler; i++) pairs.push(`f${i}=`);
    if (pairs.length > 1_000) refuse.push({ why: `${pairs.length} query parameters (past the 1,000th are dropped)` });
    const activeAffiliates = [String(fx.affiliateId), String(inactive.affiliateId)];
    if (offer !== String(fx.offerId) || !activeAffiliates.includes(affiliate)) refuse.push({ why: 'no active offer and affiliate with these ids' });
    // The destination carries sub1 and sub2 as `s` and `t`: a 302 must carry them as sent.
    const faithful: Record<string, string> = {};
    for (const n of [1, 2]) {
      const s = g.subs.find((x) => x.n === n);
      if (s && (s.how === 'percent' || s.how === 'percent-lower' || s.how === 'plus' || s.how === 'raw')) {
        const t = readableText(s.value);
        if (t !== null) faithful[n === 1 ? 's' : 't'] = t;
      }
    }
    return { kind: 'click', method: g.method, path: `${g.path}?${pairs.join('&')}`, headers: {}, refuse, faithful } satisfies FuzzRequest;
  });

// ---------------------------------------------------------------------------------------------
// Everything else: any method, path, header and body, with no expectation beyond the universal ones.

const latin1Value = fc.oneof(hostileString, fc.string({ unit: 'binary', maxLength: 20 })).map((s) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?'));

const PATHS = [
  '/postback',
  '/click',
  '/postback/',
  '//postback',
  '/postback//',
  '/postback/x',
  '/postback;a=b',
  '/postback%2F',
  '/%70ostback',
  '/post%62ack',
  '/postback.json',
  '/postback%00',
  '/healthz',
  '/readyz',
  '/metrics',
  '/metrics/',
  '/',
  '/nope',
  '/%',
  '/%zz',
  '/%00',
  '/%C0%AE%C0%AE/%C0%AE%C0%AE/etc/passwd',
  '/..%2f..%2fetc%2fpasswd',
  '/./postback',
  '/a/../postback',
  '/\u00e9',
  '/\u00ff\u00fe',
  '/%FF',
  '/click%3Foffer_id=1',
  'http://x/postback',
  'http://127.0.0.1/click',
  'https://evil.example/postback',
  'http://[::1]:99999/metrics',
  '/admin/queues',
  '/v1/advertisers',
];

const headerArb = fc.dictionary(
  fc.oneof(
    fc.constantFrom(
      'content-type',
      'content-encoding',
      'x-postback-key',
      'authorization',
      'webhook-id',
      'webhook-timestamp',
      'webhook-signature',
      'accept',
      'accept-encoding',
      'accept-charset',
      'x-forwarded-for',
      'forwarded',
      'x-real-ip',
      'cookie',
      'user-agent',
      'referer',
      'origin',
      'x-http-method-override',
      'range',
      'if-none-match',
      'content-language',
    ),
    fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,20}$/),
  ),
  fc.oneof(
    latin1Value,
    fc.constantFrom(
      ...CONTENT_TYPES.filter((c) => /^[\t\x20-\x7e\x80-\xff]*$/.test(c)),
      ...CONTENT_ENCODINGS,
      'v1,AAAA',
      `v1,${'A'.repeat(44)}`,
      'v1a,xx v1,yy',
      '1700000000',
      '-1',
      '99999999999999999999',
      'msg_x',
      '1.2.3.4',
      '::1, 10.0.0.1',
      'unknown',
      'for="[::1]";proto=https',
    ),
    fc.integer({ min: 1_000, max: 12_000 }).map((n) => 'a'.repeat(n)),
  ),
  { maxKeys: 6 },
);

const bodyArb: fc.Arbitrary<Buffer | undefined> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: oddJsonText.map((s) => Buffer.from(s, 'utf8')) },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.tuple(fc.oneof(fc.constantFrom(...UNKNOWN_NAMES, 'click_id', 'order_id', 'key'), fc.string({ maxLength: 8 })), hostileBytes, urlEncoding), {
        maxLength: 8,
      })
      .map((pairs) => Buffer.from(pairs.map(([n, v, how]) => `${encodeComponent(Buffer.from(n), 'percent')}=${encodeComponent(v, how)}`).join('&'), 'latin1')),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.integer({ min: 16 * 1024 - 8, max: 40 * 1024 }).map((n) => Buffer.from(`{"order_id":"${'x'.repeat(n)}"}`)) },
  { weight: 1, arbitrary: fc.integer({ min: 150, max: 400 }).map((n) => Buffer.from(Array.from({ length: n }, (_, i) => `p${i}=${i}`).join('&'))) },
);

const queryArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  {
    weight: 4,
    arbitrary: fc
      .array(
        fc.tuple(
          fc.oneof(fc.constantFrom(...UNKNOWN_NAMES, ...FIELDS, 'key', 'offer_id', 'affiliate_id', 'sub1'), fc.string({ maxLength: 10 })),
          hostileBytes,
          urlEncoding,
        ),
        { maxLength: 10 },
      )
      .map((pairs) => pairs.map(([n, v, how]) => `${encodeComponent(Buffer.from(n), how)}=${encodeComponent(v, how)}`).join('&')),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom('&&&', '=', '==', '&=&', 'a', 'a=1=2', ';a=1', '?a=1', '#frag', '%', 'a%=b', 'key', 'key=', `key=${'%00'.repeat(50)}`),
  },
  { weight: 1, arbitrary: fc.integer({ min: 900, max: 4_000 }).map((n) => Array.from({ length: n }, () => 'a=1').join('&')) },
);

const chaosArb: fc.Arbitrary<FuzzRequest> = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'POST', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'get', 'Post', 'FOO', 'M-SEARCH', 'PURGE'),
    path: fc.constantFrom(...PATHS),
    query: queryArb,
    headers: headerArb,
    body: bodyArb,
    encoding: fc.option(fc.tuple(fc.constantFrom(...CONTENT_ENCODINGS), fc.boolean())),
    validKey: fc.boolean(),
  })
  .map((g) => {
    const headers = { ...g.headers };
    if (g.validKey && headers['x-postback-key'] === undefined) headers['x-postback-key'] = fx.postbackKey;
    let body = g.method === 'GET' || g.method === 'HEAD' ? undefined : g.body;
    if (body && g.encoding) {
      headers['content-encoding'] = g.encoding[0];
      body = encodeBody(body, g.encoding[0], g.encoding[1]);
    }
    const path = g.query && !g.path.includes('?') ? `${g.path}?${g.query}` : g.path;
    return { kind: 'chaos', method: g.method, path, headers, body } satisfies FuzzRequest;
  });

const rawArb = rawRequest(fc.constantFrom('/postback', '/click', '/healthz', '/nope'), () => `key=${fx.postbackKey}&click_id=${clickIds[0]}&order_id=RAW-1`);

const requestArb = fc.oneof(
  { weight: 10, arbitrary: postbackArb },
  { weight: 3, arbitrary: clickArb },
  { weight: 5, arbitrary: chaosArb },
  { weight: 2, arbitrary: rawArb },
);

// ---------------------------------------------------------------------------------------------

/** What a 2xx/3xx must carry: a queued job with the fields as sent, or a redirect with the subs as sent. */
async function successProblem(req: FuzzRequest, status: number, headers: Record<string, unknown>, body: Buffer): Promise<string | null> {
  // Accepted although it must be refused: already a violation; what it queued means nothing.
  const faithful = req.refuse && req.refuse.length > 0 ? {} : (req.faithful ?? {});
  if (req.kind.startsWith('postback') && status < 300) {
    if (status !== 202) return `a postback answered ${status}, not 202`;
    const answer = JSON.parse(body.toString('utf8')) as { postback_id?: string; status?: string };
    if (!/^pb_[0-9A-Z]{26}$/.test(answer.postback_id ?? '') || answer.status !== 'queued') return `a 202 with the body ${body.toString('utf8')}`;
    const found = await findQueuedPostback(h.queues.postbacks, answer.postback_id!);
    if (!found) return `a 202 whose postback ${answer.postback_id} is not in Redis`;
    for (const [name, expected] of Object.entries(faithful)) {
      const got = (found.postback as unknown as Record<string, unknown>)[name];
      if (got !== expected) return `a 202 queued ${name}=${JSON.stringify(got)}, but the request sent ${JSON.stringify(expected)}`;
    }
  }
  if (req.kind === 'click' && status === 302) {
    const location = new URL(String(headers.location));
    if (location.origin !== 'https://shop.example') return `a click redirected to ${location.origin}`;
    for (const [name, expected] of Object.entries(faithful)) {
      const got = location.searchParams.get(name);
      if (got !== expected) return `a 302 carried ${name}=${JSON.stringify(got)}, but the request sent ${JSON.stringify(expected)}`;
    }
  }
  return null;
}

describe('ingest under fuzzing', () => {
  it(`answers ${TOTAL.toLocaleString('en')} generated requests (postbacks, clicks, any method, path, header, body and raw bytes) with no 5xx, the envelope on every 4xx, and stays alive`, async () => {
    const { tally } = await fuzzInBatches({
      name: 'fuzz-ingest',
      client,
      arb: requestArb,
      runs: RUNS,
      batch: BATCH,
      check: (req, a) => successProblem(req, a.status, a.headers, a.body),
    });
    expect(client.sent).toBe(TOTAL + RUNS); // and one /healthz per batch
    // The app logged no error (an unexpected error is logged before its 5xx).
    expect(h.errors).toEqual([]);
    // The fuzz reached every answer it is meant to reach: accepted postbacks and clicks, and each refusal.
    for (const status of ['202', '302', '400', '401', '404', '405', '413', '415', '431']) expect(tally.statuses[status] ?? 0).toBeGreaterThan(0);
    expect(tally.statuses['202']).toBeGreaterThan(TOTAL * 0.08);

    // And afterwards an ordinary postback is still queued.
    const after = await client.send({
      kind: 'after',
      method: 'GET',
      path: `/postback?key=${fx.postbackKey}&click_id=${clickIds[0]}&order_id=AFTER-FUZZ`,
      headers: {},
    });
    expect(after instanceof Error ? after.message : after[0].status).toBe(202);
  }, 180_000);
});
