import { createFixture } from '@trackway/testing';
import request from 'supertest';
import { type IngestHarness, startIngest } from './helpers';

// Invariant 1: a 2xx means the job is in Redis. With Redis unreachable the answer is a 503
// with Retry-After, at once: the request never hangs waiting for a reconnect.
describe('ingest with Redis unreachable', () => {
  let h: IngestHarness;
  beforeAll(async () => {
    h = await startIngest({ redisUrl: 'redis://127.0.0.1:1' });
  });
  afterAll(() => h.close());

  it('answers 503 with Retry-After within two seconds, and clicks still redirect', async () => {
    const fx = await createFixture(h.db.prisma);
    const clickId = h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
    const started = Date.now();
    const res = await request(h.app).get('/postback').query({ click_id: clickId, order_id: 'O-1', key: fx.postbackKey });
    const elapsed = Date.now() - started;
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body.error.code).toBe('unavailable');
    expect(elapsed).toBeLessThan(2_000);
    await request(h.app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}`).expect(302);
  });

  it('counts a redirected click that could not be queued as trackway_clicks_total{outcome="enqueue_failed"}', async () => {
    const fx = await createFixture(h.db.prisma);
    const enqueueFailed = async () => (await h.deps.metrics.clicks.get()).values.find((v) => v.labels.outcome === 'enqueue_failed')?.value ?? 0;
    const before = await enqueueFailed();
    await request(h.app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}`).expect(302);
    // The job is added after the redirect is sent: its failure comes a moment later.
    const deadline = Date.now() + 2_000;
    while ((await enqueueFailed()) === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await enqueueFailed()) - before).toBe(1);
  });

  it('answers 401, then 429, to unknown keys, never a 5xx: the failure limiter counts in memory without Redis', async () => {
    const fx = await createFixture(h.db.prisma);
    const clickId = h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
    const statuses: number[] = [];
    for (let i = 0; i < 31; i++)
      statuses.push(
        (
          await request(h.app)
            .get('/postback')
            .query({ click_id: clickId, order_id: 'O-2', key: `pk_unknown${i}` })
        ).status,
      );
    expect(statuses.slice(0, 30).every((status) => status === 401)).toBe(true);
    expect(statuses[30]).toBe(429);
  });

  it('limits postbacks per advertiser without Redis too (each replica alone): 429, not a 5xx', async () => {
    const limited = await startIngest({ redisUrl: 'redis://127.0.0.1:1', frontDoor: { postbackRateLimit: 1 } });
    try {
      const fx = await createFixture(limited.db.prisma);
      const clickId = limited.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
      // Warm the key cache, then three at once: one is admitted (and cannot be queued: 503, as
      // before), the others are over the limit.
      const send = (i: number) =>
        request(limited.app)
          .get('/postback')
          .query({ click_id: clickId, order_id: `O-${i}`, key: fx.postbackKey })
          .then((r) => r.status);
      await send(0);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const statuses = await Promise.all([1, 2, 3].map(send));
      expect(statuses.sort()).toEqual([429, 429, 503]);
    } finally {
      await limited.close();
    }
  });

  it('answers a signed postback 503, never a 5xx of another kind, when its webhook-id cannot be checked', async () => {
    const { createSecretBox } = await import('@trackway/domain');
    const { generateSecret } = await import('@trackway/webhooks');
    const { Webhook } = await import('standardwebhooks');
    const { SECRETS_KEY } = await import('./helpers');
    // A harness of its own: the test above has this address over AUTH_FAILURE_LIMIT.
    const own = await startIngest({ redisUrl: 'redis://127.0.0.1:1' });
    try {
      const fx = await createFixture(own.db.prisma);
      const secret = generateSecret();
      await own.db.prisma.advertiser.update({
        where: { id: fx.advertiserId },
        data: { signingSecretSealed: createSecretBox(SECRETS_KEY).seal(secret), requireSignedPostbacks: true },
      });
      const clickId = own.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
      const query = `key=${fx.postbackKey}&click_id=${clickId}&order_id=SIGNED-1`;
      const now = new Date();
      const res = await request(own.app)
        .get(`/postback?${query}`)
        .set({
          'webhook-id': 'msg_down',
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': new Webhook(secret).sign('msg_down', now, query),
        });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('unavailable');
    } finally {
      await own.close();
    }
  });
});
