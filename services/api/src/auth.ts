import { HttpError } from '@trackway/http';
import type { RequestHandler } from 'express';
import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, jwtVerify } from 'jose';

export interface AuthConfig {
  /** HS256 shared secret (ADMIN_JWT_SECRET). */
  secret?: string;
  /** JWKS of an identity provider (ADMIN_JWKS_URL): RS256 or EdDSA keys. */
  jwksUrl?: string;
  /** Required `aud` and `iss` of tokens (ADMIN_JWT_AUDIENCE, ADMIN_JWT_ISSUER), when set. */
  audience?: string;
  issuer?: string;
}

export type AdminClaims = JWTPayload & { scope?: string | string[] };

export interface AdminVerifier {
  verify(token: string): Promise<AdminClaims>;
}

const REQUIRED_SCOPE = 'admin';

export function createVerifier(config: AuthConfig): AdminVerifier {
  const jwks: JWTVerifyGetKey | undefined = config.jwksUrl ? createRemoteJWKSet(new URL(config.jwksUrl)) : undefined;
  const secret = config.secret ? new TextEncoder().encode(config.secret) : undefined;
  if (!jwks && !secret) throw new Error('admin auth needs ADMIN_JWT_SECRET or ADMIN_JWKS_URL');
  return {
    async verify(token) {
      const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8') || '{}') as { alg?: string };
      const options = { requiredClaims: ['exp'], audience: config.audience, issuer: config.issuer };
      let payload: JWTPayload;
      if (header.alg === 'HS256' && secret) {
        ({ payload } = await jwtVerify(token, secret, { ...options, algorithms: ['HS256'] }));
      } else if (jwks) {
        ({ payload } = await jwtVerify(token, jwks, { ...options, algorithms: ['RS256', 'EdDSA'] }));
      } else {
        throw new Error(`algorithm ${header.alg ?? 'none'} is not accepted`);
      }
      return payload as AdminClaims;
    },
  };
}

export function hasAdminScope(claims: AdminClaims): boolean {
  const scope = claims.scope;
  const scopes = Array.isArray(scope) ? scope : typeof scope === 'string' ? scope.split(' ') : [];
  return scopes.includes(REQUIRED_SCOPE);
}

const challenge = { 'WWW-Authenticate': 'Bearer realm="trackway"' };

/** Every admin route: a Bearer JWT with `exp` and an `admin` scope. */
export function requireAdmin(verifier: AdminVerifier): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/.exec(header);
    const token = match?.[1] ?? (req as { sessionToken?: string }).sessionToken;
    if (!token) throw new HttpError(401, 'unauthorized', 'A Bearer token is required.', undefined, challenge);
    let claims: AdminClaims;
    try {
      claims = await verifier.verify(token);
    } catch {
      throw new HttpError(401, 'unauthorized', 'The token is invalid or expired.', undefined, challenge);
    }
    if (!hasAdminScope(claims)) throw new HttpError(403, 'forbidden', 'The token lacks the admin scope.');
    res.locals.admin = claims;
    next();
  };
}

/** An HS256 admin token, as `pnpm token` prints for local use. */
export async function signAdminToken(secret: string, options: { expiresIn?: string; subject?: string; scope?: string } = {}): Promise<string> {
  const { SignJWT } = await import('jose');
  return new SignJWT({ scope: options.scope ?? 'admin' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.subject ?? 'local-admin')
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '12h')
    .sign(new TextEncoder().encode(secret));
}
