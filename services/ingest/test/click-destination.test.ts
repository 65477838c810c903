// /click never redirects off the offer's own host, even for a destination stored before
// templates with a macro in the host or credentials were refused.
import { createFixture } from '@trackway/testing';
import request from 'supertest';
import { type IngestHarness, startIngest } from './helpers';

let h: IngestHarness;
beforeAll(async () => {
  h = await startIngest();
});
afterAll(() => h.close());

describe('GET /click with a stored destination whose macro reaches the host', () => {
  it.each([
    ['the host', 'https://{sub1}/', 'evil.example'],
    ['the end of the host', 'https://shop.example{sub1}/', '.evil.example'],
    ['the credentials', 'https://{sub1}@shop.example/', 'evil.example%2F'],
  ])('refuses to redirect when the macro is in %s', async (_name, destinationUrl, sub1) => {
    const fx = await createFixture(h.db.prisma, { destinationUrl });
    const res = await request(h.app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}&sub1=${sub1}`);
    expect(res.headers.location).toBeUndefined();
    expect(res.status).toBe(409);
    expect(res.body.error).toEqual({ code: 'destination_refused', message: expect.any(String), request_id: res.headers['x-request-id'] });
  });

  it('still redirects on the host when the macros are in the path and query', async () => {
    const fx = await createFixture(h.db.prisma, { destinationUrl: 'https://shop.example/{sub1}?s={sub2}' });
    const res = await request(h.app).get(`/click?offer_id=${fx.offerId}&affiliate_id=${fx.affiliateId}&sub1=%2F%2Fevil.example&sub2=@evil.example`).expect(302);
    const location = new URL(res.headers.location);
    expect(location.host).toBe('shop.example');
    expect(location.pathname).toBe('/%2F%2Fevil.example');
    expect(location.searchParams.get('s')).toBe('@evil.example');
  });
});
