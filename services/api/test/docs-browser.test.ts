// /docs in a real headless browser (Debian's chromium driven by playwright-core): the API
// reference renders from /openapi.json with nothing loaded from outside this server, and
// without a Content-Security-Policy violation.
import type { Server } from 'node:http';
import { launchChromium, listenLocally } from '@trackway/testing';
import type { Browser } from 'playwright-core';
import request from 'supertest';
import { type ApiHarness, startApi } from './helpers';

let h: ApiHarness;
let server: Server;
let base: string;
let browser: Browser;

beforeAll(async () => {
  h = await startApi();
  ({ server, base } = await listenLocally(h.app));
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  server?.close();
  await h.close();
});

it('serves the page without auth, under a CSP that allows only its own nonce-carrying scripts', async () => {
  const res = await request(h.app)
    .get('/docs')
    .expect(200)
    .expect('content-type', /text\/html/);
  const csp = res.headers['content-security-policy'];
  const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
  expect(nonce).toBeDefined();
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toMatch(/script-src[^;]*'unsafe-(inline|eval)'/);
  expect(res.text).toContain(`nonce="${nonce}"`);
  expect(res.text).toContain('src="/docs/scalar.js"');
  // A new nonce every time.
  const again = await request(h.app).get('/docs').expect(200);
  expect(again.headers['content-security-policy']).not.toContain(nonce);
  await request(h.app)
    .get('/docs/scalar.js')
    .expect(200)
    .expect('content-type', /javascript/);
});

it('renders the reference: operations, paths and webhooks appear in the page', async () => {
  const page = await browser.newPage();
  const outside: string[] = [];
  const problems: string[] = [];
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(base) && !url.startsWith('data:') && !url.startsWith('blob:')) outside.push(url);
  });
  page.on('console', (message) => {
    if (/Content.Security.Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(String(error)));
  await page.route(
    (url) => !url.href.startsWith(base),
    (route) => route.abort(),
  );

  await page.goto(`${base}/docs`);
  // Scalar builds the page from /openapi.json: these come from the document, not the HTML.
  await page.getByText('Create an advertiser').first().waitFor({ timeout: 20_000 });
  // The text as rendered (innerText), not textContent: the document's JSON is in the page too.
  // biome-ignore lint/performance/useDomNodeTextContent: what a reader sees is the point
  const text = await page.locator('body').innerText();
  expect(text).toContain('Trackway');
  expect(text).toContain('POST\n/v1/advertisers');
  // Sections render as they are opened: ingest's operations and the webhooks are there too.
  await page
    .getByRole('button', { name: /Ingest/ })
    .first()
    .click();
  await page.getByText('Report a conversion (GET)').first().waitFor({ timeout: 10_000 });
  await page
    .getByRole('button', { name: /Events/ })
    .first()
    .click();
  await page.getByText('conversion.approved').first().waitFor({ timeout: 10_000 });
  expect(await page.getByText('Ask AI').count()).toBe(0);
  await page.screenshot({ path: process.env.DOCS_SCREENSHOT ?? '/tmp/trackway-docs.png' });
  expect(outside).toEqual([]);
  expect(problems).toEqual([]);
  await page.close();
}, 60_000);
