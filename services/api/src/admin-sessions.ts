import { createHmac, hkdfSync, randomUUID, timingSafeEqual } from 'node:crypto';
import { HttpError, envelope, requestIdOf, unavailable } from '@trackway/http';
import type { AuthFailureGuard } from '@trackway/runtime';
import { parse as parseCookies, serialize as serializeCookie } from 'cookie';
import express, { type Request, type RequestHandler, type Response, Router } from 'express';
import type { Redis } from 'ioredis';
import { SignJWT, jwtVerify } from 'jose';
import { type AdminVerifier, failedAdminAuth, hasAdminScope } from './auth';

export const BOARD_PATH = '/admin/queues';
export const CONSOLE_PATH = '/console';
export const LOGIN_PATH = '/admin/login';
export const LOGOUT_PATH = '/admin/logout';
const COOKIE = 'trackway_admin';
const SESSION_MAX_S = 8 * 3600;
const SESSION_ISSUER = 'trackway-admin-session';

/** Who a browser page is for: a session cookie (with its id), or an admin JWT sent as a bearer token. */
export type AdminSession = { via: 'cookie'; jti: string; exp: number } | { via: 'bearer' };

export interface AdminSessions {
  /** /admin/login (GET, POST) and /admin/logout (POST). */
  router: Router;
  /**
   * Lets a request with a session through (the session in `res.locals.adminSession`). Without one,
   * `json` answers 401 with the error envelope; `html` sends a browser to the login, with `next` set to
   * the page it asked for (a script, which does not accept HTML, gets the 401).
   */
  requireSession(kind: 'html' | 'json'): RequestHandler;
  /** The token a session's forms carry (null for a bearer token, which no other site can make a browser send). */
  csrfToken(session: AdminSession): string | null;
  /** Refuses (403) a form posted without this session's token. Runs after requireSession and a body parser. */
  requireCsrf: RequestHandler;
}

/**
 * The admin pages' sign-in (Bull Board and the console): the admin JWT (the same token the REST
 * API takes) is exchanged at /admin/login for an HttpOnly, SameSite=Strict session cookie (Secure
 * over https, Path=/ so it reaches /admin/queues and /console). The cookie holds a short-lived
 * session token signed with a key derived from SECRETS_KEY, so every api replica accepts it.
 * Logging out revokes the session itself (its jti, remembered in Redis until it would have
 * expired), so a copy of the cookie stops working too.
 */
export function adminSessions(deps: {
  redis: Redis;
  verifier: AdminVerifier;
  sessionKey: Buffer;
  prefix: string;
  authFailures?: AuthFailureGuard;
}): AdminSessions {
  const key = new Uint8Array(hkdfSync('sha256', deps.sessionKey, Buffer.alloc(0), 'trackway admin session', 32));
  // Apart from the signing key: a form's token reveals nothing that signs a session.
  const csrfKey = Buffer.from(hkdfSync('sha256', deps.sessionKey, Buffer.alloc(0), 'trackway admin csrf', 32));
  // The key space of this deployment's queues (QUEUE_PREFIX), so deployments sharing a Redis
  // do not see each other's revocations.
  const revokedKey = (jti: string) => `${deps.prefix}:admin-session-revoked:${jti}`;

  const issueSession = async (subject: string, adminExp: number) =>
    new SignJWT({ scope: 'admin' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(SESSION_ISSUER)
      .setSubject(subject)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(Math.min(adminExp, Math.floor(Date.now() / 1000) + SESSION_MAX_S))
      .sign(key);

  /** The session the cookie carries (its jti and exp), whether or not it was revoked; null if none. */
  const cookieSession = async (req: Request): Promise<{ jti: string; exp: number } | null> => {
    const token = parseCookies(req.headers.cookie ?? '')[COOKIE];
    if (!token) return null;
    try {
      const { payload } = await jwtVerify(token, key, { issuer: SESSION_ISSUER, algorithms: ['HS256'], requiredClaims: ['exp', 'jti'] });
      return { jti: payload.jti!, exp: payload.exp! };
    } catch {
      return null; // expired or forged
    }
  };

  const sessionOf = async (req: Request): Promise<AdminSession | null> => {
    const session = await cookieSession(req);
    // A Redis that cannot answer fails the request (503), never lets a revoked session in.
    if (session && (await deps.redis.exists(revokedKey(session.jti))) === 0) return { via: 'cookie', ...session };
    const bearer = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '')?.[1];
    if (!bearer) return null;
    try {
      return hasAdminScope(await deps.verifier.verify(bearer)) ? { via: 'bearer' } : null;
    } catch {
      const limited = await failedAdminAuth(deps.authFailures, req.ip);
      if (limited) throw limited;
      return null;
    }
  };

  const cookieOptions = (req: Request) => ({ httpOnly: true, sameSite: 'strict' as const, secure: req.secure, path: '/' });
  const setCookie = (req: Request, res: Response, value: string, maxAge: number) =>
    res.append('Set-Cookie', serializeCookie(COOKIE, value, { ...cookieOptions(req), maxAge }));

  const router = Router();
  router.get(LOGIN_PATH, (req, res) => {
    const next = typeof req.query.next === 'string' && safeNext(req.query.next) ? req.query.next : null;
    res
      .set('Cache-Control', 'no-store')
      .type('html')
      .send(loginPage(typeof req.query.error === 'string', next));
  });

  router.post(LOGIN_PATH, express.urlencoded({ extended: false, limit: '16kb' }), async (req, res) => {
    const token = typeof req.body?.token === 'string' ? req.body.token.trim() : '';
    const next = typeof req.body?.next === 'string' && safeNext(req.body.next) ? req.body.next : null;
    try {
      const claims = await deps.verifier.verify(token);
      if (!hasAdminScope(claims) || typeof claims.exp !== 'number') throw new Error('not an admin token');
      const session = await issueSession(String(claims.sub ?? 'admin'), claims.exp);
      setCookie(req, res, session, SESSION_MAX_S);
      res.redirect(303, next ?? BOARD_PATH);
    } catch {
      // AUTH_FAILURE_LIMIT, as on /v1: failures past it are 429; a valid token still logs in.
      const limited = await failedAdminAuth(deps.authFailures, req.ip);
      if (limited) throw limited;
      res.redirect(303, `${LOGIN_PATH}?error=1${next ? `&next=${encodeURIComponent(next)}` : ''}`);
    }
  });

  router.post(LOGOUT_PATH, async (req, res) => {
    setCookie(req, res, '', 0);
    // A cookie issued before the console existed was scoped to /admin: cleared too.
    res.append('Set-Cookie', serializeCookie(COOKIE, '', { ...cookieOptions(req), path: '/admin', maxAge: 0 }));
    const session = await cookieSession(req);
    if (session) {
      try {
        await deps.redis.set(revokedKey(session.jti), '1', 'EXAT', session.exp);
      } catch {
        throw unavailable('Redis is unreachable; the session could not be ended everywhere. Log out again shortly.');
      }
    }
    res.redirect(303, LOGIN_PATH);
  });

  const requireSession =
    (kind: 'html' | 'json'): RequestHandler =>
    async (req, res, next) => {
      let session: AdminSession | null;
      try {
        session = await sessionOf(req);
      } catch (error) {
        if (error instanceof HttpError) throw error;
        throw unavailable('Redis is unreachable; the session cannot be checked right now.');
      }
      if (session) {
        res.locals.adminSession = session;
        return next();
      }
      if (kind === 'json' || !req.accepts('html')) {
        res
          .status(401)
          .set('WWW-Authenticate', 'Bearer realm="trackway"')
          .json(envelope('unauthorized', `Log in at ${LOGIN_PATH} first.`, undefined, requestIdOf(res)));
        return;
      }
      // Back to the page asked for after the login (the board is where a login goes anyway).
      const back = req.method === 'GET' && safeNext(req.originalUrl) && req.originalUrl !== BOARD_PATH ? req.originalUrl : null;
      res.redirect(302, back ? `${LOGIN_PATH}?next=${encodeURIComponent(back)}` : LOGIN_PATH);
    };

  const csrfToken = (session: AdminSession) => (session.via === 'cookie' ? createHmac('sha256', csrfKey).update(session.jti).digest('base64url') : null);

  const requireCsrf: RequestHandler = (req, res, next) => {
    const expected = csrfToken(res.locals.adminSession as AdminSession);
    if (expected === null) return next();
    const given = typeof req.body?._csrf === 'string' ? Buffer.from(req.body._csrf) : Buffer.alloc(0);
    if (given.length !== expected.length || !timingSafeEqual(given, Buffer.from(expected)))
      throw new HttpError(403, 'forbidden', 'The form did not carry this session\u2019s CSRF token; reload the page and try again.');
    next();
  };

  return { router, requireSession, csrfToken, requireCsrf };
}

/** Where a login may send the browser on: a path of the console or of Bull Board on this origin, nothing else. */
export function safeNext(next: string): boolean {
  if (next.length > 2048 || !/^\/[^/\\]/.test(next) || /[\u0000-\u001f\u007f\\]/.test(next)) return false;
  let url: URL;
  try {
    url = new URL(next, 'http://origin.invalid');
  } catch {
    return false;
  }
  if (url.origin !== 'http://origin.invalid') return false;
  return [CONSOLE_PATH, BOARD_PATH].some((prefix) => url.pathname === prefix || url.pathname.startsWith(`${prefix}/`));
}

const escapeAttribute = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(failed: boolean, next: string | null): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trackway admin login</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}textarea{width:100%;height:8rem;font-family:monospace}button{margin-top:1rem;padding:.5rem 1.5rem}.error{color:#b00020}</style>
</head><body>
<h1>Trackway admin</h1>
<p>Paste an admin token (for local use: <code>pnpm run token</code>). It opens the console (<a href="${CONSOLE_PATH}">${CONSOLE_PATH}</a>) and the queues (<a href="${BOARD_PATH}">${BOARD_PATH}</a>).</p>
${failed ? '<p class="error" role="alert">That token is not a valid admin token.</p>' : ''}
<form method="post" action="${LOGIN_PATH}">
<label for="token">Admin token</label>
<textarea id="token" name="token" required autocomplete="off" spellcheck="false"></textarea>
${next ? `<input type="hidden" name="next" value="${escapeAttribute(next)}">` : ''}
<button type="submit">Log in</button>
</form>
</body></html>`;
}
