import { hkdfSync, randomUUID } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { HttpError, envelope, requestIdOf, unavailable } from '@trackway/http';
import type { Queues } from '@trackway/queues';
import { parse as parseCookies, serialize as serializeCookie } from 'cookie';
import express, { type Request, type RequestHandler, Router } from 'express';
import type { Redis } from 'ioredis';
import { SignJWT, jwtVerify } from 'jose';
import type { AuthFailureGuard } from '@trackway/runtime';
import { type AdminVerifier, failedAdminAuth, hasAdminScope } from './auth';

export const BOARD_PATH = '/admin/queues';
export const LOGIN_PATH = '/admin/login';
const COOKIE = 'trackway_admin';
const SESSION_MAX_S = 8 * 3600;
const SESSION_ISSUER = 'trackway-admin-session';

/**
 * Bull Board behind a login: the admin JWT (the same token the REST API takes) is exchanged
 * at /admin/login for an HttpOnly, SameSite=Strict session cookie (Secure over https). The
 * cookie holds a short-lived session token signed with a key derived from SECRETS_KEY, so
 * every api replica accepts it. There is no unauthenticated way to the board or its API.
 * Logging out revokes the session itself (its jti, remembered in Redis until it would have
 * expired), so a copy of the cookie stops working too.
 */
export function adminBoardRouter(deps: { queues: Queues; redis: Redis; verifier: AdminVerifier; sessionKey: Buffer; authFailures?: AuthFailureGuard }): Router {
  const key = new Uint8Array(hkdfSync('sha256', deps.sessionKey, Buffer.alloc(0), 'trackway admin session', 32));
  const router = Router();
  // The key space of this deployment's queues (QUEUE_PREFIX), so deployments sharing a Redis
  // do not see each other's revocations.
  const revokedKey = (jti: string) => `${deps.queues.events.opts.prefix}:admin-session-revoked:${jti}`;

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

  const sessionOf = async (req: Request): Promise<boolean> => {
    const session = await cookieSession(req);
    // A Redis that cannot answer fails the request (503), never lets a revoked session in.
    if (session && (await deps.redis.exists(revokedKey(session.jti))) === 0) return true;
    const bearer = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '')?.[1];
    if (!bearer) return false;
    try {
      return hasAdminScope(await deps.verifier.verify(bearer));
    } catch {
      const limited = await failedAdminAuth(deps.authFailures, req.ip);
      if (limited) throw limited;
      return false;
    }
  };

  const cookieOptions = (req: Request) => ({ httpOnly: true, sameSite: 'strict' as const, secure: req.secure, path: '/admin' });

  router.get(LOGIN_PATH, (req, res) => {
    res
      .set('Cache-Control', 'no-store')
      .type('html')
      .send(loginPage(typeof req.query.error === 'string'));
  });

  router.post(LOGIN_PATH, express.urlencoded({ extended: false, limit: '16kb' }), async (req, res) => {
    const token = typeof req.body?.token === 'string' ? req.body.token.trim() : '';
    try {
      const claims = await deps.verifier.verify(token);
      if (!hasAdminScope(claims) || typeof claims.exp !== 'number') throw new Error('not an admin token');
      const session = await issueSession(String(claims.sub ?? 'admin'), claims.exp);
      res.setHeader('Set-Cookie', serializeCookie(COOKIE, session, { ...cookieOptions(req), maxAge: SESSION_MAX_S }));
      res.redirect(303, BOARD_PATH);
    } catch {
      // AUTH_FAILURE_LIMIT, as on /v1: failures past it are 429; a valid token still logs in.
      const limited = await failedAdminAuth(deps.authFailures, req.ip);
      if (limited) throw limited;
      res.redirect(303, `${LOGIN_PATH}?error=1`);
    }
  });

  router.post('/admin/logout', async (req, res) => {
    res.setHeader('Set-Cookie', serializeCookie(COOKIE, '', { ...cookieOptions(req), maxAge: 0 }));
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

  const requireSession: RequestHandler = async (req, res, next) => {
    let allowed: boolean;
    try {
      allowed = await sessionOf(req);
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw unavailable('Redis is unreachable; the session cannot be checked right now.');
    }
    if (allowed) return next();
    // The board's JSON API answers 401; a browser asking for the page goes to the login.
    if (req.path.startsWith('/api/') || !req.accepts('html')) {
      res
        .status(401)
        .set('WWW-Authenticate', 'Bearer realm="trackway"')
        .json(envelope('unauthorized', 'Log in at /admin/login first.', undefined, requestIdOf(res)));
      return;
    }
    res.redirect(302, LOGIN_PATH);
  };

  const serverAdapter = new ExpressAdapter().setBasePath(BOARD_PATH);
  createBullBoard({
    queues: Object.values(deps.queues).map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Trackway queues' } },
  });
  // Bull Board waits for Redis without a deadline; answer 503 at once instead of hanging.
  const requireRedis: RequestHandler = (_req, _res, next) => {
    if (deps.redis.status !== 'ready') throw unavailable('Redis is unreachable; the queues cannot be shown right now.');
    next();
  };
  // The adapter mounts an Express app of its own, which would add X-Powered-By back.
  const board = (serverAdapter.getRouter() as express.Express).disable('x-powered-by');
  // Bull Board's API cannot take control characters in its query (a NUL answered 500): refused first.
  const plainQuery: RequestHandler = (req, res, next) => {
    const at = req.originalUrl.indexOf('?');
    // eslint-disable-next-line no-control-regex
    if (at !== -1 && /%[01][0-9a-fA-F]|%7[fF]|[\u0000-\u001f\u007f]/.test(req.originalUrl.slice(at))) {
      res.status(400).json(envelope('invalid_request', 'The query string must not contain control characters.', undefined, requestIdOf(res)));
      return;
    }
    next();
  };
  router.use(BOARD_PATH, plainQuery, requireSession, requireRedis, board);
  return router;
}

function loginPage(failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trackway admin login</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}textarea{width:100%;height:8rem;font-family:monospace}button{margin-top:1rem;padding:.5rem 1.5rem}.error{color:#b00020}</style>
</head><body>
<h1>Trackway queues</h1>
<p>Paste an admin token (for local use: <code>pnpm run token</code>).</p>
${failed ? '<p class="error" role="alert">That token is not a valid admin token.</p>' : ''}
<form method="post" action="${LOGIN_PATH}">
<label for="token">Admin token</label>
<textarea id="token" name="token" required autocomplete="off" spellcheck="false"></textarea>
<button type="submit">Log in</button>
</form>
</body></html>`;
}
