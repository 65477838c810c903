// The console in a real headless browser (Debian's chromium driven by playwright-core): signed in
// through the login form, every page renders with nothing loaded from elsewhere and no CSP
// violation, the overview's numbers are the report API's, the chart draws, and approve and replay
// work by clicking. A full-page screenshot of each page is left in test-results/console/ for a
// person to look at; UPDATE_DOCS_SCREENSHOTS=1 also refreshes docs/images/console-overview.png.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { launchChromium, listenLocally } from '@trackway/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import request from 'supertest';
import { type ConsoleSeed, expectedMetrics, seedConsole } from './console-seed';
import { type ApiHarness, startApi } from './helpers';

const ROOT = path.resolve(__dirname, '../../..');
const SHOTS = path.join(ROOT, 'test-results', 'console');

let h: ApiHarness;
let seed: ConsoleSeed;
let server: Server;
let base: string;
let browser: Browser;

const addDays = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
const today = () => new Date().toISOString().slice(0, 10);

beforeAll(async () => {
  h = await startApi();
  seed = await seedConsole(h);
  ({ server, base } = await listenLocally(h.app));
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  await h.close();
});

/** A page that records every request leaving this server (and aborts it) and every CSP complaint or script error. */
async function watched(context: BrowserContext): Promise<{ page: Page; outside: string[]; problems: string[] }> {
  const page = await context.newPage();
  const outside: string[] = [];
  const problems: string[] = [];
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(base) && !url.startsWith('data:') && !url.startsWith('blob:')) outside.push(url);
  });
  page.on('console', (message) => {
    if (message.type() === 'error' || /Content.Security.Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(String(error)));
  await page.route(
    (url) => !url.href.startsWith(base),
    (route) => route.abort(),
  );
  return { page, outside, problems };
}

async function logIn(page: Page, path: string): Promise<void> {
  await page.goto(`${base}${path}`);
  expect(new URL(page.url()).pathname).toBe('/admin/login');
  await page.fill('#token', h.token);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}${path}`);
}

const shoot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

/** Every number on the page: its name, the API value it carries, and the text a person reads. */
const numbersOn = (page: Page) =>
  page.$$eval('[data-metric]', (elements) =>
    elements.map((e) => [e.getAttribute('data-metric')!, e.getAttribute('data-value')!, e.textContent ?? ''] as const),
  );

/** A canvas as the page has it (this file is compiled without the DOM's types). */
interface Canvas {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}

/** The text shown is the value: the same number, thousands separators and the percent sign aside. */
const reads = (text: string, value: string) => (value === '' ? text.trim() === '—' : Number(text.replace(/[,%\s]/g, '')) === Number(value));

it('signs in, shows the overview with the API’s numbers and a drawn chart, loading nothing from elsewhere', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const { page, outside, problems } = await watched(context);
  await page.goto(`${base}/admin/login`);
  await shoot(page, 'login');
  await logIn(page, '/console');
  await page.locator('#chart[data-rendered="true"] canvas').first().waitFor({ timeout: 10_000 });

  // The chart drew something: pixels that are not blank.
  const inked = await page.$eval('#chart canvas', (canvas) => {
    const c = canvas as unknown as Canvas;
    const pixels = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) n++;
    return { width: c.width, height: c.height, n };
  });
  expect(inked.width).toBeGreaterThan(500);
  expect(inked.n).toBeGreaterThan(1000);
  // uPlot's legend names the series the API's numbers feed.
  // biome-ignore lint/performance/useDomNodeTextContent: what a reader sees is the point
  expect(await page.locator('.u-legend').innerText()).toMatch(/Clicks[\s\S]*Conversions[\s\S]*Revenue USD[\s\S]*Payout USD/);

  const from = addDays(today(), -29);
  const to = addDays(today(), 1);
  const report = (await request(h.app).get(`/v1/reports?from=${from}&to=${to}&group_by=day`).set(h.auth).expect(200)).body;
  const summary = (await request(h.app).get('/v1/reports/summary').set(h.auth).expect(200)).body;
  const expected = expectedMetrics('totals', report.totals);
  for (const row of report.rows) expectedMetrics(`rows.${row.day}`, row, expected);
  for (const period of ['today', 'yesterday', 'this_month', 'last_month']) expectedMetrics(`summary.${period}`, summary[period], expected);
  const numbers = await numbersOn(page);
  expect(numbers.length).toBeGreaterThan(40);
  for (const [name, value, text] of numbers) {
    expect({ name, value }).toEqual({ name, value: expected[name] });
    expect({ name, text, reads: reads(text, value) }).toEqual({ name, text, reads: true });
  }
  expect(Object.fromEntries(numbers.map(([name, value]) => [name, value]))).toMatchObject({ 'totals.clicks': '21', 'totals.payout.USD': '35.00' });

  await shoot(page, 'overview');
  if (process.env.UPDATE_DOCS_SCREENSHOTS === '1') copyFileSync(path.join(SHOTS, 'overview.png'), path.join(ROOT, 'docs', 'images', 'console-overview.png'));
  // First paint of the overview for a signed-in admin on a cold cache (a new browser context), and
  // what it weighs: a figure for a person (benchmarks print, tests do not time), kept in test-results.
  const cold = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await cold.addCookies(await context.cookies());
  const fresh = await cold.newPage();
  await fresh.goto(`${base}/console`);
  await fresh.locator('#chart[data-rendered="true"] canvas').first().waitFor({ timeout: 10_000 });
  const figures = await fresh.evaluate(() => {
    // The browser's Performance API (this file is compiled without the DOM's types).
    const timeline = performance as unknown as { getEntriesByType(type: string): { decodedBodySize: number }[] };
    const [navigation] = timeline.getEntriesByType('navigation');
    const resources = timeline.getEntriesByType('resource');
    return {
      first_contentful_paint_ms: Math.round(performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1),
      html_bytes: navigation.decodedBodySize,
      asset_bytes: resources.reduce((sum, r) => sum + r.decodedBodySize, 0),
      requests: 1 + resources.length,
    };
  });
  writeFileSync(path.join(SHOTS, 'overview-figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
  process.stdout.write(`console overview, cold cache: ${JSON.stringify(figures)}\n`);
  // Small: the page, its style sheets and scripts (uPlot's ~50 KB included) under 120 KB, in 5 requests.
  expect(figures.html_bytes + figures.asset_bytes).toBeLessThan(120_000);
  expect(figures.requests).toBe(5);
  await cold.close();

  // The reports page: a tab per grouping, sub IDs as text (the hostile one does not run).
  await page.click('nav[aria-label="Console"] >> text=Reports');
  await page.waitForURL(/\/console\/reports/);
  await page.click('nav.tabs >> text=Sub 1');
  await page.waitForURL(/by=sub1/);
  await page.getByText(seed.hostileSub).first().waitFor();
  await shoot(page, 'reports');
  const csv = await page.request.get(
    await page
      .locator('a:has-text("Download CSV")')
      .getAttribute('href')
      .then((href) => `${base}${href}`),
  );
  expect(csv.status()).toBe(200);
  expect((await csv.text()).split('\r\n')[0]).toMatch(/^sub1,clicks/);

  expect(outside).toEqual([]);
  expect(problems).toEqual([]);
  await context.close();
}, 60_000);

it('approves a held conversion and replays a failed delivery by clicking', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const { page, outside, problems } = await watched(context);
  await logIn(page, '/console/review');
  await shoot(page, 'review');
  const [held] = seed.held;
  await page.click(`button[data-action="approved"][data-conversion="${held}"]`);
  await page.waitForURL(/flash=approved/);
  expect(await page.getByRole('status').textContent()).toBe(`Conversion ${held} approved.`);
  expect((await request(h.app).get(`/v1/conversions/${held}`).set(h.auth).expect(200)).body.status).toBe('approved');
  expect(await page.locator(`tr[data-conversion="${held}"]`).count()).toBe(0);

  await page.click('nav[aria-label="Console"] >> text=Endpoints');
  await page.waitForURL(`${base}/console/endpoints`);
  await shoot(page, 'endpoints');
  const [delivery] = seed.failedDeliveries;
  await page.click(`button[data-action="replay"][data-delivery="${delivery}"]`);
  await page.waitForURL(/flash=replayed/);
  expect(await page.getByRole('status').textContent()).toBe(`Delivery ${delivery} queued again.`);
  expect(await h.db.prisma.delivery.findUniqueOrThrow({ where: { id: delivery } })).toMatchObject({ status: 'pending', replayCount: 1 });

  // Logging out from the console ends the session: back to the login.
  await page.click('button:has-text("Log out")');
  await page.waitForURL(`${base}/admin/login`);
  await page.goto(`${base}/console`);
  expect(new URL(page.url()).pathname).toBe('/admin/login');
  expect(outside).toEqual([]);
  expect(problems).toEqual([]);
  await context.close();
}, 60_000);

it('works without JavaScript, but for the chart', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const { page, problems } = await watched(context);
  await logIn(page, '/console/review');
  const held = seed.held[1];
  await page.click(`button[data-action="rejected"][data-conversion="${held}"]`);
  await page.waitForURL(/flash=rejected/);
  expect((await request(h.app).get(`/v1/conversions/${held}`).set(h.auth).expect(200)).body.status).toBe('rejected');
  await page.goto(`${base}/console`);
  expect(await page.locator('[data-metric="totals.clicks"]').getAttribute('data-value')).toBe('21');
  expect(await page.locator('#chart canvas').count()).toBe(0);
  expect(problems).toEqual([]);
  await context.close();
}, 60_000);
