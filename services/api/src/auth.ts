import { HttpError, tooManyFailures } from '@trackway/http';
import type { AuthFailureGuard } from '@trackway/runtime';
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
  /** ADMIN_JWT_MAX_AGE in milliseconds: the longest a token may live (default 24 h). */
  maxAgeMs?: number;
}

export type AdminClaims = JWTPayload & { scope?: string | string[] };

export interface AdminVerifier {
  verify(token: string): Promise<AdminClaims>;
}

const REQUIRED_SCOPE = 'admin';
export const DEFAULT_MAX_AGE_MS = 24 * 3600 * 1000;
/** How far a token's iat may be ahead of our clock (and its exp behind it). */
export const CLOCK_SKEW_S = 60;

export function createVerifier(config: AuthConfig): AdminVerifier {
  const jwks: JWTVerifyGetKey | undefined = config.jwksUrl ? createRemoteJWKSet(new URL(config.jwksUrl)) : undefined;
  const secret = config.secret ? new TextEncoder().encode(config.secret) : undefined;
  if (!jwks && !secret) throw new Error('admin auth needs ADMIN_JWT_SECRET or ADMIN_JWKS_URL');
  const maxAgeS = Math.floor((config.maxAgeMs ?? DEFAULT_MAX_AGE_MS) / 1000);
  return {
    async verify(token) {
      const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8') || '{}') as { alg?: string };
      // maxTokenAge requires iat and refuses one older than the maximum, or in the future
      // beyond the skew; the lifetime the token claims for itself is checked below.
      const options = { requiredClaims: ['exp', 'iat'], audience: config.audience, issuer: config.issuer, maxTokenAge: maxAgeS, clockTolerance: CLOCK_SKEW_S };
      let payload: JWTPayload;
      if (header.alg === 'HS256' && secret) {
        ({ payload } = await jwtVerify(token, secret, { ...options, algorithms: ['HS256'] }));
      } else if (jwks) {
        ({ payload } = await jwtVerify(token, jwks, { ...options, algorithms: ['RS256', 'EdDSA'] }));
      } else {
        throw new Error(`algorithm ${header.alg ?? 'none'} is not accepted`);
      }
      if (payload.exp! - payload.iat! > maxAgeS) throw new Error(`the token lives longer than ${maxAgeS} s (ADMIN_JWT_MAX_AGE)`);
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

/** Every admin route: a Bearer JWT with `iat`, `exp` (within ADMIN_JWT_MAX_AGE) and an `admin` scope. */
export function requireAdmin(verifier: AdminVerifier, failures?: AuthFailureGuard): RequestHandler {
  return async (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/.exec(header);
    const token = match?.[1];
    if (!token) throw new HttpError(401, 'unauthorized', 'A Bearer token is required.', undefined, challenge);
    let claims: AdminClaims;
    try {
      claims = await verifier.verify(token);
    } catch {
      // AUTH_FAILURE_LIMIT: an address over it gets 429 for its failures (from memory); a
      // token that checks out still passes, so nobody sharing the address can lock an admin out.
      throw (await failedAdminAuth(failures, req.ip)) ?? new HttpError(401, 'unauthorized', 'The token is invalid or expired.', undefined, challenge);
    }
    if (!hasAdminScope(claims)) throw new HttpError(403, 'forbidden', 'The token lacks the admin scope.');
    res.locals.admin = claims;
    next();
  };
}

/** Counts a failed admin authentication: the 429 to answer instead of the 401, if any. */
export async function failedAdminAuth(failures: AuthFailureGuard | undefined, address: string | undefined): Promise<HttpError | undefined> {
  if (!failures) return undefined;
  const blocked = failures.blockedFor(address);
  const wait = blocked > 0 ? blocked : await failures.fail(address);
  return wait > 0 ? tooManyFailures(wait) : undefined;
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
