import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import request from 'supertest';
import { signAdminToken } from '../src/auth';
import { ADMIN_SECRET, type ApiHarness, startApi } from './helpers';

const now = () => Math.floor(Date.now() / 1000);
const hs = (claims: Record<string, unknown>, exp: string | number | null = '5m', secret = ADMIN_SECRET, iat: number | null = now()) => {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' });
  if (iat !== null) jwt.setIssuedAt(iat);
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
    [
      'an unsigned (alg none) token',
      async () =>
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ scope: 'admin', exp: 9999999999 })).toString('base64url')}.`,
      401,
    ],
    ['a token with exp a thousand years out', async () => hs({ scope: 'admin' }, '1000y'), 401],
    ['a token living longer than ADMIN_JWT_MAX_AGE (24 h)', async () => hs({ scope: 'admin' }, now() + 24 * 3600 + 1), 401],
    ['a token without iat', async () => hs({ scope: 'admin' }, '5m', ADMIN_SECRET, null), 401],
    ['a token issued more than ADMIN_JWT_MAX_AGE ago', async () => hs({ scope: 'admin' }, now() + 3600, ADMIN_SECRET, now() - 25 * 3600), 401],
    ['a token issued in the future (beyond 60 s of skew)', async () => hs({ scope: 'admin' }, now() + 600, ADMIN_SECRET, now() + 120), 401],
  ])('refuses %s', async (_name, token, status) => {
    const value = typeof token === 'function' ? `Bearer ${await token()}` : token;
    const req = request(h.app).get('/v1/advertisers');
    const res = await (value ? req.set('Authorization', value) : req).expect(status);
    expect(res.body.error.code).toBe(status === 401 ? 'unauthorized' : 'forbidden');
    if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
  });

  it('accepts an admin token, with scope as a string or an array', async () => {
    await request(h.app)
      .get('/v1/advertisers')
      .set('Authorization', `Bearer ${await hs({ scope: 'read admin' })}`)
      .expect(200);
    await request(h.app)
      .get('/v1/advertisers')
      .set('Authorization', `Bearer ${await hs({ scope: ['admin'] })}`)
      .expect(200);
  });

  it('accepts tokens within ADMIN_JWT_MAX_AGE, a little clock skew, and what `pnpm run token` signs', async () => {
    const ok = async (token: string) => request(h.app).get('/v1/advertisers').set('Authorization', `Bearer ${token}`).expect(200);
    await ok(await hs({ scope: 'admin' }, '24h'));
    await ok(await hs({ scope: 'admin' }, now() + 600, ADMIN_SECRET, now() + 30));
    await ok(await signAdminToken(ADMIN_SECRET));
    await ok(await signAdminToken(ADMIN_SECRET, { expiresIn: '24h' }));
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
    h = await startApi({
      jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
      audience: 'trackway-admin',
      issuer: 'https://idp.example',
    });
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
    await request(h.app)
      .get('/v1/affiliates')
      .set('Authorization', `Bearer ${await signed('RS256', 'rs', keys.rs.privateKey)}`)
      .expect(200);
    await request(h.app)
      .get('/v1/affiliates')
      .set('Authorization', `Bearer ${await signed('EdDSA', 'ed', keys.ed.privateKey)}`)
      .expect(200);
  });

  it("refuses the provider's tokens for another audience or from another issuer", async () => {
    await request(h.app)
      .get('/v1/affiliates')
      .set('Authorization', `Bearer ${await signed('RS256', 'rs', keys.rs.privateKey, { aud: 'some-other-app' })}`)
      .expect(401);
    await request(h.app)
      .get('/v1/affiliates')
      .set('Authorization', `Bearer ${await signed('RS256', 'rs', keys.rs.privateKey, { iss: 'https://other.example' })}`)
      .expect(401);
  });

  it('refuses a token signed by another key, and HS256 when no shared secret is configured', async () => {
    const stranger = await generateKeyPair('RS256');
    await request(h.app)
      .get('/v1/affiliates')
      .set('Authorization', `Bearer ${await signed('RS256', 'rs', stranger.privateKey)}`)
      .expect(401);
    await request(h.app)
      .get('/v1/affiliates')
      .set('Authorization', `Bearer ${await hs({ scope: 'admin' })}`)
      .expect(401);
  });
});
