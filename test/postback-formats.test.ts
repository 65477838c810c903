// Postback dialects end to end: an advertiser's postback_format is set through the admin API,
// ingest reads a postback sent exactly as that tracker documents it (key in the path, as when a
// network moves an advertiser over by changing host and path), attribution records it, and the
// conversion has the amount, status, event, currency and order the tracker meant. Whatever
// Trackway does not read is named in the 202 and kept on the postback.
import fs from 'node:fs';
import path from 'node:path';
import { PRESETS, PRESET_NAMES } from '@trackway/domain';
import { createFixture, waitFor } from '@trackway/testing';
import type { Worker } from 'bullmq';
import request from 'supertest';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let workers: Worker[];
beforeAll(async () => {
  stack = await startStack();
  workers = stack.startAttribution();
});
afterAll(async () => {
  await stack.stopWorkers(workers);
  await stack.close();
});

const admin = {
  get: (path: string) => request(stack.api).get(path).set(stack.auth),
  patch: (path: string, body: object) => request(stack.api).patch(path).set(stack.auth).send(body),
};

/** An advertiser (offer in USD) with this format, set through the API, and a click on its offer. */
async function advertiserWith(postbackFormat: object | null) {
  const fx = await createFixture(stack.db.prisma);
  if (postbackFormat) await admin.patch(`/v1/advertisers/${fx.advertiserId}`, { postback_format: postbackFormat }).expect(200);
  return { ...fx, click: () => stack.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId }) };
}

/** The conversion a postback became (waiting for attribution), with its postback. */
async function outcomeOf(postbackId: string) {
  const postback = await waitFor(
    async () => {
      const res = await admin.get(`/v1/postbacks/${postbackId}`).expect(200);
      return res.body.status === 'queued' ? undefined : res.body;
    },
    { what: `the outcome of ${postbackId}` },
  );
  const conversion = postback.conversion_id ? (await admin.get(`/v1/conversions/${postback.conversion_id}`).expect(200)).body : null;
  return { postback, conversion };
}

// Each preset's postback as its tracker's documentation shows it (docs in docs/postbacks.md's table),
// with the macros replaced by values; CLICK stands for the click ID.
const DOCUMENTED = [
  {
    preset: 'trackway',
    query: 'click_id=CLICK&order_id=ORD-1&amount=49.90&currency=EUR&status=approved&event=sale',
    expected: { order_id: 'ORD-1', amount: '49.90', currency: 'EUR', status: 'approved', event: 'sale' },
    ignored: [],
  },
  {
    preset: 'everflow',
    query: 'nid=123&transaction_id=CLICK&amount=12,34&adv_event_id=7&order_id=EF-1001',
    expected: { order_id: 'EF-1001', amount: '12.34', currency: 'USD', status: 'approved', event: '7' },
    ignored: ['nid'],
  },
  {
    preset: 'tune',
    query: 'transaction_id=CLICK&amount=25.00&goal_id=3',
    expected: { order_id: null, amount: '25.00', currency: 'USD', status: 'approved', event: '3' },
    ignored: [],
  },
  {
    preset: 'voluum',
    query: 'cid=CLICK&payout=9.50&txid=V-77&et=lead&currency=EUR',
    expected: { order_id: 'V-77', amount: '9.50', currency: 'EUR', status: 'approved', event: 'lead' },
    ignored: [],
  },
  {
    preset: 'binom',
    query: 'cnv_id=CLICK&payout=3.20&cnv_status=hold&cnv_currency=EUR',
    expected: { order_id: null, amount: '3.20', currency: 'EUR', status: 'pending', event: 'conversion' },
    ignored: [],
  },
  {
    preset: 'keitaro',
    query: 'subid=CLICK&status=lead&payout=15.00&tid=K-5&currency=EUR',
    expected: { order_id: 'K-5', amount: '15.00', currency: 'EUR', status: 'pending', event: 'conversion' },
    ignored: [],
  },
  {
    preset: 'redtrack',
    query: 'clickid=CLICK&sum=30.00&type=Purchase&status=Pending',
    expected: { order_id: null, amount: '30.00', currency: 'USD', status: 'pending', event: 'purchase' },
    ignored: [],
  },
  {
    preset: 'affise',
    query: 'clickid=CLICK&action_id=A-9&sum=12.00&goal=2&status=2',
    expected: { order_id: 'A-9', amount: '12.00', currency: 'USD', status: 'pending', event: '2' },
    ignored: [],
  },
  {
    preset: 'cake',
    query: 'o=1001083&e=123&r=CLICK&t=a1b2c3&p=61.00&f=pb&eccu=EUR',
    expected: { order_id: 'a1b2c3', amount: '61.00', currency: 'EUR', status: 'approved', event: '123' },
    ignored: ['o', 'f'],
  },
  {
    preset: 'offer18',
    query: 'mid=000&tid=CLICK&event=sale&adv_sub1=ORD-1001&sale=49.90',
    expected: { order_id: 'ORD-1001', amount: '49.90', currency: 'USD', status: 'approved', event: 'sale' },
    ignored: ['mid'],
  },
];

it.each(DOCUMENTED)('records a $preset postback sent as its tracker documents it', async ({ preset, query, expected, ignored }) => {
  const adv = await advertiserWith({ preset });
  const clickId = adv.click();
  const res = await request(stack.ingest)
    .get(`/postback/${adv.postbackKey}?${query.replace('CLICK', clickId)}`)
    .expect(202);
  expect(res.body).toEqual({ postback_id: expect.stringMatching(/^pb_/), status: 'queued', ignored_params: ignored });
  const { postback, conversion } = await outcomeOf(res.body.postback_id);
  expect(postback).toMatchObject({
    status: 'accepted',
    ignored_params: Object.fromEntries(ignored.map((name) => [name, new URLSearchParams(query).get(name)])),
  });
  expect(conversion).toMatchObject({ click_id: clickId, ...expected });
});

it('names unread parameters in the 202 and keeps them on the postback, queued and recorded', async () => {
  const adv = await advertiserWith(null);
  const clickId = adv.click();
  // RedTrack's sum and Voluum's et sent to an advertiser read as Trackway: the mistake shows.
  const res = await request(stack.ingest)
    .post(`/postback?key=${adv.postbackKey}`)
    .send({ click_id: clickId, order_id: 'IGN-1', sum: '30.00', et: 'lead', nested: { a: [1, 2] } })
    .expect(202);
  expect(res.body.ignored_params).toEqual(['sum', 'et', 'nested']);
  const { postback, conversion } = await outcomeOf(res.body.postback_id);
  expect(postback.ignored_params).toEqual({ sum: '30.00', et: 'lead', nested: { a: [1, 2] } });
  expect(conversion).toMatchObject({ amount: '0.00', event: 'conversion' });
});

it("keeps the advertiser's key out of every stored copy: sent under other names, it is named and redacted, queued and recorded", async () => {
  const adv = await advertiserWith(null);
  const res = await request(stack.ingest)
    .get('/postback')
    .query({ key: adv.postbackKey, api_key: adv.postbackKey, token: adv.postbackKey, click_id: adv.click(), order_id: 'KEY-1' })
    .expect(202);
  expect(res.body.ignored_params).toEqual(['api_key', 'token']);
  const queued = (await admin.get(`/v1/postbacks/${res.body.postback_id}`).expect(200)).body;
  const { postback } = await outcomeOf(res.body.postback_id);
  for (const shown of [queued, postback]) expect(shown.ignored_params).toEqual({ api_key: '[redacted]', token: '[redacted]' });
  const row = await stack.db.prisma.postback.findUniqueOrThrow({ where: { id: res.body.postback_id } });
  expect(JSON.stringify(row)).not.toContain(adv.postbackKey);
});

it('with dedupe "click_id", a postback without an order is one conversion per click and event; an order_id still wins', async () => {
  const adv = await advertiserWith({ preset: 'redtrack' });
  const clickId = adv.click();
  const send = async (query: string) =>
    (await request(stack.ingest).get(`/postback/${adv.postbackKey}?clickid=${clickId}&${query}`).expect(202)).body.postback_id as string;
  const first = await outcomeOf(await send('type=Purchase&sum=10'));
  const again = await outcomeOf(await send('type=Purchase&sum=10'));
  const otherEvent = await outcomeOf(await send('type=Lead&sum=0'));
  const reversal = await outcomeOf(await send('type=Purchase&status=Declined'));
  const withOrder = await outcomeOf(await send('type=Purchase&rdtk_event_id=EV-1&sum=5'));
  expect(first.postback.status).toBe('accepted');
  expect(again.postback).toMatchObject({ status: 'duplicate', conversion_id: first.conversion.id });
  expect(otherEvent.postback.status).toBe('accepted');
  expect(otherEvent.conversion.id).not.toBe(first.conversion.id);
  expect(reversal.postback).toMatchObject({ status: 'accepted', conversion_id: first.conversion.id });
  expect(reversal.conversion.status).toBe('rejected');
  expect(withOrder.conversion).toMatchObject({ order_id: 'EV-1', amount: '5.00' });
  expect(withOrder.conversion.id).not.toBe(first.conversion.id);
  expect(first.postback.params.order_id).toBeNull();
});

it('reads a name by the advertiser’s preset only: tid is the order for Keitaro and the click for Offer18', async () => {
  const keitaro = await advertiserWith({ preset: 'keitaro' });
  const offer18 = await advertiserWith({ preset: 'offer18' });
  const k = keitaro.click();
  const o = offer18.click();
  const kRes = await request(stack.ingest).get(`/postback/${keitaro.postbackKey}?subid=${k}&tid=T-1&status=sale`).expect(202);
  const oRes = await request(stack.ingest).get(`/postback/${offer18.postbackKey}?tid=${o}&adv_sub1=T-2`).expect(202);
  expect((await outcomeOf(kRes.body.postback_id)).conversion).toMatchObject({ click_id: k, order_id: 'T-1', status: 'approved' });
  expect((await outcomeOf(oRes.body.postback_id)).conversion).toMatchObject({ click_id: o, order_id: 'T-2' });
});

it('takes overrides over the preset, and reads a changed format at once (the cache is cleared)', async () => {
  const adv = await advertiserWith(null);
  const clickId = adv.click();
  // Cached as Trackway's format: `status=7` is no status word.
  const before = await request(stack.ingest).get(`/postback/${adv.postbackKey}?click_id=${clickId}&order_id=OV-1&status=7`).expect(400);
  expect(before.body.error.fields.status).toMatch(/^must be one of approved, sale/);
  const format = { preset: 'affise', params: { amount: ['rev'] }, status_values: { '7': 'rejected' }, decimal_comma: true, dedupe: 'order_id' };
  const patched = await admin.patch(`/v1/advertisers/${adv.advertiserId}`, { postback_format: format }).expect(200);
  expect(patched.body.postback_format).toEqual(format);
  expect((await admin.get(`/v1/advertisers/${adv.advertiserId}`)).body.postback_format).toEqual(format);
  const query = `clickid=${clickId}&action_id=OV-2&rev=7,5&status=7&sum=1`;
  const res = await waitFor(
    async () => {
      const r = await request(stack.ingest).get(`/postback/${adv.postbackKey}?${query}`);
      return r.status === 202 ? r : undefined;
    },
    { what: 'ingest to read the new format' },
  );
  // `sum` is no longer the amount (params replaced it): it is reported, not read.
  expect(res.body.ignored_params).toEqual(['sum']);
  expect((await outcomeOf(res.body.postback_id)).conversion).toMatchObject({ order_id: 'OV-2', amount: '7.50', status: 'rejected' });
  // Preset's own status values still hold beside the override; dedupe order_id requires an order.
  const missing = await request(stack.ingest).get(`/postback/${adv.postbackKey}?clickid=${clickId}&status=1`).expect(400);
  expect(missing.body.error.fields).toEqual({ order_id: 'is required' });
});

it('refuses a format that reads one name for two fields, an unknown preset or a reserved name, naming the field', async () => {
  const adv = await advertiserWith(null);
  const clash = await admin
    .patch(`/v1/advertisers/${adv.advertiserId}`, { postback_format: { preset: 'trackway', params: { click_id: ['cid'], order_id: ['cid'] } } })
    .expect(400);
  expect(clash.body.error.fields).toEqual({ 'postback_format.params.order_id': '"cid" is read for click_id too' });
  const unknown = await admin.patch(`/v1/advertisers/${adv.advertiserId}`, { postback_format: { preset: 'appsflyer' } }).expect(400);
  expect(Object.keys(unknown.body.error.fields)).toEqual(['postback_format.preset']);
  const reserved = await admin
    .patch(`/v1/advertisers/${adv.advertiserId}`, { postback_format: { preset: 'trackway', params: { event: ['key'], amount: ['a b'] } } })
    .expect(400);
  expect(reserved.body.error.fields).toEqual({
    'postback_format.params.event': '"key" is the postback key\'s parameter',
    'postback_format.params.amount': '"a b" is not a parameter name (letters, digits, _ . -, at most 64)',
  });
  // A status value maps to a conversion status, not to another word.
  const word = await admin.patch(`/v1/advertisers/${adv.advertiserId}`, { postback_format: { preset: 'trackway', status_values: { x: 'paid' } } }).expect(400);
  expect(Object.keys(word.body.error.fields)).toEqual(['postback_format.status_values.x']);
  // A name the preset reads for another field; one status word in two cases; __proto__.
  const preset = await admin
    .patch(`/v1/advertisers/${adv.advertiserId}`, { postback_format: { preset: 'keitaro', params: { click_id: ['tid'] } } })
    .expect(400);
  expect(preset.body.error.fields).toEqual({
    'postback_format.params.click_id': '"tid" is read for order_id too (by the keitaro preset; override order_id as well)',
  });
  const cases = await admin
    .patch(`/v1/advertisers/${adv.advertiserId}`, { postback_format: { preset: 'trackway', status_values: { Sale: 'rejected', sale: 'approved' } } })
    .expect(400);
  expect(Object.keys(cases.body.error.fields)).toEqual(['postback_format.status_values.sale']);
  const proto = await request(stack.api)
    .patch(`/v1/advertisers/${adv.advertiserId}`)
    .set(stack.auth)
    .set('content-type', 'application/json')
    .send('{"postback_format": {"preset": "trackway", "status_values": {"__proto__": "approved"}}}')
    .expect(400);
  expect(proto.body.error.fields).toEqual({ 'postback_format.status_values.__proto__': 'a key named __proto__ is not accepted' });
  expect((await admin.get(`/v1/advertisers/${adv.advertiserId}`)).body.postback_format).toEqual({ preset: 'trackway' });
});

it('sets a format on creation, and shows a stored format this version cannot read as the trackway preset ingest reads it with', async () => {
  const created = await request(stack.api)
    .post('/v1/advertisers')
    .set(stack.auth)
    .send({ name: 'Moved', postback_format: { preset: 'binom' } })
    .expect(201);
  expect(created.body.postback_format).toEqual({ preset: 'binom' });
  expect((await admin.get(`/v1/advertisers/${created.body.id}`)).body.postback_format).toEqual({ preset: 'binom' });
  await stack.db.prisma.advertiser.update({ where: { id: created.body.id }, data: { postbackFormat: { preset: 'appsflyer' } } });
  expect((await admin.get(`/v1/advertisers/${created.body.id}`)).body.postback_format).toEqual({ preset: 'trackway' });
});

it('documents every preset in docs/postbacks.md exactly as PRESETS reads it', () => {
  const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'postbacks.md'), 'utf8');
  const rows = doc.split('\n').filter((line) => PRESET_NAMES.some((name) => line.startsWith(`| \`${name}\``)) && line.split('|').length === 12);
  const names = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]).filter((n) => /^[A-Za-z0-9_.-]+$/.test(n));
  const documented = Object.fromEntries(
    rows.map((line) => {
      const cells = line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim());
      const [preset, click, order, amount, currency, status, event, comma, dedupe] = cells;
      return [
        names(preset)[0],
        {
          click: names(click),
          order: names(order),
          amount: names(amount),
          currency: names(currency),
          status: names(status.split(/[:(]/)[0]),
          event: names(event),
          comma: comma.includes('yes'),
          dedupe: names(dedupe)[0],
        },
      ];
    }),
  );
  expect(Object.keys(documented).sort()).toEqual([...PRESET_NAMES].sort());
  for (const name of PRESET_NAMES) {
    const p = PRESETS[name];
    const withOwn = (field: keyof typeof p.params) => (name === 'trackway' ? [field, ...p.params[field]] : [...p.params[field]]);
    expect({ name, ...documented[name] }).toEqual({
      name,
      click: withOwn('click_id'),
      order: withOwn('order_id'),
      amount: withOwn('amount'),
      currency: withOwn('currency'),
      status: withOwn('status'),
      event: withOwn('event'),
      comma: p.decimal_comma,
      dedupe: p.dedupe,
    });
    if (p.source) expect(doc).toContain(`(${p.source})`);
  }
});
