// Ingest's public port (issue 8 §3.9, §3.10): every answer, the hand-written fast paths
// included, carries helmet's headers and no-store; /metrics needs METRICS_TOKEN and is not
// served without one; /readyz says only ready or not, unless asked with the token.
import { createFixture, type Fixture, securityHeaderProblems } from '@trackway/testing';
import request from 'supertest';
import { createApp } from '../src/app';
import { type IngestHarness, METRICS_TOKEN, startIngest } from './helpers';

let h: IngestHarness;
let fx: Fixture;

beforeAll(async () => {
  h = await startIngest();
  fx = await createFixture(h.db.prisma);
});
afterAll(() => h.close());

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('security headers', () => {
  it('are on every answer: fast paths (202, 302, errors) and the Express paths alike', async () => {
    const clickId = h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
    const answers = {
      'postback 202': await request(h.app).get('/postback').query({ key: fx.postbackKey, click_id: clickId, order_id: 'SEC-1' }).expect(202),
      'postback 401': await request(h.app).get('/postback').query({ click_id: clickId, order_id: 'SEC-2' }).expect(401),
      'postback 415': await request(h.app).post('/postback').set('content-type', 'text/plain').send('x').expect(415),
      'click 302': await request(h.app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}`).expect(302),
      'click 404': await request(h.app).get(`/click?offer_id=999999&affiliate_id=${fx.affiliateId}`).expect(404),
      healthz: await request(h.app).get('/healthz').expect(200),
      readyz: await request(h.app).get('/readyz').expect(200),
      metrics: await request(h.app).get('/metrics').set(bearer(METRICS_TOKEN)).expect(200),
      'unknown path': await request(h.app).get('/nope').expect(404),
    };
    for (const [name, res] of Object.entries(answers)) expect({ name, problems: securityHeaderProblems(res.headers) }).toEqual({ name, problems: [] });

    // The redirect browsers follow carries exactly what helmet sets on the Express paths; the
    // JSON answers to advertiser servers carry helmet's nosniff, CSP and no-store, the same values.
    const helmetNames = (headers: Record<string, string>) =>
      Object.keys(headers)
        .filter(
          (name) =>
            !['content-type', 'content-length', 'date', 'connection', 'keep-alive', 'etag', 'location', 'referrer-policy', 'x-request-id'].includes(name),
        )
        .sort();
    expect(helmetNames(answers['click 302'].headers)).toEqual(helmetNames(answers.healthz.headers).filter((name) => name !== 'referrer-policy'));
    for (const name of helmetNames(answers.healthz.headers))
      expect({ name, value: answers['click 302'].headers[name] }).toEqual({ name, value: answers.healthz.headers[name] });
    for (const name of ['x-content-type-options', 'content-security-policy', 'cache-control']) {
      expect({ name, value: answers['postback 202'].headers[name] }).toEqual({ name, value: answers.healthz.headers[name] });
    }
    expect(answers['click 302'].headers['referrer-policy']).toBe('no-referrer');
  });
});

describe('GET /metrics', () => {
  it('needs Authorization: Bearer <METRICS_TOKEN>: 401 with the envelope without it or with another token', async () => {
    for (const headers of [{}, bearer('wrong-token-0123456789abcdef0123456789'), bearer(`${METRICS_TOKEN}x`), { Authorization: `Basic ${METRICS_TOKEN}` }]) {
      const res = await request(h.app).get('/metrics').set(headers).expect(401);
      expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String), request_id: res.headers['x-request-id'] } });
      expect(res.headers['www-authenticate']).toBe('Bearer realm="metrics"');
      expect(res.text).not.toContain('trackway_');
    }
    const ok = await request(h.app).get('/metrics').set(bearer(METRICS_TOKEN)).expect(200);
    expect(ok.text).toContain('trackway_http_requests_total');
  });

  it('is not served at all (404) while METRICS_TOKEN is unset', async () => {
    const open = createApp({ ...h.deps, metricsToken: undefined });
    for (const headers of [{}, bearer(METRICS_TOKEN)]) {
      const res = await request(open).get('/metrics').set(headers).expect(404);
      expect(res.body.error.code).toBe('not_found');
    }
  });
});

describe('GET /readyz', () => {
  it('says only ready or not_ready; the check details only with the metrics token', async () => {
    h.health.checks.redis = async () => undefined;
    h.health.checks.postgres = async () => {
      throw new Error('connect ECONNREFUSED 10.0.0.7:5432');
    };
    try {
      const res = await request(h.app).get('/readyz').expect(503);
      expect(res.body).toEqual({ status: 'not_ready' });
      const detailed = await request(h.app).get('/readyz').set(bearer(METRICS_TOKEN)).expect(503);
      expect(detailed.body).toEqual({ status: 'not_ready', checks: { redis: 'ok', postgres: 'connect ECONNREFUSED 10.0.0.7:5432' } });
      expect((await request(h.app).get('/readyz').set(bearer('wrong-token-0123456789abcdef0123456789')).expect(503)).body).toEqual({ status: 'not_ready' });
    } finally {
      delete h.health.checks.postgres;
    }
    expect((await request(h.app).get('/readyz').expect(200)).body).toEqual({ status: 'ready' });
  });
});
