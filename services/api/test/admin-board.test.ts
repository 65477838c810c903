// Bull Board sessions over HTTP (the browser walk-through is test/bull-board.test.ts): a
// session cookie stops working everywhere once its owner logs out, even if it was copied.
import { decodeJwt } from 'jose';
import request from 'supertest';
import { signAdminToken } from '../src/auth';
import { ADMIN_SECRET, type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
beforeAll(async () => {
  h = await startApi();
});
afterAll(() => h.close());

async function logIn(): Promise<string> {
  const res = await request(h.app)
    .post('/admin/login')
    .type('form')
    .send({ token: await signAdminToken(ADMIN_SECRET) })
    .expect(303);
  expect(res.headers.location).toBe('/admin/queues');
  const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('trackway_admin='));
  expect(cookie).toBeDefined();
  return cookie!.split(';')[0];
}

const board = (cookie: string) => request(h.app).get('/admin/queues/api/queues').set('Cookie', cookie);

describe('Bull Board sessions', () => {
  it('ends a session server-side at logout: a copied cookie stops working', async () => {
    const cookie = await logIn();
    const copied = cookie;
    await board(copied).expect(200);
    const out = await request(h.app).post('/admin/logout').set('Cookie', cookie).expect(303);
    expect(out.headers.location).toBe('/admin/login');
    expect(String(out.headers['set-cookie'])).toMatch(/^trackway_admin=;.*Max-Age=0/);
    const refused = await board(copied).expect(401);
    expect(refused.body.error.code).toBe('unauthorized');
    // The page itself sends the browser back to the login.
    expect((await request(h.app).get('/admin/queues').set('Cookie', copied).set('Accept', 'text/html').expect(302)).headers.location).toBe('/admin/login');
  });

  it('keeps other sessions: logging out ends only the one logged out', async () => {
    const [first, second] = [await logIn(), await logIn()];
    await request(h.app).post('/admin/logout').set('Cookie', first).expect(303);
    await board(first).expect(401);
    await board(second).expect(200);
  });

  it('remembers a revoked session in Redis, under the prefix, only until it would have expired', async () => {
    const cookie = await logIn();
    await request(h.app).post('/admin/logout').set('Cookie', cookie).expect(303);
    const { jti } = decodeJwt(cookie.slice('trackway_admin='.length));
    const ttl = await h.redis.ttl(`${h.prefix}:admin-session-revoked:${jti}`);
    // The session lasts the shorter of 8 h and the admin token's 12 h.
    expect(ttl).toBeGreaterThan(8 * 3600 - 60);
    expect(ttl).toBeLessThanOrEqual(8 * 3600);
  });

  it('logs out without a session, or with a forged one, harmlessly', async () => {
    await request(h.app).post('/admin/logout').expect(303);
    await request(h.app).post('/admin/logout').set('Cookie', 'trackway_admin=not.a.jwt').expect(303);
  });

  it('answers 503 while Redis is unreachable: a session is neither checked nor ended without it', async () => {
    const cookie = await logIn();
    h.redis.disconnect();
    try {
      expect((await board(cookie).expect(503)).body.error.code).toBe('unavailable');
      const out = await request(h.app).post('/admin/logout').set('Cookie', cookie).expect(503);
      expect(String(out.headers['set-cookie'])).toMatch(/^trackway_admin=;.*Max-Age=0/);
    } finally {
      await h.redis.connect();
    }
    await board(cookie).expect(200);
  });
});

describe('Bull Board queues', () => {
  it('lists every queue, each delivery shard as a queue of its own', async () => {
    const sharded = await startApi(undefined, h.db, { deliveryShards: 3 });
    try {
      const res = await request(sharded.app)
        .post('/admin/login')
        .type('form')
        .send({ token: await signAdminToken(ADMIN_SECRET) })
        .expect(303);
      const cookie = ([] as string[])
        .concat(res.headers['set-cookie'] ?? [])
        .find((c) => c.startsWith('trackway_admin='))!
        .split(';')[0];
      const listed = (await request(sharded.app).get('/admin/queues/api/queues').set('Cookie', cookie).expect(200)).body.queues.map(
        (q: { name: string }) => q.name,
      );
      expect(listed.sort()).toEqual(['clicks', 'deliveries', 'deliveries-1', 'deliveries-2', 'events', 'housekeeping', 'outbox', 'postbacks']);
    } finally {
      await sharded.close();
    }
  });
});
