// The front door stays open: each service, run as its own process with Redis unreachable from
// the start, listens and answers (503 with Retry-After where Redis is needed, /readyz 503 naming
// the check, /healthz 200), logs the outage as one line per interval instead of a line per queue
// per retry, and recovers by itself once a Redis appears on that port: postbacks are queued,
// attributed and delivered, job schedulers are in place and cache invalidation works again.
import { createClickIdCodec } from '@trackway/clickid';
import { REPEAT_INTERVAL_MS } from '@trackway/logger';
import { createProducerConnection, createQueue, whenReady } from '@trackway/queues';
import {
  createFixture,
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  type OwnRedis,
  ownRedis,
  randomPrefix,
  type Receiver,
  startReceiver,
  type TestDatabase,
  waitFor,
} from '@trackway/testing';
import request from 'supertest';
import { signAdminToken } from '../services/api/src/auth';
import { type ServiceProcess, startService, stackEnv } from './support/processes';
import { STACK_SECRET } from './support/stack';

const METRICS_TOKEN = 'front-door-metrics-token-0123456789abcdef';
const SERVICES = ['ingest', 'api', 'attribution', 'delivery'] as const;
type Service = (typeof SERVICES)[number];

let db: TestDatabase;
let redis: OwnRedis;
let receiver: Receiver;
const running: ServiceProcess[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
  redis = ownRedis(await freePort());
  receiver = await startReceiver();
});
afterAll(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  await redis.stop();
  await receiver.close();
  await db.drop();
});

const outageMessage = /^redis (still )?unavailable$/;

const parse = (line: string): { level?: string; msg?: string } | null => {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
};

/** The lines a person would have to read: warnings, errors and anything that is not a JSON line. */
const noisyLines = (output: string) =>
  output
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => {
      const parsed = parse(line);
      return parsed === null || ['warn', 'error', 'fatal'].includes(parsed.level ?? '');
    });

const bearer = { Authorization: `Bearer ${METRICS_TOKEN}` };
const base = (p: { port: number }) => `http://127.0.0.1:${p.port}`;

type Started = Record<Service, ServiceProcess & { port: number }>;

/** The four services as processes, each once it listens (a service that never does fails the test, named). */
async function startAll(env: Record<string, string>): Promise<Started> {
  const started = await Promise.allSettled(SERVICES.map((service) => startService(service, env)));
  for (const s of started) if (s.status === 'fulfilled') running.push(s.value);
  const failed = started.flatMap((s, i) => (s.status === 'rejected' ? [`${SERVICES[i]}: ${(s.reason as Error).message}`] : []));
  expect(failed).toEqual([]);
  return Object.fromEntries(SERVICES.map((service, i) => [service, (started[i] as PromiseFulfilledResult<Started[Service]>).value])) as Started;
}

/** Each service's /readyz with its details: on the public ports they take the metrics token, on the health ports nothing. */
const readiness = (all: Started) =>
  Promise.all(
    SERVICES.map(async (service) =>
      request(base(all[service]))
        .get('/readyz')
        .set(service === 'ingest' || service === 'api' ? bearer : {})
        .then(
          (res) => ({ service, status: res.status, checks: (res.body.checks ?? {}) as Record<string, string> }),
          () => ({ service, status: 0, checks: {} as Record<string, string> }),
        ),
    ),
  );

/**
 * What a service's /readyz says of the checks that wait for Redis to answer once: the
 * cache-invalidation subscription and the job schedulers (`absent` where the service has none).
 */
const startUpChecks = ({ service, checks }: { service: Service; checks: Record<string, string> }) => {
  const summary = (result: string | undefined) => {
    if (result === undefined) return 'absent';
    if (result === 'ok') return 'ok';
    if (/^not subscribed\b/.test(result)) return 'not subscribed';
    if (/^(waiting for redis|not done yet: )/.test(result)) return 'not done';
    return result;
  };
  return { service, invalidations: summary(checks.invalidations), schedulers: summary(checks.schedulers) };
};

/** SIGTERM to each; every one must finish its shutdown steps (exit 0, not the deadline's 1). */
async function stopAll(all: Started) {
  for (const service of SERVICES) all[service].child.kill('SIGTERM');
  expect(await Promise.all(SERVICES.map((service) => all[service].exited))).toEqual(SERVICES.map(() => 0));
  for (const service of SERVICES) expect(all[service].output()).not.toMatch(/shutdown deadline passed|shutdown step failed/);
}

it('listens and answers with Redis unreachable from the start, logs one line per interval, and recovers by itself', async () => {
  const fx = await createFixture(db.prisma);
  const prefix = randomPrefix();
  const env = stackEnv({ db, prefix }, { REDIS_URL: redis.url, METRICS_TOKEN, SHUTDOWN_DRAIN_MS: '0' });
  const spawnedAt = Date.now();
  const all = await startAll(env);
  const { ingest, api, attribution, delivery } = all;
  const admin = { Authorization: `Bearer ${await signAdminToken(STACK_SECRET)}` };
  const clickId = createClickIdCodec(STACK_SECRET).issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });

  // Alive everywhere; not ready, and to whoever may see it, because of Redis.
  for (const p of [ingest, api, attribution, delivery]) await request(base(p)).get('/healthz').expect(200);
  for (const p of [ingest, api]) {
    const anonymous = await request(base(p)).get('/readyz');
    expect({ status: anonymous.status, body: anonymous.body }).toEqual({ status: 503, body: { status: 'not_ready' } });
  }
  // Redis alone is at fault (a check that took over its 2 s on a loaded machine is asked again).
  const notReady = await waitFor(
    async () => {
      const results = await readiness(all);
      return results.every((r) => r.checks.postgres === 'ok') ? results : null;
    },
    { timeoutMs: 15_000, intervalMs: 500, what: 'Postgres to be seen reachable by every service' },
  );
  for (const { service, status, checks } of notReady)
    expect({ service, status, redis: /^unreachable \(/.test(checks.redis) }).toEqual({ service, status: 503, redis: true });
  // Until Redis has answered, the cache-invalidation subscription (ingest and the workers) and the
  // job schedulers (the workers) are named as not in place.
  expect(notReady.map(startUpChecks)).toEqual([
    { service: 'ingest', invalidations: 'not subscribed', schedulers: 'absent' },
    { service: 'api', invalidations: 'absent', schedulers: 'absent' },
    { service: 'attribution', invalidations: 'not subscribed', schedulers: 'not done' },
    { service: 'delivery', invalidations: 'not subscribed', schedulers: 'not done' },
  ]);
  // Metrics answer too (the queue depths need Redis: left out until it answers).
  for (const p of [attribution, delivery]) await request(base(p)).get('/metrics').expect(200);
  await request(base(ingest)).get('/metrics').set(bearer).expect(200);

  // The hot paths: a postback cannot be queued (503 at once, with Retry-After and the envelope);
  // a click still redirects; the api's Redis-backed lookups say 503, its Postgres ones answer.
  const refused = await request(base(ingest)).get('/postback').query({ key: fx.postbackKey, click_id: clickId, order_id: 'DOWN-1' });
  expect({ status: refused.status, retryAfter: refused.headers['retry-after'], code: refused.body.error?.code }).toEqual({
    status: 503,
    retryAfter: '5',
    code: 'unavailable',
  });
  const click = await request(base(ingest)).get('/click').query({ offer_id: fx.offerId, affiliate_id: fx.affiliateId });
  expect(click.status).toBe(302);
  expect(click.headers.location).toMatch(/^https:\/\/shop\.example\/landing\?/);
  const queued = await request(base(api)).get('/v1/postbacks/pb_00000000000000000000000000').set(admin);
  expect({ status: queued.status, retryAfter: queued.headers['retry-after'], code: queued.body.error?.code }).toEqual({
    status: 503,
    retryAfter: '5',
    code: 'unavailable',
  });
  await request(base(api)).get('/v1/advertisers').set(admin).expect(200);

  // Let every connection, queue and worker go through several reconnect rounds (each retries
  // within 2 s), then count what a person would have to read: only outage lines, at most one
  // at the start and one per interval after it.
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  const bound = 1 + Math.floor((Date.now() - spawnedAt) / REPEAT_INTERVAL_MS);
  const logs = SERVICES.map((service) => {
    const lines = noisyLines(all[service].output());
    const outage = lines.filter((line) => outageMessage.test(parse(line)?.msg ?? ''));
    return { service, outageLines: outage.length, otherLines: lines.filter((line) => !outage.includes(line)) };
  });
  expect(logs.filter((l) => l.outageLines === 0 || l.outageLines > bound || l.otherLines.length > 0)).toEqual([]);

  // Redis appears: every service becomes ready by itself.
  redis.start();
  const ready = await waitFor(
    async () => {
      const results = await readiness(all);
      return results.every((r) => r.status === 200) ? results : null;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'every service to be ready after Redis came' },
  );
  // The subscription is made and the schedulers are in place: those checks say ok now.
  expect(ready.map(startUpChecks)).toEqual([
    { service: 'ingest', invalidations: 'ok', schedulers: 'absent' },
    { service: 'api', invalidations: 'absent', schedulers: 'absent' },
    { service: 'attribution', invalidations: 'ok', schedulers: 'ok' },
    { service: 'delivery', invalidations: 'ok', schedulers: 'ok' },
  ]);
  // Said once every connection is back (readiness needs only some of them).
  await Promise.all([ingest, api, attribution, delivery].map((p) => p.waitForOutput(/"msg":"redis available again"/, 15_000)));

  // The job schedulers were put in place once Redis answered.
  const own = createProducerConnection(redis.url);
  try {
    expect(await whenReady(own)).toBe(true);
    const schedulers = async (name: 'outbox' | 'housekeeping') => {
      const queue = createQueue(name, own, prefix, () => undefined);
      try {
        return (await queue.getJobSchedulers()).map((s) => s.key).sort();
      } finally {
        await queue.close();
      }
    };
    expect(await schedulers('outbox')).toEqual(['outbox-relay']);
    expect(await schedulers('housekeeping')).toEqual(['prune-delivery-log', 'sweep-deliveries']);
  } finally {
    own.disconnect();
  }

  // A postback is queued, attributed and delivered.
  await request(base(api))
    .post('/v1/webhook-endpoints')
    .set(admin)
    .send({ url: receiver.url, event_types: ['conversion.created'] })
    .expect(201);
  const accepted = await request(base(ingest)).get('/postback').query({ key: fx.postbackKey, click_id: clickId, order_id: 'UP-1' }).expect(202);
  await waitFor(async () => (await db.prisma.postback.findUnique({ where: { id: accepted.body.postback_id } }))?.status === 'accepted', {
    timeoutMs: 20_000,
    what: 'the postback to be attributed',
  });
  await waitFor(() => receiver.requests.some((r) => JSON.parse(r.body).type === 'conversion.created'), {
    timeoutMs: 20_000,
    what: 'conversion.created to be delivered',
  });

  // Cache invalidation works again: the key cached by the postback above stops working as soon
  // as it is rotated (without the subscription it would keep working for the cache's 30 s).
  const rotated = await request(base(api)).post(`/v1/advertisers/${fx.advertiserId}/rotate-key`).set(admin).expect(200);
  const withKey = (key: string, order: string) =>
    request(base(ingest))
      .get('/postback')
      .query({ key, click_id: clickId, order_id: order })
      .then((res) => res.status);
  await waitFor(async () => (await withKey(fx.postbackKey, 'UP-2')) === 401, { timeoutMs: 5_000, what: 'the old key to be refused' });
  expect(await withKey(rotated.body.postback_key, 'UP-3')).toBe(202);

  await stopAll(all);
}, 120_000);

it('stops cleanly on SIGTERM while Redis has never answered', async () => {
  const never = `redis://127.0.0.1:${await freePort()}`;
  const env = stackEnv({ db, prefix: randomPrefix() }, { REDIS_URL: never, SHUTDOWN_DRAIN_MS: '0', SHUTDOWN_TIMEOUT_MS: '20000' });
  await stopAll(await startAll(env));
}, 60_000);

it('listens with Postgres unreachable from the start too, says so in /readyz and answers 503, not 500', async () => {
  const prefix = randomPrefix();
  const deadDatabase = `postgresql://postgres@127.0.0.1:${await freePort()}/trackway`;
  const env = stackEnv({ db: { ...db, url: deadDatabase }, prefix }, { METRICS_TOKEN, SHUTDOWN_DRAIN_MS: '0' });
  try {
    const all = await startAll(env);
    const { ingest, api } = all;
    for (const { service, status, checks } of await readiness(all)) {
      expect({ service, status }).toEqual({ service, status: 503 });
      expect(checks.postgres).not.toBe('ok');
    }
    const admin = { Authorization: `Bearer ${await signAdminToken(STACK_SECRET)}` };
    for (const res of [
      await request(base(api)).get('/v1/advertisers').set(admin),
      await request(base(ingest)).get('/postback').query({ key: 'pk_notcachedyet0123456789', click_id: 'c', order_id: 'o' }),
    ])
      expect({ status: res.status, retryAfter: res.headers['retry-after'], code: res.body.error?.code }).toEqual({
        status: 503,
        retryAfter: '5',
        code: 'unavailable',
      });
    expect(api.output()).not.toMatch(/unhandled error/);
    await stopAll(all);
  } finally {
    await deleteRedisPrefix(prefix);
  }
}, 60_000);
