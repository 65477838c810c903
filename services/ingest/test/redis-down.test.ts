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
});
