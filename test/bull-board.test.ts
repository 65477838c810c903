// Bull Board in a real headless browser (Debian's chromium driven by playwright-core): no way
// in without logging in; after login the queues and their counts are listed, and a failed
// job can be retried from the page and then succeeds.
import type { Server } from 'node:http';
import { createWorkerConnection } from '@trackway/queues';
import { launchChromium, listenLocally, TEST_REDIS_URL, waitFor } from '@trackway/testing';
import { Worker } from 'bullmq';
import type { Browser } from 'playwright-core';
import { type Stack, startStack } from './support/stack';

const QUEUES = ['postbacks', 'clicks', 'events', 'deliveries', 'outbox', 'housekeeping'];

let stack: Stack;
let server: Server;
let base: string;
let browser: Browser;
let worker: Worker;
let connection: ReturnType<typeof createWorkerConnection>;
let token: string;

beforeAll(async () => {
  stack = await startStack();
  ({ server, base } = await listenLocally(stack.api));
  token = stack.auth.Authorization.slice('Bearer '.length);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await worker?.close();
  connection?.disconnect();
  server?.close();
  await stack.close();
});

it('refuses the page and its API without a login', async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/admin/queues`);
  expect(new URL(page.url()).pathname).toBe('/admin/login');
  const api = await page.request.get(`${base}/admin/queues/api/queues`);
  expect(api.status()).toBe(401);
  expect((await api.json()).error.code).toBe('unauthorized');
  // A wrong token does not get in either.
  await page.fill('#token', 'not-a-token');
  await page.click('button[type=submit]');
  expect(await page.getByRole('alert').textContent()).toMatch(/not a valid admin token/);
  expect((await page.context().cookies()).filter((c) => c.name === 'trackway_admin')).toEqual([]);
  await page.close();
});

it('logs in, lists every queue with counts, and retries a failed job from the page', async () => {
  // A job that fails once (as after a transient error), then succeeds when retried.
  let calls = 0;
  connection = createWorkerConnection(TEST_REDIS_URL);
  worker = new Worker(
    'clicks',
    async () => {
      calls += 1;
      if (calls === 1) throw new Error('transient failure');
      return 'ok';
    },
    { connection, prefix: stack.queues.clicks.opts.prefix },
  );
  const job = await stack.queues.clicks.add(
    'click',
    { clicks: [{ clickId: 'c', offerId: 1, affiliateId: 1, clickedAt: new Date().toISOString(), subs: {} }] },
    { attempts: 1 },
  );
  await waitFor(async () => (await stack.queues.clicks.getJobState(job.id!)) === 'failed', { what: 'the job to fail' });

  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/admin/login`);
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/admin/queues`);

  const session = (await context.cookies()).find((c) => c.name === 'trackway_admin');
  // Path=/: the same session opens the console (/console).
  expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });

  for (const name of QUEUES) await page.getByText(name, { exact: true }).first().waitFor({ state: 'visible', timeout: 10_000 });
  const counts = await page.request.get(`${base}/admin/queues/api/queues?activeQueue=clicks&status=failed&page=1`);
  expect(counts.status()).toBe(200);
  const clicks = (await counts.json()).queues.find((q: { name: string }) => q.name === 'clicks');
  expect(clicks.counts.failed).toBe(1);

  await page.goto(`${base}/admin/queues/queue/clicks?status=failed`);
  await page.getByText('transient failure').first().waitFor();
  // The job card's actions are icon buttons with tooltips: hover the first one and check it
  // is the one labelled "Retry" before clicking it.
  const retry = page.locator('[data-base-ui-tooltip-trigger] button:has(svg.lucide-refresh-cw)').first();
  await retry.hover();
  await page
    .getByText(/^Retry$/)
    .first()
    .waitFor({ state: 'visible' });
  await retry.click();
  const confirm = page.getByRole('button', { name: /^(confirm|retry)$/i }).last();
  if (await confirm.isVisible().catch(() => false)) await confirm.click();

  await waitFor(async () => (await stack.queues.clicks.getJobState(job.id!)) === 'completed', { what: 'the retried job to complete' });
  expect(calls).toBe(2);

  // Logging out ends the session: the board sends the browser back to the login.
  await page.request.post(`${base}/admin/logout`, { maxRedirects: 0 });
  expect((await context.cookies()).find((c) => c.name === 'trackway_admin')).toBeUndefined();
  await page.goto(`${base}/admin/queues`);
  expect(new URL(page.url()).pathname).toBe('/admin/login');
  await context.close();
}, 60_000);
