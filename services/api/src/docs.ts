import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { apiReference } from '@scalar/express-api-reference';
import { type RequestHandler, Router } from 'express';
import { type DocumentOptions, buildDocument } from './openapi';

const OPENAPI_PATH = '/openapi.json';
const DOCS_PATH = '/docs';
const SCRIPT_PATH = `${DOCS_PATH}/scalar.js`;

// The reference's browser bundle, from node_modules: the page must render on a network that
// reaches no CDN. The package exports no path to it, so it is found beside one it does export.
const standaloneBundle = () => path.join(path.dirname(require.resolve('@scalar/api-reference/style.css')), 'browser', 'standalone.js');

/**
 * The public contract, without auth: `GET /openapi.json` (generated once per app) and
 * `GET /docs`, Scalar's rendering of it. The page's inline script carries a per-request nonce;
 * its styles are inline (Scalar sets style attributes, which a nonce cannot cover).
 */
export function docsRouter(options: DocumentOptions): Router {
  const bundle = standaloneBundle();
  const router = Router();
  // Generated once, on the first request for it (it does not change while the process runs).
  let documentText: string | undefined;
  const documentJson = () => (documentText ??= JSON.stringify(buildDocument(options)));

  router.get(OPENAPI_PATH, (_req, res) => {
    res.type('json').send(documentJson());
  });

  // No fonts, telemetry or AI agent from Scalar's servers: nothing the page needs is off this host.
  const render = (nonce: string) =>
    apiReference({
      url: OPENAPI_PATH,
      cdn: SCRIPT_PATH,
      nonce,
      pageTitle: 'Trackway API reference',
      withDefaultFonts: false,
      telemetry: false,
      showDeveloperTools: 'never',
      agent: { disabled: true },
    }) as unknown as RequestHandler;
  router.get(DOCS_PATH, (req, res, next) => {
    const nonce = randomBytes(16).toString('base64');
    res.setHeader(
      'Content-Security-Policy',
      [
        "default-src 'self'",
        `script-src 'self' 'nonce-${nonce}'`,
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
      ].join('; '),
    );
    render(nonce)(req, res, next);
  });

  router.get(SCRIPT_PATH, (_req, res) => {
    // The bundle changes only with the package: let browsers keep it for a day.
    res.setHeader('Cache-Control', 'public, max-age=86400');
    // pnpm keeps packages under node_modules/.pnpm, a dot-directory send() would refuse.
    res.type('js').sendFile(bundle, { dotfiles: 'allow' });
  });
  return router;
}
