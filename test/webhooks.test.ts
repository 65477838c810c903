import { type EventEnvelope, type EventType, createEvent, createSecretBox, deliveryIdFor } from '@trackway/domain';
import { sealPlaintextHeaders } from '@trackway/ledger';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { publishInvalidation } from '@trackway/queues';
import { type Receiver, startReceiver, waitFor } from '@trackway/testing';
import type { Worker } from 'bullmq';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { SECRETS_KEY, type Stack, startStack } from './support/stack';

let stack: Stack;
let receivers: Receiver[] = [];
let workers: Worker[] = [];

beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());
afterEach(async () => {
  // Each test starts with no live endpoint: earlier ones would receive its events too.
  await stack.db.prisma.webhookEndpoint.updateMany({ data: { enabled: false } });
  await stack.stopWorkers(workers);
  workers = [];
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
});

const api = {
  get: (path: string) => request(stack.api).get(path).set(stack.auth),
  post: (path: string, body?: object) => request(stack.api).post(path).set(stack.auth).send(body),
  patch: (path: string, body: object) => request(stack.api).patch(path).set(stack.auth).send(body),
};

async function receiver(reply?: Receiver['reply']) {
  const r = await startReceiver(reply);
  receivers.push(r);
  return r;
}

async function endpoint(url: string, body: Record<string, unknown> = {}) {
  const res = await api.post('/v1/webhook-endpoints', { url, event_types: ['*'], ...body }).expect(201);
  return res.body as { id: string; secret: string };
}

/** An event through the outbox, exactly as the attribution worker writes and publishes it. */
async function emit(type: EventType = 'conversion.approved', data: Record<string, unknown> = { conversion: { id: 'cnv_test' } }): Promise<EventEnvelope> {
  const event = createEvent(type, data);
  await stack.db.prisma.$transaction((tx) => writeEvents(tx, [event]));
  await publishEvents(stack.db.pool, stack.queues.events, [event]);
  return event;
}

const deliveryOf = async (endpointId: string, eventId: string) => {
  const row = await waitFor(() => stack.db.prisma.delivery.findFirst({ where: { eventId, endpointId } }), { what: 'delivery row' });
  return row;
};
const settled = (id: string, status: 'succeeded' | 'failed' = 'succeeded') =>
  waitFor(
    async () => {
      const res = await api.get(`/v1/deliveries/${id}`).expect(200);
      return res.body.status === status ? res.body : null;
    },
    { timeoutMs: 15_000, what: `delivery ${id} ${status}` },
  );

describe('webhook delivery', () => {
  it('signs requests so that the unmodified standardwebhooks library verifies them, with the documented headers', async () => {
    workers = await stack.startDelivery();
    const r = await receiver();
    const ep = await endpoint(r.url, { headers: { 'X-Team': 'growth' } });
    const event = await emit('conversion.approved', { conversion: { id: 'cnv_1', amount: '49.90' }, previous_status: null });
    await waitFor(() => r.requests.length === 1, { what: 'request' });
    const [req] = r.requests;
    expect(req.method).toBe('POST');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['user-agent']).toMatch(/^Trackway-Webhooks\/\d+\.\d+\.\d+/);
    expect(req.headers['x-team']).toBe('growth');
    expect(req.headers['webhook-id']).toBe(event.id);
    expect(Math.abs(Number(req.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(10);
    expect(new Webhook(ep.secret).verify(req.body, req.headers as Record<string, string>)).toEqual(event);
    expect(() => new Webhook(ep.secret).verify(req.body.replace('49.90', '0.01'), req.headers as Record<string, string>)).toThrow();
  });

  it("seals custom headers (a receiver's Authorization): stored sealed, masked on every read and in events, sent in clear", async () => {
    workers = await stack.startDelivery();
    const r = await receiver();
    const created = await api
      .post('/v1/webhook-endpoints', { url: r.url, event_types: ['*'], headers: { Authorization: 'Bearer rcv-secret-1234', 'X-Team': 'growth' } })
      .expect(201);
    const masked = { Authorization: '••••', 'X-Team': '••••' };
    expect(created.body.headers).toEqual(masked);
    expect((await api.get(`/v1/webhook-endpoints/${created.body.id}`).expect(200)).body.headers).toEqual(masked);
    expect((await api.get('/v1/webhook-endpoints').expect(200)).body.data.find((e: { id: string }) => e.id === created.body.id).headers).toEqual(masked);
    const row = await stack.db.pool.query('SELECT * FROM webhook_endpoints WHERE id = $1', [created.body.id]);
    expect(JSON.stringify(row.rows[0])).not.toMatch(/rcv-secret-1234|growth/);

    await emit();
    await waitFor(() => r.requests.length === 1, { what: 'request' });
    expect(r.requests[0].headers).toMatchObject({ authorization: 'Bearer rcv-secret-1234', 'x-team': 'growth' });

    // A new value replaces the old one (the masked form cannot be sent back as a value).
    const patched = await api.patch(`/v1/webhook-endpoints/${created.body.id}`, { headers: { Authorization: 'Bearer rcv-secret-5678' } }).expect(200);
    expect(patched.body.headers).toEqual({ Authorization: '••••' });
    expect((await api.patch(`/v1/webhook-endpoints/${created.body.id}`, { headers: masked }).expect(400)).body.error.fields).toEqual({
      'headers.Authorization': 'must be printable ASCII on one line',
      'headers.X-Team': 'must be printable ASCII on one line',
    });
    await emit();
    await waitFor(() => r.requests.length === 2, { what: 'second request' });
    expect(r.requests[1].headers.authorization).toBe('Bearer rcv-secret-5678');
    expect(r.requests[1].headers['x-team']).toBeUndefined();

    // endpoint.disabled carries the endpoint as the API shows it: masked.
    const gone = await receiver(() => ({ status: 410 }));
    const doomed = (
      await api
        .post('/v1/webhook-endpoints', { url: gone.url, event_types: ['conversion.created'], headers: { Authorization: 'Bearer gone-secret-9' } })
        .expect(201)
    ).body;
    await emit('conversion.created');
    const disabled = await waitFor(() => r.requests.map((q) => JSON.parse(q.body)).find((e) => e.type === 'endpoint.disabled'), { what: 'endpoint.disabled' });
    expect(disabled.data.endpoint).toMatchObject({ id: doomed.id, headers: { Authorization: '••••' } });
    expect(JSON.stringify(r.requests.map((q) => q.body))).not.toContain('gone-secret-9');
  });

  it('sends headers stored in plaintext before sealing, masks them, and seals them when the api starts', async () => {
    workers = await stack.startDelivery();
    const r = await receiver();
    const { id } = await endpoint(r.url);
    // A row as the previous version wrote it: the value in clear in "headers".
    await stack.db.pool.query(`UPDATE webhook_endpoints SET headers = '{"Authorization": "Bearer old-secret-42"}' WHERE id = $1`, [id]);
    await publishInvalidation(stack.producer, stack.prefix, 'endpoint', id);
    expect((await api.get(`/v1/webhook-endpoints/${id}`).expect(200)).body.headers).toEqual({ Authorization: '••••' });
    await emit();
    await waitFor(() => r.requests.length === 1, { what: 'request' });
    expect(r.requests[0].headers.authorization).toBe('Bearer old-secret-42');

    expect(await sealPlaintextHeaders(stack.db.prisma, createSecretBox(SECRETS_KEY))).toBe(1);
    expect(await sealPlaintextHeaders(stack.db.prisma, createSecretBox(SECRETS_KEY))).toBe(0);
    const { rows } = await stack.db.pool.query('SELECT headers, sealed_headers FROM webhook_endpoints WHERE id = $1', [id]);
    expect(rows[0].headers).toEqual({});
    expect(rows[0].sealed_headers).toEqual({ Authorization: expect.stringMatching(/^v1:/) });
    expect(JSON.stringify(rows[0])).not.toContain('old-secret-42');
    await publishInvalidation(stack.producer, stack.prefix, 'endpoint', id);
    expect((await api.get(`/v1/webhook-endpoints/${id}`).expect(200)).body.headers).toEqual({ Authorization: '••••' });
    await emit();
    await waitFor(() => r.requests.length === 2, { what: 'request after sealing' });
    expect(r.requests[1].headers.authorization).toBe('Bearer old-secret-42');
  });

  it('retries a receiver answering 500, 500, then 200, delivering on the third attempt with one webhook-id', async () => {
    workers = await stack.startDelivery();
    const r = await receiver((_req, n) => (n < 3 ? { status: 500, body: 'boom' } : { status: 200, body: 'thanks' }));
    const ep = await endpoint(r.url);
    const event = await emit();
    const delivery = await settled((await deliveryOf(ep.id, event.id)).id);
    expect(r.requests).toHaveLength(3);
    expect(new Set(r.requests.map((q) => q.headers['webhook-id']))).toEqual(new Set([event.id]));
    expect(delivery.attempts.map((a: { number: number; status_code: number; response_body: string }) => [a.number, a.status_code, a.response_body])).toEqual([
      [1, 500, 'boom'],
      [2, 500, 'boom'],
      [3, 200, 'thanks'],
    ]);
    for (const q of r.requests) expect(() => new Webhook(ep.secret).verify(q.body, q.headers as Record<string, string>)).not.toThrow();
  });

  it('logs a timeout as such and retries it', async () => {
    workers = await stack.startDelivery({ timeoutMs: 400 });
    const r = await receiver((_req, n) => (n === 1 ? { hang: true } : { status: 204 }));
    const ep = await endpoint(r.url);
    const event = await emit();
    const delivery = await settled((await deliveryOf(ep.id, event.id)).id);
    expect(delivery.attempts[0]).toMatchObject({ number: 1, status_code: null, error: 'timeout' });
    expect(delivery.attempts[0].duration_ms).toBeGreaterThanOrEqual(350);
    expect(delivery.attempts[1]).toMatchObject({ number: 2, status_code: 204, error: null });
  });

  it('disables an endpoint answering 410 Gone at once, and tells endpoint.disabled subscribers', async () => {
    workers = await stack.startDelivery();
    const gone = await receiver(() => ({ status: 410 }));
    const watcher = await receiver();
    const ep = await endpoint(gone.url, { event_types: ['conversion.created'] });
    await endpoint(watcher.url, { event_types: ['endpoint.disabled'] });
    const event = await emit('conversion.created');
    const delivery = await settled((await deliveryOf(ep.id, event.id)).id, 'failed');
    expect(delivery.attempts).toHaveLength(1);
    expect(gone.requests).toHaveLength(1);
    const { body } = await api.get(`/v1/webhook-endpoints/${ep.id}`).expect(200);
    expect(body).toMatchObject({ enabled: false, disabled_reason: expect.stringMatching(/410/) });
    await waitFor(() => watcher.requests.length === 1, { what: 'endpoint.disabled delivery' });
    expect(JSON.parse(watcher.requests[0].body)).toMatchObject({ type: 'endpoint.disabled', data: { endpoint: { id: ep.id, enabled: false } } });
  });

  it('honours Retry-After on 429/503 as sent (up to DELIVERY_RETRY_AFTER_MAX), never sooner than the schedule', async () => {
    workers = await stack.startDelivery({ schedule: [0, 300, 300, 300] });
    // Retry-After 2 s asks for more than the 300 ms step: honoured (it used to be clamped to
    // 2× the step, 600 ms). Retry-After 0 asks for less: raised to 300 ms (no jitter on it).
    const r = await receiver((_req, n) =>
      n === 1 ? { status: 429, headers: { 'Retry-After': '2' } } : n === 2 ? { status: 503, headers: { 'Retry-After': '0' } } : { status: 200 },
    );
    const ep = await endpoint(r.url);
    const event = await emit();
    await settled((await deliveryOf(ep.id, event.id)).id);
    const [first, second, third] = r.requests.map((q) => q.at);
    expect(second - first).toBeGreaterThanOrEqual(1_980);
    expect(second - first).toBeLessThan(3_500);
    expect(third - second).toBeGreaterThanOrEqual(280);
    expect(third - second).toBeLessThan(1_000);
  });

  it('keeps a dead letter after the last attempt, and replays it (retry) with the same webhook-id', async () => {
    workers = await stack.startDelivery();
    let healthy = false;
    const r = await receiver(() => ({ status: healthy ? 200 : 500 }));
    const ep = await endpoint(r.url);
    const event = await emit();
    const { id } = await deliveryOf(ep.id, event.id);
    const dead = await settled(id, 'failed');
    expect(dead.attempts).toHaveLength(3);
    expect(dead.next_attempt_at).toBeNull();
    const listed = await api.get(`/v1/webhook-endpoints/${ep.id}/deliveries?status=failed`).expect(200);
    expect(listed.body.data.map((d: { id: string }) => d.id)).toEqual([id]);

    healthy = true;
    await api.post(`/v1/deliveries/${id}/retry`).expect(202);
    const replayed = await settled(id);
    expect(replayed.attempts.at(-1)).toMatchObject({ number: 4, status_code: 200 });
    // A delivered event can be replayed too (the receiver lost it): same webhook-id again.
    await api.post(`/v1/deliveries/${id}/retry`).expect(202);
    await waitFor(async () => (await api.get(`/v1/deliveries/${id}`).expect(200)).body.attempts.length === 5, { what: 'the second replay' });
    expect(r.requests).toHaveLength(5);
    expect(new Set(r.requests.map((q) => q.headers['webhook-id']))).toEqual(new Set([event.id]));
  });

  it('replays again after a replay that ended without an attempt (its endpoint was disabled meanwhile)', async () => {
    workers = await stack.startDelivery();
    let healthy = false;
    const r = await receiver(() => ({ status: healthy ? 200 : 500 }));
    const ep = await endpoint(r.url);
    const event = await emit();
    const { id } = await deliveryOf(ep.id, event.id);
    await settled(id, 'failed');
    await stack.stopWorkers(workers);
    await api.post(`/v1/deliveries/${id}/retry`).expect(202);
    await api.post(`/v1/webhook-endpoints/${ep.id}/disable`).expect(200);
    workers = await stack.startDelivery();
    await settled(id, 'failed'); // the replay found the endpoint disabled: nothing sent
    const sent = r.requests.length;
    healthy = true;
    await api.post(`/v1/webhook-endpoints/${ep.id}/enable`).expect(200);
    await api.post(`/v1/deliveries/${id}/retry`).expect(202);
    await settled(id);
    expect(r.requests).toHaveLength(sent + 1);
  });

  it('recovers every failed delivery of an endpoint since a time', async () => {
    workers = await stack.startDelivery();
    let healthy = false;
    const r = await receiver(() => ({ status: healthy ? 200 : 503 }));
    const ep = await endpoint(r.url);
    const since = new Date(Date.now() - 1_000).toISOString();
    const events = [await emit(), await emit()];
    for (const e of events) await settled((await deliveryOf(ep.id, e.id)).id, 'failed');
    healthy = true;
    const res = await api.post(`/v1/webhook-endpoints/${ep.id}/recover`, { since }).expect(202);
    expect(res.body).toEqual({ recovered: 2, has_more: false });
    for (const e of events) await settled((await deliveryOf(ep.id, e.id)).id);
    const delivered = r.requests.filter((q) => q.at > 0).map((q) => q.headers['webhook-id']);
    expect(new Set(delivered)).toEqual(new Set(events.map((e) => e.id)));
    await api.post(`/v1/webhook-endpoints/${ep.id}/recover`, { since: 'yesterday' }).expect(400);
  });

  it('signs with the old and the new secret during a rotation: each verifies alone', async () => {
    workers = await stack.startDelivery();
    const r = await receiver();
    const ep = await endpoint(r.url);
    const rotated = await api.post(`/v1/webhook-endpoints/${ep.id}/rotate-secret`).expect(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(ep.secret);
    expect(Date.parse(rotated.body.previous_secret_expires_at) - Date.now()).toBeGreaterThan(23.9 * 3600 * 1000);
    await emit();
    await waitFor(() => r.requests.length === 1);
    const [req] = r.requests;
    expect(String(req.headers['webhook-signature']).split(' ')).toHaveLength(2);
    for (const secret of [ep.secret, rotated.body.secret]) {
      expect(new Webhook(secret).verify(req.body, req.headers as Record<string, string>)).toMatchObject({ id: req.headers['webhook-id'] });
    }
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 1).toString('base64')}`).verify(req.body, req.headers as Record<string, string>)).toThrow();
  });

  it('blocks a destination that resolves to a non-public address at send time, logged ssrf_blocked and not retried', async () => {
    workers = await stack.startDelivery({ policy: { allowedCidrs: [] } });
    const r = await receiver();
    // Accepted at create (a name; the API's policy allows loopback here), refused when sent.
    const ep = await endpoint(`http://localhost:${r.port}/hooks`);
    const event = await emit();
    const delivery = await settled((await deliveryOf(ep.id, event.id)).id, 'failed');
    expect(delivery.attempts).toEqual([expect.objectContaining({ number: 1, status_code: null, error: 'ssrf_blocked' })]);
    expect(r.requests).toHaveLength(0);
  });

  it('fans an event out once per endpoint, however often the event is published', async () => {
    workers = await stack.startDelivery();
    const r = await receiver();
    const ep = await endpoint(r.url);
    const event = await emit();
    await settled((await deliveryOf(ep.id, event.id)).id);
    // Published again (as the outbox relay could), once in the shape earlier versions enqueued.
    await stack.queues.events.add(event.type, { events: [event] }, { jobId: `${event.id}-again` });
    await stack.queues.events.add(event.type, event as never, { jobId: `${event.id}-legacy` });
    await waitFor(async () => (await stack.queues.events.getJob(`${event.id}-again`))?.finishedOn);
    await waitFor(async () => (await stack.queues.events.getJob(`${event.id}-legacy`))?.finishedOn);
    expect(await stack.queues.events.getJobState(`${event.id}-legacy`)).toBe('completed');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await stack.db.prisma.delivery.count({ where: { eventId: event.id, endpointId: ep.id } })).toBe(1);
    expect(r.requests).toHaveLength(1);
  });

  it('sends consecutive deliveries to one endpoint over a kept-alive connection', async () => {
    workers = await stack.startDelivery();
    const r = await receiver();
    await endpoint(r.url);
    for (let i = 0; i < 6; i++) {
      await emit();
      await waitFor(() => r.requests.length === i + 1, { what: `delivery ${i + 1}` });
    }
    // One connection (undici may open a second while the first settles), not one per delivery.
    expect(new Set(r.requests.map((q) => q.remotePort)).size).toBeLessThanOrEqual(2);
  });

  it('sees endpoint changes at once: cached lookups are invalidated on change', async () => {
    workers = await stack.startDelivery();
    const r = await receiver();
    const ep = await endpoint(r.url, { event_types: ['payout.sent'] });
    const ignored = await emit('conversion.created');
    // (An earlier test left a job of the one-event shape, without `events`, among the completed.)
    await waitFor(async () => (await stack.queues.events.getJobs(['completed'])).some((job) => job.data.events?.some((e) => e.id === ignored.id)));
    expect(await stack.db.prisma.delivery.count({ where: { eventId: ignored.id, endpointId: ep.id } })).toBe(0);
    await api.patch(`/v1/webhook-endpoints/${ep.id}`, { event_types: ['conversion.created'] }).expect(200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const wanted = await emit('conversion.created');
    await settled((await deliveryOf(ep.id, wanted.id)).id);
    expect(r.requests.map((q) => q.headers['webhook-id'])).toEqual([wanted.id]);
  });

  it('sends webhook.test to the one endpoint asked', async () => {
    workers = await stack.startDelivery();
    const [a, b] = [await receiver(), await receiver()];
    const epA = await endpoint(a.url);
    await endpoint(b.url);
    const res = await api.post(`/v1/webhook-endpoints/${epA.id}/test`).expect(202);
    await settled(res.body.delivery_id);
    expect(JSON.parse(a.requests[0].body)).toMatchObject({ id: res.body.event_id, type: 'webhook.test', data: { endpoint_id: epA.id } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(b.requests).toHaveLength(0);
  });
});

describe('webhook endpoint API', () => {
  it('creates an endpoint with a whsec_ secret shown once and stored encrypted', async () => {
    const res = await api
      .post('/v1/webhook-endpoints', { url: 'https://crm.example/hook', event_types: ['conversion.approved', 'conversion.approved'], description: 'CRM' })
      .expect(201);
    expect(res.body).toMatchObject({
      id: expect.stringMatching(/^ep_/),
      url: 'https://crm.example/hook',
      event_types: ['conversion.approved'],
      enabled: true,
      created_at: expect.any(String),
    });
    const key = Buffer.from(res.body.secret.slice('whsec_'.length), 'base64');
    expect(key.length).toBeGreaterThanOrEqual(24);
    expect(key.length).toBeLessThanOrEqual(64);
    const row = await stack.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: res.body.id } });
    expect(row.secretSealed).toMatch(/^v1:/);
    expect(row.secretSealed).not.toContain(res.body.secret.slice(6, 20));
    expect((await api.get(`/v1/webhook-endpoints/${res.body.id}`).expect(200)).body.secret).toBeUndefined();
  });

  it.each([
    ['unknown event types', { url: 'https://a.example/h', event_types: ['conversion.paid'] }, 'event_types'],
    ['no event types', { url: 'https://a.example/h', event_types: [] }, 'event_types'],
    ['a private address', { url: 'http://10.0.0.1/h', event_types: ['*'] }, 'url'],
    ['a link-local address', { url: 'http://169.254.169.254/latest', event_types: ['*'] }, 'url'],
    ['not a URL', { url: 'nope', event_types: ['*'] }, 'url'],
    ['a reserved header', { url: 'https://a.example/h', event_types: ['*'], headers: { 'webhook-id': 'x' } }, 'headers'],
    ['a rate limit of 0', { url: 'https://a.example/h', event_types: ['*'], rate_limit_per_second: 0 }, 'rate_limit_per_second'],
  ])('refuses %s with 400', async (_name, body, field) => {
    const res = await api.post('/v1/webhook-endpoints', body).expect(400);
    expect(Object.keys(res.body.error.fields)).toContain(field);
  });

  it('lists event types with example payloads', async () => {
    const res = await api.get('/v1/event-types').expect(200);
    expect(res.body.data.map((t: { type: string }) => t.type)).toEqual([
      'conversion.created',
      'conversion.approved',
      'conversion.rejected',
      'conversion.updated',
      'commission.created',
      'commission.updated',
      'fraud.flagged',
      'payout.sent',
      'endpoint.disabled',
      'webhook.test',
    ]);
    for (const t of res.body.data) expect(Object.keys(t.example).length).toBeGreaterThan(0);
  });

  it('enables, disables, updates and deletes', async () => {
    const { id } = await endpoint('https://a.example/h');
    expect((await api.post(`/v1/webhook-endpoints/${id}/disable`).expect(200)).body).toMatchObject({ enabled: false, disabled_reason: expect.any(String) });
    expect((await api.post(`/v1/webhook-endpoints/${id}/enable`).expect(200)).body).toMatchObject({ enabled: true, disabled_reason: null });
    expect((await api.patch(`/v1/webhook-endpoints/${id}`, { rate_limit_per_second: 5 }).expect(200)).body.rate_limit_per_second).toBe(5);
    await request(stack.api).delete(`/v1/webhook-endpoints/${id}`).set(stack.auth).expect(204);
    await api.get(`/v1/webhook-endpoints/${id}`).expect(404);
  });

  it("deleting an endpoint deletes its deliveries and their attempts, and nobody else's (the log has no foreign keys to cascade)", async () => {
    const gone = await endpoint('https://gone.example/h');
    const kept = await endpoint('https://kept.example/h');
    const event = createEvent('conversion.approved', {});
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, [event]));
    const ids = { gone: deliveryIdFor(event.id, gone.id), kept: deliveryIdFor(event.id, kept.id) };
    for (const [endpointId, id] of [
      [gone.id, ids.gone],
      [kept.id, ids.kept],
    ]) {
      await stack.db.pool.query(
        `INSERT INTO deliveries (id, event_id, endpoint_id, event_type, status, attempt_count, updated_at) VALUES ($1, $2, $3, $4, 'succeeded', 1, now())`,
        [id, event.id, endpointId, event.type],
      );
      await stack.db.pool.query(`INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, status_code) VALUES ($1, 1, now(), 4, 200)`, [id]);
    }
    await request(stack.api).delete(`/v1/webhook-endpoints/${gone.id}`).set(stack.auth).expect(204);
    const left = async (table: string, column: string) =>
      (await stack.db.pool.query(`SELECT ${column} AS id FROM ${table} WHERE ${column} = ANY($1)`, [[ids.gone, ids.kept]])).rows.map((r) => r.id);
    expect(await left('deliveries', 'id')).toEqual([ids.kept]);
    expect(await left('delivery_attempts', 'delivery_id')).toEqual([ids.kept]);
  });
});
