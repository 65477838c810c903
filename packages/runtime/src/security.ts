import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import helmet, { type HelmetOptions } from 'helmet';

// A JSON API loads nothing and is framed by no one.
const API_POLICY: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"], frameAncestors: ["'none'"] },
  },
  xFrameOptions: { action: 'deny' },
};

// Bull Board and its login page: the board's own scripts, styles and API, its inline styles,
// and the web fonts its page asks for; never framed, forms posted only here.
const UI_POLICY: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'", "'unsafe-inline'", 'https://fonts.googleapis.com'],
      fontSrc: ["'self'", 'data:', 'https://fonts.gstatic.com'],
      imgSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: ["'self'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
    },
  },
  xFrameOptions: { action: 'deny' },
};

/**
 * helmet's headers (nosniff, `frame-ancestors 'none'`, no `X-Powered-By`…) and
 * `Cache-Control: no-store` on every answer: admin answers and postback answers carry keys,
 * secrets or data no cache should keep. `ui` is for pages that load their own scripts.
 */
export function securityHeaders(kind: 'api' | 'ui' = 'api'): RequestHandler {
  const headers = helmet(kind === 'ui' ? UI_POLICY : API_POLICY);
  return (req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    headers(req, res, next);
  };
}

/**
 * The same headers as a constant, for answers written by hand on ingest's fast paths: helmet
 * runs once, here, against a response that records what it sets (its API policy has no
 * per-request values).
 */
export const STATIC_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze(recordHeaders(securityHeaders('api')));

/**
 * What ingest's JSON answers to advertiser servers (`/postback`'s 202 and errors) carry: the
 * headers that matter for a JSON answer — nosniff, a CSP that lets it run nothing and be framed
 * nowhere, no-store — taken from helmet's set. The browser-only rest of that set (HSTS,
 * cross-origin and legacy-browser headers, about 400 bytes) cost ingest a tenth of its rate
 * (`pnpm bench ingest`: 1.53× bare Express with it, 1.70× without) on answers no browser renders.
 * The click redirect, which browsers follow, carries the full set.
 */
export const JSON_ANSWER_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(['x-content-type-options', 'content-security-policy', 'cache-control'].map((name) => [name, STATIC_SECURITY_HEADERS[name]])),
);

function recordHeaders(middleware: RequestHandler): Record<string, string> {
  const headers: Record<string, string> = {};
  const res = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = String(value);
      return res;
    },
    removeHeader: () => undefined,
  };
  let done = false;
  (middleware as unknown as (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void)(
    {} as IncomingMessage,
    res as unknown as ServerResponse,
    (error) => {
      if (error) throw error;
      done = true;
    },
  );
  if (!done) throw new Error('security headers: the middleware did not finish synchronously');
  return headers;
}
