// The published contract, held against the whole system: ingest's real answers to /click and
// /postback, the postback's outcome, and the events the attribution worker emits and the
// delivery worker sends conform to GET /openapi.json (the api's document).
import { startReceiver, type Receiver, waitFor } from '@trackway/testing';
import request from 'supertest';
import { type OpenApiDoc, contract } from '../services/api/test/contract';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let receiver: Receiver;
let check: ReturnType<typeof contract>;

beforeAll(async () => {
  stack = await startStack();
  receiver = await startReceiver();
  check = contract((await request(stack.api).get('/openapi.json').expect(200)).body as OpenApiDoc);
  stack.startAttribution();
  await stack.startDelivery();
});
afterAll(async () => {
  await stack.close();
  await receiver.close();
});

const admin = (method: 'get' | 'post', path: string, body?: object) => request(stack.api)[method](path).set(stack.auth).send(body);

it('ingest answers, outcomes and delivered events conform to the document', async () => {
  const advertiser = (await admin('post', '/v1/advertisers', { name: 'Shop' }).expect(201)).body;
  const affiliate = (await admin('post', '/v1/affiliates', { name: 'Blog' }).expect(201)).body;
  const offer = (
    await admin('post', '/v1/offers', {
      advertiser_id: advertiser.id,
      name: 'Sale',
      destination_url: 'https://shop.example/?cid={click_id}',
      currency: 'USD',
      payout: { type: 'fixed', amount: '5.00' },
      min_ctit_seconds: 0,
    }).expect(201)
  ).body;
  await admin('post', '/v1/webhook-endpoints', { url: `${receiver.url}/hook`, event_types: ['*'] }).expect(201);

  const click = await request(stack.ingest).get(`/click?offer_id=${offer.id}&affiliate_id=${affiliate.id}&sub1=a`);
  expect(click.status).toBe(302);
  expect(check.conforms('get', '/click', click)).toEqual([]);
  const clickId = new URL(click.headers.location).searchParams.get('cid')!;

  // Refusals, each with the envelope and a status the document lists for its operation.
  const refusals: [string, string, request.Test][] = [
    ['get', '/click', request(stack.ingest).get('/click?offer_id=x')],
    ['get', '/postback', request(stack.ingest).get('/postback').query({ click_id: clickId, order_id: 'O-1' })],
    ['get', '/postback', request(stack.ingest).get('/postback').query({ key: 'pk_nope', click_id: clickId, order_id: 'O-1' })],
    ['post', '/postback', request(stack.ingest).post('/postback').set('X-Postback-Key', advertiser.postback_key).send({ order_id: 'O-1' })],
    [
      'post',
      '/postback',
      request(stack.ingest).post('/postback').set('X-Postback-Key', advertiser.postback_key).set('content-type', 'text/plain').send('click_id=x'),
    ],
  ];
  const statuses: number[] = [];
  for (const [method, path, sent] of refusals) {
    const res = await sent;
    statuses.push(res.status);
    expect({ method, path, problems: check.conforms(method, path, res) }).toEqual({ method, path, problems: [] });
  }
  expect(statuses).toEqual([400, 401, 401, 400, 415]);

  const posted = await request(stack.ingest)
    .post('/postback')
    .set('X-Postback-Key', advertiser.postback_key)
    .send({ click_id: clickId, order_id: 'ORDER-1', amount: '49.90', status: 'approved' });
  expect(posted.status).toBe(202);
  expect(check.conforms('post', '/postback', posted)).toEqual([]);
  const get = await request(stack.ingest).get('/postback').query({ key: advertiser.postback_key, click_id: clickId, order_id: 'ORDER-2', amount: '1' });
  expect(check.conforms('get', '/postback', get)).toEqual([]);
  // The key in the path, with a parameter Trackway does not read (named in the 202).
  const inPath = await request(stack.ingest).get(`/postback/${advertiser.postback_key}`).query({ click_id: clickId, order_id: 'ORDER-3', sum: '1' });
  expect(inPath.body.ignored_params).toEqual(['sum']);
  expect(check.conforms('get', `/postback/${advertiser.postback_key}`, inPath)).toEqual([]);
  const postedInPath = await request(stack.ingest).post(`/postback/${advertiser.postback_key}`).send({ click_id: clickId, order_id: 'ORDER-4' });
  expect(check.conforms('post', `/postback/${advertiser.postback_key}`, postedInPath)).toEqual([]);

  const outcome = await waitFor(
    async () => {
      const res = await admin('get', `/v1/postbacks/${posted.body.postback_id}`).expect(200);
      return res.body.status === 'queued' ? null : res;
    },
    { what: 'the outcome' },
  );
  expect(outcome.body.status).toBe('accepted');
  expect(check.conforms('get', `/v1/postbacks/${posted.body.postback_id}`, outcome)).toEqual([]);

  // What subscribers receive: conversion.created, conversion.approved, commission.created…
  const delivered = await waitFor(
    () => {
      const types = receiver.requests.map((r) => JSON.parse(r.body).type as string);
      return ['conversion.created', 'conversion.approved', 'commission.created'].every((t) => types.includes(t)) ? receiver.requests : null;
    },
    { what: 'the events to be delivered' },
  );
  for (const req of delivered) {
    const event = JSON.parse(req.body);
    expect({ type: event.type, problems: check.eventProblems(event) }).toEqual({ type: event.type, problems: [] });
    expect(req.headers['webhook-id']).toBe(event.id);
  }
}, 60_000);

it('an advertiser with a postback format, a conversion without an order and the parameters left unread conform too', async () => {
  const format = { preset: 'redtrack', status_values: { ok: 'approved' }, decimal_comma: true };
  const created = await admin('post', '/v1/advertisers', { name: 'Moved', postback_format: format }).expect(201);
  expect(check.conforms('post', '/v1/advertisers', created)).toEqual([]);
  expect(created.body.postback_format).toEqual(format);
  const affiliate = (await admin('post', '/v1/affiliates', { name: 'Blog 2' }).expect(201)).body;
  const offer = (
    await admin('post', '/v1/offers', {
      advertiser_id: created.body.id,
      name: 'Moved sale',
      destination_url: 'https://shop.example/?cid={click_id}',
      currency: 'USD',
      payout: { type: 'fixed', amount: '1.00' },
      min_ctit_seconds: 0,
    }).expect(201)
  ).body;
  const clickId = stack.clickIds.issue({ offerId: offer.id, affiliateId: affiliate.id });
  // RedTrack's own postback: no order reference, so the conversion is the click's.
  const accepted = await request(stack.ingest)
    .get(`/postback/${created.body.postback_key}`)
    .query({ clickid: clickId, sum: '7,50', type: 'Purchase', status: 'ok', rdtk_campaign: 'c-1' });
  expect(accepted.body.ignored_params).toEqual(['rdtk_campaign']);
  expect(check.conforms('get', `/postback/${created.body.postback_key}`, accepted)).toEqual([]);
  const outcome = await waitFor(
    async () => {
      const res = await admin('get', `/v1/postbacks/${accepted.body.postback_id}`).expect(200);
      return res.body.status === 'queued' ? null : res;
    },
    { what: 'the outcome' },
  );
  expect(outcome.body).toMatchObject({
    status: 'accepted',
    ignored_params: { rdtk_campaign: 'c-1' },
    params: { order_id: null, amount: '7.5', event: 'Purchase' },
  });
  expect(check.conforms('get', `/v1/postbacks/${accepted.body.postback_id}`, outcome)).toEqual([]);
  const conversion = await admin('get', `/v1/conversions/${outcome.body.conversion_id}`).expect(200);
  // Event names are matched in any case: the conversion shows the one form, the postback what was sent.
  expect(conversion.body).toMatchObject({ order_id: null, amount: '7.50', event: 'purchase', status: 'approved' });
  expect(check.conforms('get', `/v1/conversions/${outcome.body.conversion_id}`, conversion)).toEqual([]);
  // Its events, as subscribers receive them, carry order_id null.
  const events = await waitFor(
    () => {
      const mine = receiver.requests.map((r) => JSON.parse(r.body)).filter((e) => e.data?.conversion?.id === outcome.body.conversion_id);
      return mine.length > 0 ? mine : null;
    },
    { what: "the conversion's events" },
  );
  for (const event of events) {
    expect(event.data.conversion.order_id).toBeNull();
    expect({ type: event.type, problems: check.eventProblems(event) }).toEqual({ type: event.type, problems: [] });
  }
}, 60_000);
