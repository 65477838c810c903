import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import request from 'supertest';
import { ADMIN_SECRET, type ApiHarness, startApi } from './helpers';

const hs = (claims: Record<string, unknown>, exp: string | number | null = '5m', secret = ADMIN_SECRET) => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(new TextEncoder().encode(secret));
};

describe('admin auth (HS256 under ADMIN_JWT_SECRET)', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApi();
  });
  afterAll(() => h.close());

  it.each([
    ['no token', undefined, 401],
    ['a malformed header', 'Basic abc', 401],
    ['a wrong secret', async () => hs({ scope: 'admin' }, '5m', 'another-secret-another-secret-another-secret'), 401],
    ['an expired token', async () => hs({ scope: 'admin' }, Math.floor(Date.now() / 1000) - 60), 401],
    ['a token without exp', async () => hs({ scope: 'admin' }, null), 401],
    ['a token without the admin scope', async () => hs({ scope: 'read' }), 403],
    ['an unsigned (alg none) token', async () => `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ scope: 'admin', exp: 9999999999 })).toString('base64url')}.`, 401],
  ])('refuses %s', async (_name, token, status) => {
    const value = typeof token === 'function' ? `Bearer ${await token()}` : token;
    const req = request(h.app).get('/v1/advertisers');
    const res = await (value ? req.set('Authorization', value) : req).expect(status);
    expect(res.body.error.code).toBe(status === 401 ? 'unauthorized' : 'forbidden');
    if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  it('accepts an admin token, with scope as a string or an array', async () => {
    await request(h.app).get('/v1/advertisers').set('Authorization', `Bearer ${await hs({ scope: 'read admin' })}`).expect(200);
    await request(h.app).get('/v1/advertisers').set('Authorization', `Bearer ${await hs({ scope: ['admin'] })}`).expect(200);
  });

  it('guards every route, including unknown ones under /v1', async () => {
    await request(h.app).post('/v1/offers').send({}).expect(401);
    await request(h.app).get('/v1/postbacks/pb_01J00000000000000000000000').expect(401);
    await request(h.app).get('/v1/nothing-here').expect(401);
  });
});

describe('admin auth (keys from ADMIN_JWKS_URL)', () => {
  let h: ApiHarness;
  let server: Server;
  const keys: Record<string, Awaited<ReturnType<typeof generateKeyPair>>> = {};

  beforeAll(async () => {
    keys.rs = await generateKeyPair('RS256');
    keys.ed = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const jwks = {
      keys: [
        { ...(await exportJWK(keys.rs.publicKey)), kid: 'rs', alg: 'RS256', use: 'sig' },
        { ...(await exportJWK(keys.ed.publicKey)), kid: 'ed', alg: 'EdDSA', use: 'sig' },
      ],
    };
    // A real local identity provider endpoint, not a mock.
    server = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    h = await startApi({ jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`, audience: 'trackway-admin', issuer: 'https://idp.example' });
  });
  afterAll(async () => {
    await h.close();
    server.close();
  });

  const signed = (alg: 'RS256' | 'EdDSA', kid: string, key: Parameters<SignJWT['sign']>[0], claims: { aud?: string; iss?: string } = {}) =>
    new SignJWT({ scope: 'admin' })
      .setProtectedHeader({ alg, kid })
      .setIssuedAt()
      .setExpirationTime('5m')
      .setAudience(claims.aud ?? 'trackway-admin')
      .setIssuer(claims.iss ?? 'https://idp.example')
      .sign(key);

  it('accepts RS256 and EdDSA tokens signed by the provider', async () => {
    await request(h.app).get('/v1/affiliates').set('Authorization', `Bearer ${await signed('RS256', 'rs', keys.rs.privateKey)}`).expect(200);
    await request(h.app).get('/v1/affiliates').set('Authorization', `Bearer ${await signed('EdDSA', 'ed', keys.ed.privateKey)}`).expect(200);
  });

  it("refuses the provider's tokens for another audience or from another issuer", async () => {
    await request(h.app).get('/v1/affiliates').set('Authorization', `Bearer ${await signed('RS256', 'rs', keys.rs.privateKey, { aud: 'some-other-app' })}`).expect(401);
    await request(h.app).get('/v1/affiliates').set('Authorization', `Bearer ${await signed('RS256', 'rs', keys.rs.privateKey, { iss: 'https://other.example' })}`).expect(401);
  });

  it('refuses a token signed by another key, and HS256 when no shared secret is configured', async () => {
    const stranger = await generateKeyPair('RS256');
    await request(h.app).get('/v1/affiliates').set('Authorization', `Bearer ${await signed('RS256', 'rs', stranger.privateKey)}`).expect(401);
    await request(h.app).get('/v1/affiliates').set('Authorization', `Bearer ${await hs({ scope: 'admin' })}`).expect(401);
  });
});
