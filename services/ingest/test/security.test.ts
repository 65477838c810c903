// Ingest's public port (issue 8 §3.9): every answer, the hand-written fast paths included,
// carries helmet's headers and no-store.
import { createFixture, type Fixture, securityHeaderProblems } from '@trackway/testing';
import request from 'supertest';
import { type IngestHarness, startIngest } from './helpers';

let h: IngestHarness;
let fx: Fixture;

beforeAll(async () => {
  h = await startIngest();
  fx = await createFixture(h.db.prisma);
});
afterAll(() => h.close());

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
      metrics: await request(h.app).get('/metrics').expect(200),
      'unknown path': await request(h.app).get('/nope').expect(404),
    };
    for (const [name, res] of Object.entries(answers)) expect({ name, problems: securityHeaderProblems(res.headers) }).toEqual({ name, problems: [] });

    // The fast paths' constant is exactly what helmet sets on the Express paths.
    const helmetNames = (headers: Record<string, string>) => Object.keys(headers).filter((name) => !['content-type', 'content-length', 'date', 'connection', 'keep-alive', 'etag', 'location'].includes(name)).sort();
    expect(helmetNames(answers['postback 202'].headers)).toEqual(helmetNames(answers.healthz.headers));
    for (const name of helmetNames(answers.healthz.headers)) expect({ name, value: answers['postback 202'].headers[name] }).toEqual({ name, value: answers.healthz.headers[name] });
    expect(answers['click 302'].headers['referrer-policy']).toBe('no-referrer');
  });
});
