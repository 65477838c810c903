// Partners end to end: a click's sub IDs carried to its conversion (also when its row is still
// queued), what the network earns, and partner postbacks delivered by the one delivery engine —
// retried, logged, isolated from webhooks — closing the loop with an affiliate whose own tracker
// is a second Trackway reading them with its preset.
import { type Server, createServer } from 'node:http';
import { PARTNER_PRESET_NAMES } from '@trackway/domain';
import { type Fixture, type Receiver, createFixture, listenLocally, startReceiver, waitFor } from '@trackway/testing';
import type { Worker } from 'bullmq';
import request from 'supertest';
import { type Stack, startStack } from './support/stack';

let network: Stack;
let workers: Worker[] = [];
let receivers: Receiver[] = [];

beforeAll(async () => {
  network = await startStack();
});
afterAll(() => network.close());
afterEach(async () => {
  await network.db.prisma.webhookEndpoint.updateMany({ data: { enabled: false } });
  await network.stopWorkers(workers);
  workers = [];
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
});

const admin = (stack: Stack) => ({
  get: (path: string) => request(stack.api).get(path).set(stack.auth),
  post: (path: string, body?: object) => request(stack.api).post(path).set(stack.auth).send(body),
  patch: (path: string, body: object) => request(stack.api).patch(path).set(stack.auth).send(body),
});

async function receiver(reply?: Receiver['reply']) {
  const r = await startReceiver(reply);
  receivers.push(r);
  return r;
}

/** A click through ingest's /click: its click id (from the redirect). */
async function click(stack: Stack, fx: Fixture, subs: Record<string, string> = {}): Promise<string> {
  const res = await request(stack.ingest)
    .get('/click')
    .query({ offer_id: fx.offerId, affiliate_id: fx.affiliateId, ...subs })
    .expect(302);
  const clickId = new URL(res.headers.location).searchParams.get('click_id');
  if (!clickId) throw new Error(`no click_id in ${res.headers.location}`);
  return clickId;
}

/** An advertiser's postback through ingest: its id (202). */
async function postback(stack: Stack, fx: Fixture, params: Record<string, string>): Promise<string> {
  const res = await request(stack.ingest)
    .get('/postback')
    .query({ key: fx.postbackKey, ...params })
    .expect(202);
  return res.body.postback_id as string;
}

async function conversionOf(stack: Stack, postbackId: string, timeoutMs = 10_000) {
  const outcome = await waitFor(
    async () => {
      const res = await admin(stack).get(`/v1/postbacks/${postbackId}`).expect(200);
      return res.body.status === 'queued' ? undefined : res.body;
    },
    { what: `the outcome of ${postbackId}`, timeoutMs },
  );
  expect(outcome.status).toBe('accepted');
  return (await admin(stack).get(`/v1/conversions/${outcome.conversion_id}`).expect(200)).body;
}

const SUBS = { sub1: 'aff-click-77', sub2: 'spring', sub3: 'banner-3', sub4: 'mobile', sub5: 'x y&z' };

describe('sub IDs, carried through', () => {
  it('a conversion carries its click sub IDs: on the API, in every conversion event, filterable', async () => {
    workers = network.startAttribution();
    const fx = await createFixture(network.db.prisma);
    const clickId = await click(network, fx, SUBS);
    const conversion = await conversionOf(network, await postback(network, fx, { click_id: clickId, order_id: 'SUB-1', amount: '20.00' }));
    expect(conversion).toMatchObject(SUBS);
    const events = await network.db.prisma.outboxEvent.findMany({ where: { type: { startsWith: 'conversion.' } } });
    const mine = events.filter((e) => (e.payload as { data: { conversion: { id: string } } }).data.conversion.id === conversion.id);
    expect(mine.map((e) => e.type).sort()).toEqual(['conversion.approved', 'conversion.created']);
    for (const e of mine) expect((e.payload as { data: { conversion: object } }).data.conversion).toMatchObject(SUBS);
    const listed = await admin(network).get(`/v1/conversions?sub1=${SUBS.sub1}`).expect(200);
    expect(listed.body.data.map((c: { id: string }) => c.id)).toEqual([conversion.id]);
    expect((await admin(network).get('/v1/conversions?sub1=nobody').expect(200)).body.data).toEqual([]);
  });

  it('a postback whose click row is still in the clicks queue waits for it, then carries its sub IDs', async () => {
    // Only postbacks are attributed: the click stays queued until the clicks worker starts.
    workers = network.startAttribution(['postbacks']);
    const fx = await createFixture(network.db.prisma);
    const clickId = await click(network, fx, { sub1: 'queued-click' });
    const postbackId = await postback(network, fx, { click_id: clickId, order_id: 'SUB-2', amount: '20.00' });
    // It waits (the job is put back, not failed): its outcome is still "queued" while the click is.
    await waitFor(async () => (await network.queues.postbacks.getJobCounts('delayed')).delayed > 0, { what: 'the postback put back' });
    expect((await admin(network).get(`/v1/postbacks/${postbackId}`).expect(200)).body.status).toBe('queued');
    workers.push(...network.startAttribution(['clicks']));
    const conversion = await conversionOf(network, postbackId);
    expect(conversion.sub1).toBe('queued-click');
    const job = (await network.queues.postbacks.getJobs(['completed'])).find((j) => j.data.postbacks.some((p) => p.postbackId === postbackId));
    // Put back, never failed: no attempt of its retry schedule was spent.
    expect({ completed: job !== undefined, failedReason: job?.failedReason, stacktrace: job?.stacktrace }).toEqual({
      completed: true,
      failedReason: undefined,
      stacktrace: [],
    });
  });

  it('a click whose row never arrives (lost with Redis) is recorded without sub IDs, not held up', async () => {
    workers = network.startAttribution();
    const fx = await createFixture(network.db.prisma);
    // A genuine click id whose click job never reached the queue.
    const clickId = network.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) });
    const conversion = await conversionOf(network, await postback(network, fx, { click_id: clickId, order_id: 'SUB-3', amount: '20.00' }));
    expect([conversion.sub1, conversion.sub2, conversion.sub3, conversion.sub4, conversion.sub5]).toEqual([null, null, null, null, null]);
  });
});

describe('what the network earns', () => {
  it('records revenue beside payout and follows amount changes; an offer without revenue keeps working', async () => {
    workers = network.startAttribution();
    const fx = await createFixture(network.db.prisma, { payoutType: 'percent', payoutPercent: '10' });
    await admin(network)
      .patch(`/v1/offers/${fx.offerId}`, { revenue: { type: 'percent', percent: '15' } })
      .expect(200);
    const clickId = await click(network, fx);
    const created = await conversionOf(network, await postback(network, fx, { click_id: clickId, order_id: 'REV-1', amount: '200.00', currency: 'EUR' }));
    expect(created).toMatchObject({ payout: '20.00', payout_currency: 'EUR', revenue: '30.00', revenue_currency: 'EUR' });
    await postback(network, fx, { click_id: clickId, order_id: 'REV-1', amount: '100.00', currency: 'EUR' });
    await waitFor(async () => ((await admin(network).get(`/v1/conversions/${created.id}`).expect(200)).body.amount === '100.00' ? true : undefined), {
      what: 'the new amount',
    });
    expect((await admin(network).get(`/v1/conversions/${created.id}`).expect(200)).body).toMatchObject({ payout: '10.00', revenue: '15.00' });

    const plain = await createFixture(network.db.prisma);
    const none = await conversionOf(network, await postback(network, plain, { click_id: await click(network, plain), order_id: 'REV-2', amount: '10.00' }));
    expect(none).toMatchObject({ payout: '5.00', revenue: null, revenue_currency: null });
  });
});

describe('partner postbacks', () => {
  const partnerOf = async (fx: Fixture, url: string, fields: Record<string, unknown> = {}) =>
    (
      await admin(network)
        .post('/v1/partner-postbacks', { affiliate_id: fx.affiliateId, url, ...fields })
        .expect(201)
    ).body as { id: string };

  it('fires a GET with the macros filled in, once per event however often the advertiser retries, logged like a webhook', async () => {
    workers = [...network.startAttribution(), ...(await network.startDelivery())];
    const fx = await createFixture(network.db.prisma);
    const r = await receiver();
    const pp = await partnerOf(
      fx,
      `${r.url}?cid={sub1}&payout={payout}&cur={payout_currency}&status={status}&event={event}&type={event_type}&conv={conversion_id}&amt={amount}&token=s3cret`,
    );
    const clickId = await click(network, fx, { sub1: 'their-click-1' });
    const params = { click_id: clickId, order_id: 'PP-1', amount: '49.90', event: 'sale' };
    const conversion = await conversionOf(network, await postback(network, fx, params));
    const retried = await postback(network, fx, params); // the advertiser retries: a duplicate
    await waitFor(() => r.requests.length >= 1, { what: 'the partner postback' });
    const [req] = r.requests;
    expect(req.method).toBe('GET');
    expect(req.headers['user-agent']).toMatch(/^Trackway-Postback\//);
    expect(req.headers['webhook-signature']).toBeUndefined();
    const query = new URL(req.path, 'http://x').searchParams;
    expect(Object.fromEntries(query)).toEqual({
      cid: 'their-click-1',
      payout: '5.00',
      cur: 'USD',
      status: 'approved',
      event: 'sale',
      type: 'conversion.approved',
      conv: conversion.id,
      amt: '',
      token: 's3cret',
    });
    const deliveries = await waitFor(
      async () => {
        const res = await admin(network).get(`/v1/partner-postbacks/${pp.id}/deliveries`).expect(200);
        return res.body.data[0]?.status === 'succeeded' ? res.body.data : undefined;
      },
      { what: 'the delivery record' },
    );
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ event_type: 'conversion.approved', missing_macros: ['amount'] });
    // The duplicate postback fired nothing more (give it the time its delivery would take).
    await waitFor(async () => ((await admin(network).get(`/v1/postbacks/${retried}`).expect(200)).body.status === 'duplicate' ? true : undefined), {
      what: 'the retried postback attributed as a duplicate',
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(r.requests).toHaveLength(1);
    // Shown masked after creation.
    expect((await admin(network).get(`/v1/partner-postbacks/${pp.id}`).expect(200)).body.url).toContain('token=***');
  });

  it('{amount} only once the offer shares it: an offer changed through the api reaches the delivery worker', async () => {
    workers = [...network.startAttribution(), ...(await network.startDelivery())];
    const fx = await createFixture(network.db.prisma);
    const r = await receiver();
    await partnerOf(fx, `${r.url}?amt={amount}&p={payout}`);
    await conversionOf(network, await postback(network, fx, { click_id: await click(network, fx), order_id: 'AMT-1', amount: '49.90' }));
    await waitFor(() => r.requests.length === 1, { what: 'the first partner postback' });
    await admin(network).patch(`/v1/offers/${fx.offerId}`, { share_amount_with_partners: true }).expect(200);
    await conversionOf(network, await postback(network, fx, { click_id: await click(network, fx), order_id: 'AMT-2', amount: '12.00' }));
    await waitFor(() => r.requests.length === 2, { what: 'the second partner postback' });
    expect(r.requests.map((q) => q.path)).toEqual(['/hooks?amt=&p=5.00', '/hooks?amt=12.00&p=5.00']);
  });

  it('a partner answering 410 is disabled, and endpoint.disabled shows it as the api does (its URL masked)', async () => {
    workers = [...network.startAttribution(), ...(await network.startDelivery())];
    const fx = await createFixture(network.db.prisma);
    const r = await receiver(() => ({ status: 410, body: 'gone' }));
    const pp = await partnerOf(fx, `${r.url}?cid={sub1}&token=s3cret`);
    await conversionOf(network, await postback(network, fx, { click_id: await click(network, fx), order_id: 'GONE-1', amount: '1.00' }));
    const event = await waitFor(
      async () => {
        const events = await network.db.prisma.outboxEvent.findMany({ where: { type: 'endpoint.disabled' } });
        return events.find((e) => (e.payload as { data: { endpoint: { id: string } } }).data.endpoint.id === pp.id);
      },
      { what: 'endpoint.disabled for the partner postback' },
    );
    const shown = (await admin(network).get(`/v1/partner-postbacks/${pp.id}`).expect(200)).body;
    expect(shown).toMatchObject({ enabled: false, url: `${r.url}?cid={sub1}&token=***` });
    expect((event.payload as { data: { endpoint: unknown } }).data.endpoint).toEqual(shown);
  });

  it('…/test fires one now with the sample conversion; a preset writes its tracker query', async () => {
    workers = await network.startDelivery();
    const fx = await createFixture(network.db.prisma);
    const r = await receiver();
    const pp = await partnerOf(fx, `${r.url}?key=abc`, { preset: 'keitaro' });
    const sent = await admin(network).post(`/v1/partner-postbacks/${pp.id}/test`).expect(202);
    await waitFor(() => r.requests.length === 1, { what: 'the test postback' });
    const query = Object.fromEntries(new URL(r.requests[0].path, 'http://x').searchParams);
    expect(query).toEqual({ key: 'abc', subid: 'aff-click-8f3a2c', tid: 'cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC', payout: '5.00', currency: 'USD', status: 'sale' });
    const delivery = await waitFor(
      async () => {
        const res = await admin(network).get(`/v1/deliveries/${sent.body.delivery_id}`).expect(200);
        return res.body.status === 'succeeded' ? res.body : undefined;
      },
      { what: 'the test delivery settled' },
    );
    expect(delivery.event_type).toBe('webhook.test');
  });

  it('a partner answering 500 is retried on the schedule, every attempt logged', async () => {
    workers = [...network.startAttribution(), ...(await network.startDelivery())];
    const fx = await createFixture(network.db.prisma);
    const r = await receiver((_req, n) => (n === 1 ? { status: 500, body: 'oops' } : { status: 200, body: 'OK' }));
    const pp = await partnerOf(fx, `${r.url}?cid={sub1}`, { method: 'POST' });
    await conversionOf(network, await postback(network, fx, { click_id: await click(network, fx, { sub1: 'retry-me' }), order_id: 'PP-2', amount: '1.00' }));
    await waitFor(() => r.requests.length === 2, { what: 'the retry' });
    expect(r.requests.map((q) => [q.method, q.body, q.headers['content-type']])).toEqual([
      ['POST', 'cid=retry-me', 'application/x-www-form-urlencoded'],
      ['POST', 'cid=retry-me', 'application/x-www-form-urlencoded'],
    ]);
    const [delivery] = (await admin(network).get(`/v1/partner-postbacks/${pp.id}/deliveries`).expect(200)).body.data;
    const settled = await waitFor(
      async () => {
        const res = await admin(network).get(`/v1/deliveries/${delivery.id}`).expect(200);
        return res.body.status === 'succeeded' ? res.body : undefined;
      },
      { what: 'the delivery succeeded' },
    );
    expect(settled.attempts.map((a: { status_code: number }) => a.status_code)).toEqual([500, 200]);
  });

  it('an offer-level postback replaces the affiliate global one for its types; a reversal reaches the partner', async () => {
    workers = [...network.startAttribution(), ...(await network.startDelivery())];
    const fx = await createFixture(network.db.prisma);
    const global = await receiver();
    const forOffer = await receiver();
    await partnerOf(fx, `${global.url}?s={status}`, { event_types: ['conversion.approved', 'conversion.rejected'] });
    await partnerOf(fx, `${forOffer.url}?s={status}`, { offer_id: fx.offerId, event_types: ['conversion.approved'] });
    const clickId = await click(network, fx, { sub1: 'rev' });
    await conversionOf(network, await postback(network, fx, { click_id: clickId, order_id: 'PP-3', amount: '1.00' }));
    await postback(network, fx, { click_id: clickId, order_id: 'PP-3', status: 'rejected' });
    await waitFor(() => forOffer.requests.length === 1 && global.requests.length === 1, { what: 'both partner postbacks' });
    expect(forOffer.requests[0].path).toBe('/hooks?s=approved');
    expect(global.requests[0].path).toBe('/hooks?s=rejected');
  });

  it('a hanging partner cannot hold up webhooks or other partners', async () => {
    workers = [...network.startAttribution(), ...(await network.startDelivery({ timeoutMs: 20_000 }))];
    const hanging = await receiver(() => ({ hang: true }));
    const partner = await receiver();
    const hooks = await receiver();
    const slow = await createFixture(network.db.prisma);
    const fine = await createFixture(network.db.prisma);
    await partnerOf(slow, `${hanging.url}?c={sub1}`);
    await partnerOf(fine, `${partner.url}?c={sub1}`);
    await network.subscribe(hooks.url, ['conversion.approved']);
    const n = 12;
    for (let i = 0; i < n; i++) {
      for (const fx of [slow, fine]) {
        await postback(network, fx, { click_id: await click(network, fx, { sub1: `c${i}` }), order_id: `HANG-${i}`, amount: '1.00' });
      }
    }
    await waitFor(() => hooks.requests.length === 2 * n && partner.requests.length === n, { what: 'every webhook and the other partner', timeoutMs: 15_000 });
    // All of that while the hanging partner's requests are still out, none answered.
    expect(hanging.active).toBeGreaterThan(0);
    const attempts = await network.db.prisma.deliveryAttempt.count({ where: { delivery: { endpoint: { url: { startsWith: hanging.url } } } } });
    expect(attempts).toBe(0);
    // Its requests end now (reset), so the workers stop without waiting out their deadline.
    await hanging.close();
  });
});

describe('the loop: the affiliate’s own tracker is a Trackway too', () => {
  let tracker: Stack;
  let trackerWorkers: Worker[];
  let trackerIngest: { server: Server; base: string };
  beforeAll(async () => {
    tracker = await startStack();
    trackerWorkers = tracker.startAttribution();
    trackerIngest = await listenLocally({ listen: (port, host) => createServer(tracker.ingest).listen(port, host) });
  });
  afterAll(async () => {
    await tracker.stopWorkers(trackerWorkers);
    await new Promise((resolve) => trackerIngest.server.close(resolve));
    await tracker.close();
  });

  it.each(PARTNER_PRESET_NAMES.map((p) => [p]))(
    '%s: the affiliate’s tracker records one conversion for its own click, the payout as its amount',
    async (preset) => {
      workers = [...network.startAttribution(), ...(await network.startDelivery())];
      // The affiliate's tracker: the network is its "advertiser", posting in the preset's dialect.
      const own = await createFixture(tracker.db.prisma);
      await admin(tracker).patch(`/v1/advertisers/${own.advertiserId}`, { postback_format: { preset } }).expect(200);
      const theirClick = await click(tracker, own);
      // The network: the affiliate registers its tracker's postback URL with the preset.
      const fx = await createFixture(network.db.prisma, { payoutAmount: '7.25' });
      await admin(network)
        .post('/v1/partner-postbacks', { affiliate_id: fx.affiliateId, url: `${trackerIngest.base}/postback?key=${own.postbackKey}`, preset })
        .expect(201);
      // The affiliate sends its visitor to the network's link with its click id as sub1.
      const networkClick = await click(network, fx, { sub1: theirClick });
      await conversionOf(network, await postback(network, fx, { click_id: networkClick, order_id: `LOOP-${preset}`, amount: '99.00' }));
      const conversions = await waitFor(
        async () => {
          const list = await tracker.db.prisma.conversion.findMany({ where: { clickId: theirClick } });
          return list.length > 0 ? list : undefined;
        },
        { what: `the ${preset} tracker's conversion`, timeoutMs: 15_000 },
      );
      expect(conversions).toHaveLength(1);
      expect(conversions[0].amount.toFixed(2)).toBe('7.25');
      expect(conversions[0].status).toBe('approved');
    },
  );
});
