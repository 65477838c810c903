// Idempotency-Key on admin POSTs (as Stripe), and X-Request-Id on every answer.
import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import { signAdminToken } from '../src/auth';
import { HttpError, rateLimited, unavailable } from '@trackway/http';
import { createLogger } from '@trackway/logger';
import { pruneIdempotencyKeys, runIdempotent, startIdempotencyPruning } from '../src/idempotency';
import request from 'supertest';
import { ADMIN_SECRET, type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
beforeAll(async () => {
  h = await startApi();
});
afterAll(() => h.close());

let n = 0;
const newKey = () => `key-${process.pid}-${Date.now()}-${++n}`;
const post = (path: string, key: string | undefined, body?: object, auth = h.auth) => {
  const req = request(h.app).post(path).set(auth);
  if (key !== undefined) req.set('Idempotency-Key', key);
  return body === undefined ? req : req.send(body);
};
const affiliatesNamed = (name: string) => h.db.prisma.affiliate.count({ where: { name } });

describe('Idempotency-Key', () => {
  it('the same key and body answer the first answer, without doing it again', async () => {
    const key = newKey();
    const first = await post('/v1/affiliates', key, { name: 'Once' }).expect(201);
    const again = await post('/v1/affiliates', key, { name: 'Once' }).expect(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(await affiliatesNamed('Once')).toBe(1);
    // Key order in the body does not make it another request.
    const { body: a } = await post('/v1/advertisers', newKey(), { name: 'Ordered' }).expect(201);
    const offer = { advertiser_id: a.id, name: 'O', destination_url: 'https://shop.example/', currency: 'USD', payout: { type: 'fixed', amount: '1' } };
    const offerKey = newKey();
    const created = await post('/v1/offers', offerKey, offer).expect(201);
    const reordered = Object.fromEntries(Object.entries(offer).reverse());
    expect((await post('/v1/offers', offerKey, reordered).expect(201)).body.id).toBe(created.body.id);
  });

  it('without a key, every POST does its thing', async () => {
    await post('/v1/affiliates', undefined, { name: 'Twice' }).expect(201);
    await post('/v1/affiliates', undefined, { name: 'Twice' }).expect(201);
    expect(await affiliatesNamed('Twice')).toBe(2);
  });

  it('the key with another body, or on another route, is 422 idempotency_key_reused', async () => {
    const key = newKey();
    await post('/v1/affiliates', key, { name: 'First' }).expect(201);
    const other = await post('/v1/affiliates', key, { name: 'Second' }).expect(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    const route = await post('/v1/advertisers', key, { name: 'First' }).expect(422);
    expect(route.body.error.code).toBe('idempotency_key_reused');
    expect(await affiliatesNamed('Second')).toBe(0);
  });

  it('two concurrent POSTs with one key create one affiliate; the other is replayed or told 409 idempotency_key_in_progress', async () => {
    const key = newKey();
    const answers = await Promise.all(Array.from({ length: 8 }, () => post('/v1/affiliates', key, { name: 'Concurrent' })));
    expect(await affiliatesNamed('Concurrent')).toBe(1);
    const created = answers.filter((res) => res.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    for (const res of created) expect(res.body).toEqual(created[0].body);
    for (const res of answers.filter((r) => r.status !== 201)) {
      expect([res.status, res.body.error.code, res.headers['retry-after']]).toEqual([409, 'idempotency_key_in_progress', '1']);
    }
  });

  it('keys are per caller: another subject with the same key does its own request', async () => {
    const key = newKey();
    await post('/v1/affiliates', key, { name: 'Per caller' }).expect(201);
    const other = { Authorization: `Bearer ${await signAdminToken(ADMIN_SECRET, { subject: 'someone-else' })}` };
    await post('/v1/affiliates', key, { name: 'Per caller' }, other).expect(201);
    expect(await affiliatesNamed('Per caller')).toBe(2);
  });

  it('path parameters are part of the request: the key on the same route for another id is 422 idempotency_key_reused', async () => {
    const { body: a } = await post('/v1/advertisers', newKey(), { name: 'Path A' }).expect(201);
    const { body: b } = await post('/v1/advertisers', newKey(), { name: 'Path B' }).expect(201);
    const hashOf = async (id: number) => (await h.db.prisma.advertiser.findUniqueOrThrow({ where: { id } })).postbackKeyHash;
    const bHash = await hashOf(b.id);
    const key = newKey();
    const rotated = await post(`/v1/advertisers/${a.id}/rotate-key`, key).expect(200);
    const other = await post(`/v1/advertisers/${b.id}/rotate-key`, key).expect(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    // B's key was not rotated, and A's request is still replayed as it was.
    expect(await hashOf(b.id)).toBe(bHash);
    const again = await post(`/v1/advertisers/${a.id}/rotate-key`, key).expect(200);
    expect([again.headers['idempotent-replayed'], again.body.postback_key]).toEqual(['true', rotated.body.postback_key]);
  });

  it('a final refusal is replayed too; input the route cannot parse claims no key', async () => {
    const key = newKey();
    const refused = await post('/v1/payouts', key, { affiliate_id: 2_147_483_000, currency: 'USD' }).expect(400);
    const replayed = await post('/v1/payouts', key, { affiliate_id: 2_147_483_000, currency: 'USD' }).expect(400);
    expect(replayed.body).toEqual(refused.body);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    // Input the route cannot parse claims no key: the same key then serves the corrected request.
    const fixKey = newKey();
    await post('/v1/affiliates', fixKey, { name: '' }).expect(400);
    await post('/v1/affiliates', fixKey, { name: 'Fixed' }).expect(201);
  });

  it('an answer that says nothing was done (503, 429, 409 conflict) releases the key: the retry runs', async () => {
    const key = newKey();
    const request_ = { key, caller: { sub: 'releaser' }, route: 'post /v1/test', params: {}, body: { n: 1 } };
    let runs = 0;
    const failing = async () => {
      runs += 1;
      throw unavailable('Redis is down.');
    };
    await expect(runIdempotent(h.deps, request_, failing, () => 'rid')).rejects.toThrow('Redis is down.');
    await expect(runIdempotent(h.deps, request_, failing, () => 'rid')).rejects.toThrow('Redis is down.');
    expect(runs).toBe(2);
    const done = await runIdempotent(
      h.deps,
      request_,
      async () => ({ status: 201, body: { ok: true } }),
      () => 'rid',
    );
    expect(done).toEqual({ status: 201, body: { ok: true }, replayed: false });
    const again = await runIdempotent(h.deps, request_, failing, () => 'rid');
    expect([again.replayed, JSON.parse(again.body as string), runs]).toEqual([true, { ok: true }, 2]);
  });

  it.each([
    ['429', () => rateLimited('Too many requests; retry after Retry-After seconds.', 1)],
    ['409 conflict', () => new HttpError(409, 'conflict', 'The secret was rotated concurrently; fetch it and retry.')],
  ])('a %s releases the key too: the same request with the same key runs again', async (_, refusal) => {
    const { status, code } = refusal();
    const request_ = { key: newKey(), caller: { sub: 'releaser' }, route: 'post /v1/test', params: {}, body: { refused: code } };
    let runs = 0;
    const refused = async (): Promise<{ status: number; body: unknown }> => {
      runs += 1;
      throw refusal();
    };
    await expect(runIdempotent(h.deps, request_, refused, () => 'rid')).rejects.toMatchObject({ status, code });
    // Not replayed (kept, it would resolve with the refusal) nor 409 idempotency_key_in_progress: it runs again.
    await expect(runIdempotent(h.deps, request_, refused, () => 'rid')).rejects.toMatchObject({ status, code });
    expect(runs).toBe(2);
    const done = await runIdempotent(
      h.deps,
      request_,
      async () => ({ status: 200, body: { ok: true } }),
      () => 'rid',
    );
    expect(done).toEqual({ status: 200, body: { ok: true }, replayed: false });
  });

  it('a 409 with another code is the final answer, kept and replayed (only 409 conflict releases the key)', async () => {
    const request_ = { key: newKey(), caller: { sub: 'releaser' }, route: 'post /v1/test', params: {}, body: { refused: 'already_sent' } };
    let runs = 0;
    const refused = async (): Promise<{ status: number; body: unknown }> => {
      runs += 1;
      throw new HttpError(409, 'already_sent', 'The payout was already marked sent.');
    };
    await expect(runIdempotent(h.deps, request_, refused, () => 'rid')).rejects.toMatchObject({ status: 409, code: 'already_sent' });
    const replayed = await runIdempotent(h.deps, request_, refused, () => 'rid');
    expect([replayed.status, replayed.replayed, runs]).toEqual([409, true, 1]);
    expect(JSON.parse(replayed.body as string)).toMatchObject({ error: { code: 'already_sent' } });
  });

  it('keeps a 500 as the answer (as Stripe does): the request may have done its work before it failed', async () => {
    const request_ = { key: newKey(), caller: { sub: 'bug' }, route: 'post /v1/test', params: {}, body: { n: 2 } };
    let runs = 0;
    const buggy = async (): Promise<{ status: number; body: unknown }> => {
      runs += 1;
      throw new TypeError("Cannot read properties of undefined (reading 'id')");
    };
    await expect(runIdempotent(h.deps, request_, buggy, () => 'rid-1')).rejects.toThrow(TypeError);
    const replayed = await runIdempotent(h.deps, request_, buggy, () => 'rid-2');
    expect([replayed.status, replayed.replayed, runs]).toEqual([500, true, 1]);
    expect(JSON.parse(replayed.body as string)).toMatchObject({ error: { code: 'internal_error', request_id: 'rid-1' } });
  });

  it('a bad key is a 400 naming the header', async () => {
    for (const key of ['', 'x'.repeat(256), 'tab\there', 'é']) {
      const res = await request(h.app)
        .post('/v1/affiliates')
        .set(h.auth)
        .set('Idempotency-Key', Buffer.from(key, 'latin1').toString('latin1'))
        .send({ name: 'Bad key' });
      expect([key.slice(0, 10), res.status, res.body.error?.fields]).toEqual([
        key.slice(0, 10),
        400,
        { 'Idempotency-Key': 'must be 1 to 255 printable ASCII characters' },
      ]);
    }
    expect(await affiliatesNamed('Bad key')).toBe(0);
    await post('/v1/affiliates', 'x'.repeat(255), { name: 'Longest key' }).expect(201);
  });

  it('answers that show a secret once are stored only sealed', async () => {
    const key = newKey();
    const created = await post('/v1/advertisers', key, { name: 'Sealed' }).expect(201);
    const { body: endpoint } = await post('/v1/webhook-endpoints', newKey(), { url: 'http://127.0.0.1:9/hook', event_types: ['*'] }).expect(201);
    const rotateKey = newKey();
    const rotated = await post(`/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, rotateKey).expect(200);
    const rows = await h.db.pool.query<{ body: string }>('SELECT body FROM idempotency_keys');
    const stored = rows.rows.map((row) => row.body).join('\n');
    for (const secret of [created.body.postback_key, endpoint.secret, rotated.body.secret]) expect(stored).not.toContain(secret);
    expect(rows.rows.every((row) => row.body.startsWith('v1:'))).toBe(true);
    // …and replayed as they were.
    expect((await post('/v1/advertisers', key, { name: 'Sealed' }).expect(201)).body.postback_key).toBe(created.body.postback_key);
    expect((await post(`/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, rotateKey).expect(200)).body.secret).toBe(rotated.body.secret);
  });

  it('lasts 24 hours: an expired key is not replayed, and pruning removes it', async () => {
    const key = newKey();
    await post('/v1/affiliates', key, { name: 'Expiring' }).expect(201);
    await h.db.pool.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1", [key]);
    // Expired: the request runs again (a second affiliate).
    await post('/v1/affiliates', key, { name: 'Expiring' }).expect(201);
    expect(await affiliatesNamed('Expiring')).toBe(2);
    await h.db.pool.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1", [key]);
    const live = newKey();
    await post('/v1/affiliates', live, { name: 'Live' }).expect(201);
    expect(await pruneIdempotencyKeys(h.db.prisma, 1)).toBeGreaterThanOrEqual(1);
    const left = await h.db.pool.query<{ key: string }>('SELECT key FROM idempotency_keys WHERE expires_at <= now()');
    expect(left.rows).toEqual([]);
    expect((await h.db.pool.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [live])).rowCount).toBe(1);
  });

  it('prunes expired keys every 10 minutes, at most 10,000 rows a run', async () => {
    await h.db.pool.query('DELETE FROM idempotency_keys WHERE expires_at <= now()');
    await h.db.pool.query(`
      INSERT INTO idempotency_keys (scope, key, fingerprint, created_at, expires_at)
      SELECT 'prune', 'expired-' || i, 'f', now() - interval '2 days', now() - interval '1 day' FROM generate_series(1, 10007) AS i`);
    const expired = async () =>
      Number((await h.db.pool.query<{ n: string }>('SELECT count(*) AS n FROM idempotency_keys WHERE expires_at <= now()')).rows[0].n);
    const lines: string[] = [];
    const logger = createLogger({ service: 'test', level: 'info', destination: { write: (line: string) => void lines.push(line) } });
    const counts = () => lines.map((line) => JSON.parse(line)).flatMap((line) => (typeof line.count === 'number' ? [line.count] : []));
    const logged = async (n: number) => {
      for (let waited = 0; counts().length < n && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    // Only the interval is faked: Postgres, Redis and the polling above keep real time.
    jest.useFakeTimers({
      doNotFake: ['Date', 'hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setTimeout', 'clearTimeout'],
    });
    // A run's first DELETE is sent as the interval fires (synchronously), so this tells whether it fired.
    const deletes = jest.spyOn(h.db.prisma, '$executeRaw');
    const stop = startIdempotencyPruning(h.db.prisma, logger);
    try {
      jest.advanceTimersByTime(10 * 60 * 1000 - 1);
      expect(deletes).not.toHaveBeenCalled();
      jest.advanceTimersByTime(1);
      expect(deletes).toHaveBeenCalledTimes(1);
      await logged(1);
      expect([counts(), await expired()]).toEqual([[10_000], 7]);
      jest.advanceTimersByTime(10 * 60 * 1000);
      await logged(2);
      expect([counts(), await expired()]).toEqual([[10_000, 7], 0]);
    } finally {
      stop();
      deletes.mockRestore();
      jest.useRealTimers();
    }
  });

  it('never takes over a claim left without an answer (its action may have committed): 409 until the key expires', async () => {
    const key = newKey();
    const scope = createHash('sha256')
      .update(String(decodeJwt(h.auth.Authorization.slice('Bearer '.length)).sub))
      .digest('hex');
    const body = { name: 'Interrupted' };
    const created = await post('/v1/affiliates', key, body).expect(201);
    // As if the process had died after the affiliate was created, before its answer was recorded.
    await h.db.pool.query("UPDATE idempotency_keys SET status = NULL, body = NULL, created_at = now() - interval '1 day' WHERE scope = $1 AND key = $2", [
      scope,
      key,
    ]);
    const refused = await post('/v1/affiliates', key, body).expect(409);
    expect(refused.body.error.code).toBe('idempotency_key_in_progress');
    expect(await affiliatesNamed('Interrupted')).toBe(1);
    expect(created.body.name).toBe('Interrupted');
  });
});

describe('X-Request-Id', () => {
  it('is on every answer, taken from the request when sane, and in the error envelope', async () => {
    for (const path of ['/healthz', '/openapi.json', '/v1/affiliates', '/nope']) {
      const res = await request(h.app).get(path).set(h.auth);
      expect([path, res.headers['x-request-id']]).toEqual([path, expect.stringMatching(/^[0-9a-f-]{36}$/)]);
    }
    const mine = await request(h.app).get('/v1/affiliates/999999').set(h.auth).set('X-Request-Id', 'lb-7f3a:9c.1').expect(404);
    expect(mine.headers['x-request-id']).toBe('lb-7f3a:9c.1');
    expect(mine.body.error.request_id).toBe('lb-7f3a:9c.1');
    const unauthenticated = await request(h.app).get('/v1/affiliates').expect(401);
    expect(unauthenticated.body.error.request_id).toBe(unauthenticated.headers['x-request-id']);
    for (const insane of ['x'.repeat(129), 'a b', 'a"b', 'a;b', '<script>']) {
      const res = await request(h.app).get('/v1/affiliates/999999').set(h.auth).set('X-Request-Id', insane).expect(404);
      expect([insane, res.headers['x-request-id']]).toEqual([insane, expect.stringMatching(/^[0-9a-f-]{36}$/)]);
    }
  });

  it('is on the request’s log lines', async () => {
    const lines: string[] = [];
    const logged = await startApi(undefined, h.db, { logLines: lines });
    try {
      await request(logged.app).get('/v1/affiliates').set(logged.auth).set('X-Request-Id', 'trace-42').expect(200);
      const line = lines.map((l) => JSON.parse(l)).find((l) => l.req?.url === '/v1/affiliates');
      expect(line).toMatchObject({ request_id: 'trace-42' });
    } finally {
      await logged.close();
    }
  });
});
