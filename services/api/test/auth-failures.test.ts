// AUTH_FAILURE_LIMIT on the admin side: bad admin tokens and failed /admin/login count per
// client address (in Redis, across replicas); past the limit, 429 with Retry-After, even for a
// valid token from that address. A limiter that cannot reach Redis never makes a 5xx.
import request from 'supertest';
import { type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
beforeAll(async () => {
  // TRUST_PROXY loopback: each test speaks for client addresses of its own.
  h = await startApi(undefined, undefined, { frontDoor: { authFailureLimit: 3, trustProxy: 'loopback' } });
});
afterAll(() => h.close());

const BAD = 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzY29wZSI6ImFkbWluIn0.bad';

it('answers 429 with Retry-After after AUTH_FAILURE_LIMIT bad tokens, while a valid token from that address still passes', async () => {
  const from = '198.51.100.10';
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push((await request(h.app).get('/v1/advertisers').set('Authorization', BAD).set('X-Forwarded-For', from)).status);
  expect(statuses).toEqual([401, 401, 401, 429]);
  const limited = await request(h.app).get('/v1/advertisers').set('Authorization', BAD).set('X-Forwarded-For', from).expect(429);
  expect(limited.body.error.code).toBe('rate_limited');
  expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
  // Someone failing from an admin's address (a NAT, an office) cannot lock the admin out.
  await request(h.app).get('/v1/advertisers').set(h.auth).set('X-Forwarded-For', from).expect(200);
});

it('does not count requests that carry no token', async () => {
  const from = '198.51.100.20';
  for (let i = 0; i < 5; i++) await request(h.app).get('/v1/advertisers').set('X-Forwarded-For', from).expect(401);
  await request(h.app).get('/v1/advertisers').set(h.auth).set('X-Forwarded-For', from).expect(200);
});

it('counts failed /admin/login attempts', async () => {
  const from = '198.51.100.30';
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++)
    statuses.push((await request(h.app).post('/admin/login').type('form').send({ token: 'not-a-token' }).set('X-Forwarded-For', from)).status);
  expect(statuses).toEqual([303, 303, 303, 429]);
  const refused = await request(h.app).post('/admin/login').type('form').send({ token: 'still-not-a-token' }).set('X-Forwarded-For', from).expect(429);
  expect(refused.body.error.code).toBe('rate_limited');
  const valid = await request(h.app).post('/admin/login').type('form').send({ token: h.token }).set('X-Forwarded-For', from).expect(303);
  expect(valid.headers.location).toBe('/admin/queues');
});

it('shares the count between replicas through Redis', async () => {
  const other = await startApi(undefined, h.db, { frontDoor: { authFailureLimit: 3, trustProxy: 'loopback', prefix: h.prefix } });
  try {
    const from = '198.51.100.40';
    for (let i = 0; i < 2; i++) await request(h.app).get('/v1/advertisers').set('Authorization', BAD).set('X-Forwarded-For', from).expect(401);
    await request(other.app).get('/v1/advertisers').set('Authorization', BAD).set('X-Forwarded-For', from).expect(401);
    await request(other.app).get('/v1/advertisers').set('Authorization', BAD).set('X-Forwarded-For', from).expect(429);
  } finally {
    await other.close();
  }
});

it('answers 401, never a 5xx, when the limiter cannot reach Redis (each process counts alone)', async () => {
  const down = await startApi(undefined, h.db, { frontDoor: { authFailureLimit: 3 }, redisUrl: 'redis://127.0.0.1:1' });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(down.app).get('/v1/advertisers').set('Authorization', BAD)).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
  } finally {
    await down.close();
  }
});

it('counts bad Bearer tokens on Bull Board too', async () => {
  const from = '198.51.100.50';
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++)
    statuses.push((await request(h.app).get('/admin/queues/api/queues').set('Authorization', BAD).set('X-Forwarded-For', from)).status);
  expect(statuses).toEqual([401, 401, 401, 429]);
  await request(h.app).get('/admin/queues/api/queues').set(h.auth).set('X-Forwarded-For', from).expect(200);
});
