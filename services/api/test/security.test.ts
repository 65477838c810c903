// The api's public port (issue 8 §3.9, §3.10): helmet's headers and no-store on every answer
// (the admin API, the login, Bull Board and the app Bull Board mounts itself), Bull Board still
// working under its own CSP in a real browser, never framed; /metrics behind METRICS_TOKEN;
// /readyz without details.
import type { Server } from 'node:http';
import { launchChromium, listenLocally, securityHeaderProblems, waitFor } from '@trackway/testing';
import type { Browser } from 'playwright-core';
import request from 'supertest';
import { createApp } from '../src/app';
import { type ApiHarness, METRICS_TOKEN, startApi } from './helpers';

let h: ApiHarness;
beforeAll(async () => {
  h = await startApi();
});
afterAll(() => h.close());

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('security headers', () => {
  it('are on every answer, Bull Board and its static files included, with no X-Powered-By anywhere', async () => {
    const board = await request(h.app).get('/admin/queues').set(h.auth).expect(200);
    const script = /src="(static\/js\/[^"]+)"/.exec(board.text)![1];
    const answers = {
      'create advertiser (a postback key)': await request(h.app).post('/v1/advertisers').set(h.auth).send({ name: 'Shop' }).expect(201),
      'list advertisers': await request(h.app).get('/v1/advertisers').set(h.auth).expect(200),
      'no token': await request(h.app).get('/v1/advertisers').expect(401),
      'bad json': await request(h.app).post('/v1/advertisers').set(h.auth).set('content-type', 'application/json').send('{').expect(400),
      'unknown route': await request(h.app).get('/v1/nope').set(h.auth).expect(404),
      healthz: await request(h.app).get('/healthz').expect(200),
      readyz: await request(h.app).get('/readyz').expect(200),
      metrics: await request(h.app).get('/metrics').set(bearer(METRICS_TOKEN)).expect(200),
      'login page': await request(h.app).get('/admin/login').expect(200),
      'login refused': await request(h.app).post('/admin/login').type('form').send({ token: 'nope' }).expect(303),
      'login accepted': await request(h.app).post('/admin/login').type('form').send({ token: h.token }).expect(303),
      'board page': board,
      'board script': await request(h.app).get(`/admin/queues/${script}`).set(h.auth).expect(200),
      'board api': await request(h.app).get('/admin/queues/api/queues').set(h.auth).expect(200),
      'board api without a session': await request(h.app).get('/admin/queues/api/queues').expect(401),
      'openapi document': await request(h.app).get('/openapi.json').expect(200),
      'api reference page': await request(h.app).get('/docs').expect(200),
    };
    for (const [name, res] of Object.entries(answers)) expect({ name, problems: securityHeaderProblems(res.headers) }).toEqual({ name, problems: [] });
    // The one answer browsers may keep: the reference's static script (no secret in it).
    const reference = await request(h.app).get('/docs/scalar.js').expect(200);
    expect(securityHeaderProblems(reference.headers, { cache: false })).toEqual([]);
    expect(reference.headers['cache-control']).toBe('public, max-age=86400');
    // No CORS: no answer lets another origin read it, asked (a preflight, an Origin) or not.
    const origin = { Origin: 'https://elsewhere.example' };
    const preflight = await request(h.app)
      .options('/v1/advertisers')
      .set({ ...origin, 'Access-Control-Request-Method': 'POST' });
    const fromElsewhere = await request(h.app).get('/openapi.json').set(origin).expect(200);
    for (const res of [...Object.values(answers), reference, preflight, fromElsewhere])
      expect(Object.keys(res.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
    // The JSON API loads nothing; Bull Board's pages load only their own scripts.
    expect(answers['list advertisers'].headers['content-security-policy']).toMatch(/default-src 'none'/);
    expect(answers['board page'].headers['content-security-policy']).toMatch(/script-src 'self'(;|$)/);
    expect(answers['login page'].headers['content-security-policy']).toMatch(/form-action 'self'/);
  });
});

describe('Bull Board in a browser, under its CSP', () => {
  let browser: Browser;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    ({ server, base } = await listenLocally(h.app));
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it('logs in and shows the queues without a single CSP violation, and cannot be framed', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const violations: string[] = [];
    await page.exposeFunction('reportViolation', (text: string) => violations.push(text));
    // Runs in the page (a string: this project's TypeScript has no DOM types).
    await page.addInitScript({
      content: "document.addEventListener('securitypolicyviolation', (e) => window.reportViolation(e.violatedDirective + ' ' + e.blockedURI))",
    });
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    await page.goto(`${base}/admin/login`);
    await page.fill('#token', h.token);
    await page.click('button[type=submit]');
    await page.waitForURL(`${base}/admin/queues`);
    for (const name of ['postbacks', 'deliveries']) await page.getByText(name, { exact: true }).first().waitFor({ state: 'visible', timeout: 10_000 });
    expect(violations).toEqual([]);

    // Another page that frames the login gets nothing from it (frame-ancestors 'none').
    const framing = await context.newPage();
    const refused: string[] = [];
    framing.on('console', (message) => refused.push(message.text()));
    await framing.setContent(`<iframe src="${base}/admin/login"></iframe>`);
    await waitFor(() => refused.some((text) => text.includes(`violates the following Content Security Policy directive: "frame-ancestors 'none'"`)), {
      what: 'the frame to be refused',
    });
    const frame = framing.frames().find((f) => f !== framing.mainFrame())!;
    expect(await frame.$('#token')).toBeNull();
    await context.close();
  }, 60_000);
});

describe('GET /metrics', () => {
  it('needs Authorization: Bearer <METRICS_TOKEN> (401 with the envelope), and is a 404 while METRICS_TOKEN is unset', async () => {
    for (const headers of [{}, bearer('wrong-token-0123456789abcdef0123456789'), h.auth]) {
      const res = await request(h.app).get('/metrics').set(headers).expect(401);
      expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String), request_id: res.headers['x-request-id'] } });
    }
    expect((await request(h.app).get('/metrics').set(bearer(METRICS_TOKEN)).expect(200)).text).toContain('trackway_http_requests_total');
    const open = createApp({ ...h.deps, metricsToken: undefined });
    expect((await request(open).get('/metrics').set(bearer(METRICS_TOKEN)).expect(404)).body.error.code).toBe('not_found');
  });
});

describe('GET /readyz', () => {
  it('says only ready or not_ready; the check details only with the metrics token', async () => {
    h.deps.health.checks.redis = async () => {
      throw new Error('connect ECONNREFUSED 10.0.0.8:6379');
    };
    try {
      expect((await request(h.app).get('/readyz').expect(503)).body).toEqual({ status: 'not_ready' });
      expect((await request(h.app).get('/readyz').set(h.auth).expect(503)).body).toEqual({ status: 'not_ready' });
      expect((await request(h.app).get('/readyz').set(bearer(METRICS_TOKEN)).expect(503)).body).toEqual({
        status: 'not_ready',
        checks: { redis: 'connect ECONNREFUSED 10.0.0.8:6379' },
      });
    } finally {
      delete h.deps.health.checks.redis;
    }
    expect((await request(h.app).get('/readyz').expect(200)).body).toEqual({ status: 'ready' });
  });
});
