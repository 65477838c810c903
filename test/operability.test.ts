// Every service as a real process: /healthz, /readyz and Prometheus /metrics on each (behind
// METRICS_TOKEN on the public ports), JSON logs that follow one postback from ingest through
// attribution to its deliveries, secrets redacted. Run on its own (as in production), a service
// says what stops it in one line of words, with the stack trace only at LOG_LEVEL=debug; a store
// it cannot reach does not stop it: its outage lines name the variable, the address and what to do.
import { createServer } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createTestDatabase, startReceiver, waitFor } from '@trackway/testing';
import request from 'supertest';
import { type ServiceProcess, spawnService, stackEnv } from './support/processes';
import { type Stack, startStack } from './support/stack';
import { startTcpProxy } from './support/tcp-proxy';

let stack: Stack;
const running: ServiceProcess[] = [];
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  await stack.close();
});

const METRICS_TOKEN = 'operability-metrics-token-0123456789abcdef';
const env = (overrides: Record<string, string> = {}) => stackEnv(stack, { METRICS_TOKEN, ...overrides });
const withToken = { Authorization: `Bearer ${METRICS_TOKEN}` };

async function start(service: 'ingest' | 'api' | 'attribution' | 'delivery', overrides: Record<string, string> = {}) {
  const p = spawnService(service, env(overrides));
  running.push(p);
  await p.waitForOutput(/listening|worker running/, 30_000);
  const port = Number(/"(?:health_)?port":(\d+)/.exec(p.output())![1]);
  return { p, url: `http://127.0.0.1:${port}` };
}

const logLines = (p: ServiceProcess) =>
  p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const metric = (text: string, name: string, labels: Record<string, string>) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.split(' ').at(-1)) : undefined;
};

it('serves health, readiness and metrics on every service, and logs one postback end to end', async () => {
  const receiver = await startReceiver();
  const [ingest, api, attribution, delivery] = [await start('ingest'), await start('api'), await start('attribution'), await start('delivery')];

  for (const service of [ingest, api, attribution, delivery]) {
    await request(service.url).get('/healthz').expect(200, { status: 'ok' });
    // Public ports (ingest, api) show the checks only with the metrics token; health ports always.
    const ready = await waitFor(
      async () => {
        const res = await request(service.url).get('/readyz').set(withToken);
        return res.status === 200 ? res : null;
      },
      { timeoutMs: 20_000, what: 'readiness' },
    );
    expect(ready.body.checks).toMatchObject({ redis: 'ok', postgres: 'ok', migrations: 'ok' });
  }
  for (const service of [ingest, api]) {
    expect((await request(service.url).get('/readyz').expect(200)).body).toEqual({ status: 'ready' });
    await request(service.url).get('/metrics').expect(401);
  }
  expect((await request(attribution.url).get('/readyz')).body.checks.workers).toBe('ok');
  expect((await request(delivery.url).get('/readyz')).body.checks.workers).toBe('ok');

  // One postback through the whole system, over HTTP to the real processes.
  const auth = stack.auth;
  await request(api.url)
    .post('/v1/webhook-endpoints')
    .set(auth)
    .send({ url: receiver.url, event_types: ['*'] })
    .expect(201);
  const advertiser = (await request(api.url).post('/v1/advertisers').set(auth).send({ name: 'Shop' }).expect(201)).body;
  const affiliate = (await request(api.url).post('/v1/affiliates').set(auth).send({ name: 'Blog' }).expect(201)).body;
  const offer = (
    await request(api.url)
      .post('/v1/offers')
      .set(auth)
      .send({
        advertiser_id: advertiser.id,
        name: 'Sale',
        destination_url: 'https://shop.example/',
        currency: 'USD',
        payout: { type: 'fixed', amount: '2.00' },
        min_ctit_seconds: 0,
      })
      .expect(201)
  ).body;
  const click = await request(ingest.url).get(`/click?offer_id=${offer.id}&affiliate_id=${affiliate.id}`).expect(302);
  const clickId = new URL(click.headers.location).searchParams.get('click_id')!;
  const posted = await request(ingest.url)
    .get('/postback')
    .query({ key: advertiser.postback_key, click_id: clickId, order_id: 'OBS-1', amount: '20' })
    .expect(202);
  const postbackId = posted.body.postback_id as string;
  await waitFor(() => receiver.requests.length >= 3, { timeoutMs: 20_000, what: 'the three events delivered' });

  // Logs: ingest's request line names the postback and hides the key; attribution links the
  // postback to its events; delivery names each event and delivery.
  await waitFor(() => logLines(delivery.p).filter((l) => l.msg === 'delivered').length >= 3, { what: 'delivery log lines' });
  const requestLine = logLines(ingest.p).find((l) => l.postback_id === postbackId);
  expect(requestLine).toMatchObject({ level: 'info', service: 'ingest', res: { statusCode: 202 } });
  expect(JSON.stringify(requestLine)).toContain('key=[redacted]');
  expect(ingest.p.output()).not.toContain(advertiser.postback_key);
  const attributed = logLines(attribution.p).find((l) => l.msg === 'postback attributed' && l.postback_id === postbackId) as { event_ids: string[] };
  expect(attributed.event_ids).toHaveLength(3);
  const delivered = logLines(delivery.p).filter((l) => l.msg === 'delivered' && attributed.event_ids.includes(l.event_id as string));
  expect(delivered).toHaveLength(3);
  for (const line of delivered)
    expect(line).toMatchObject({ delivery_id: expect.stringMatching(/^dlv_/), endpoint_id: expect.stringMatching(/^ep_/), status_code: 200 });
  for (const p of [ingest.p, api.p, attribution.p, delivery.p]) expect(p.output()).not.toMatch(/whsec_|Bearer ey/);

  // Metrics moved.
  const ingestMetrics = (await request(ingest.url).get('/metrics').set(withToken).expect(200)).text;
  expect(metric(ingestMetrics, 'trackway_postbacks_total', { stage: 'ingest', outcome: 'queued' })).toBe(1);
  expect(metric(ingestMetrics, 'trackway_http_requests_total', { route: '/postback', status: '202' })).toBe(1);
  expect(metric(ingestMetrics, 'trackway_http_request_duration_seconds_count', { route: '/click', status: '302' })).toBe(1);
  expect(metric(ingestMetrics, 'trackway_clicks_total', { outcome: 'redirected' })).toBe(1);
  expect(ingestMetrics).toMatch(/^process_cpu_user_seconds_total\{service="ingest"\} /m);
  // The job's "completed" event can trail its deliveries: wait for it to be counted.
  const attributionMetrics = await waitFor(
    async () => {
      const text = (await request(attribution.url).get('/metrics').expect(200)).text;
      return metric(text, 'trackway_job_duration_seconds_count', { queue: 'postbacks', result: 'completed' }) === 1 ? text : null;
    },
    { what: 'the postback job in the metrics' },
  );
  expect(metric(attributionMetrics, 'trackway_postbacks_total', { stage: 'attribution', outcome: 'accepted' })).toBe(1);
  expect(metric(attributionMetrics, 'trackway_conversions_total', { status: 'approved' })).toBe(1);
  expect(metric(attributionMetrics, 'trackway_job_duration_seconds_count', { queue: 'postbacks', result: 'completed' })).toBe(1);
  expect(metric(attributionMetrics, 'trackway_queue_jobs', { queue: 'postbacks', state: 'waiting' })).toBe(0);
  const deliveryMetrics = (await request(delivery.url).get('/metrics').expect(200)).text;
  expect(metric(deliveryMetrics, 'trackway_deliveries_total', { result: 'succeeded', status_class: '2xx' })).toBe(3);
  expect(metric(deliveryMetrics, 'trackway_queue_jobs', { queue: 'deliveries', state: 'failed' })).toBe(0);
  expect(deliveryMetrics).toContain('trackway_job_attempts_bucket');

  // Changes made through the api process reach ingest's caches at once (Redis pub/sub), not
  // after their 30 s TTL: a rotated key stops working, a paused offer stops redirecting.
  const rotated = (await request(api.url).post(`/v1/advertisers/${advertiser.id}/rotate-key`).set(auth).expect(200)).body;
  await waitFor(
    async () => (await request(ingest.url).get('/postback').query({ key: advertiser.postback_key, click_id: clickId, order_id: 'OBS-2' })).status === 401,
    { timeoutMs: 2_000, what: 'the old key to be refused' },
  );
  await request(ingest.url).get('/postback').query({ key: rotated.postback_key, click_id: clickId, order_id: 'OBS-2' }).expect(202);
  await request(api.url).patch(`/v1/offers/${offer.id}`).set(auth).send({ status: 'inactive' }).expect(200);
  await waitFor(async () => (await request(ingest.url).get(`/click?offer_id=${offer.id}&affiliate_id=${affiliate.id}`)).status === 404, {
    timeoutMs: 2_000,
    what: 'the paused offer to 404',
  });

  // SIGTERM: readiness goes 503 before the process exits.
  api.p.child.kill('SIGTERM');
  expect(await api.p.exited).toBe(0);
  expect(api.p.output()).toContain('"step":"mark unready"');
  await receiver.close();
}, 120_000);

it('is not ready while a migration is pending, and says which', async () => {
  const db = await createTestDatabase();
  try {
    const [last] = await db.prisma.$queryRaw<
      { migration_name: string }[]
    >`SELECT migration_name FROM "_prisma_migrations" ORDER BY migration_name DESC LIMIT 1`;
    await db.prisma.$executeRaw`DELETE FROM "_prisma_migrations" WHERE migration_name = ${last.migration_name}`;
    const worker = await start('attribution', { DATABASE_URL: db.url, QUEUE_PREFIX: `${stack.prefix}-m` });
    // The first queries of a cold process can outlast a check's 2 s deadline on a busy machine.
    const ready = await waitFor(
      async () => {
        const res = await request(worker.url).get('/readyz').expect(503);
        return res.body.checks.postgres === 'ok' && res.body.checks.redis === 'ok' ? res : null;
      },
      { timeoutMs: 20_000, what: 'readiness checks to settle' },
    );
    expect(ready.body).toMatchObject({
      status: 'not_ready',
      checks: { migrations: `pending migrations: ${last.migration_name}`, redis: 'ok', postgres: 'ok' },
    });
    worker.p.child.kill('SIGTERM');
    await worker.p.exited;
  } finally {
    await db.drop();
  }
}, 60_000);

it('honours LOG_LEVEL', async () => {
  const free = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => free.once('listening', r));
  const port = (free.address() as AddressInfo).port;
  free.close();
  const quiet = spawnService('attribution', env({ LOG_LEVEL: 'warn', QUEUE_PREFIX: `${stack.prefix}-q`, HEALTH_PORT: String(port) }));
  running.push(quiet);
  await waitFor(
    async () =>
      (
        await request(`http://127.0.0.1:${port}`)
          .get('/readyz')
          .catch(() => null)
      )?.status === 200,
    { timeoutMs: 30_000, what: 'readiness' },
  );
  quiet.child.kill('SIGTERM');
  expect(await quiet.exited).toBe(0);
  expect(quiet.output()).not.toContain('"level":"info"');
  expect(quiet.output().trim()).toBe('');
}, 60_000);

it('starts every service beside a bad setting of another one; only the service that reads it refuses to start, naming it', async () => {
  const bad = { DELIVERY_ENDPOINT_CONCURRENCY: 'abc', INGEST_PORT: '0x10' };
  const outcomes = await Promise.all(
    (['ingest', 'attribution', 'delivery', 'api'] as const).map(async (service) => {
      const p = spawnService(service, env(bad));
      running.push(p);
      const started = await Promise.race([
        p.waitForOutput(/listening|worker running/, 30_000).then(() => 'started'),
        p.exited.then((code) => `exited ${code}`),
      ]);
      return { service, started, output: p.output() };
    }),
  );
  expect(outcomes.map(({ service, started }) => ({ service, started }))).toEqual([
    { service: 'ingest', started: 'exited 1' },
    { service: 'attribution', started: 'started' },
    { service: 'delivery', started: 'exited 1' },
    // The api reads INGEST_PORT too: the OpenAPI document's ingest server (PUBLIC_INGEST_URL's default).
    { service: 'api', started: 'exited 1' },
  ]);
  const [ingest, , delivery, api] = outcomes.map((o) => o.output);
  expect(ingest).toContain('Invalid environment:\n  - INGEST_PORT: must be a whole number\n');
  expect(ingest).not.toContain('DELIVERY_ENDPOINT_CONCURRENCY');
  expect(api).toContain('Invalid environment:\n  - INGEST_PORT: must be a whole number\n');
  expect(api).not.toContain('DELIVERY_ENDPOINT_CONCURRENCY');
  expect(delivery).toContain('Invalid environment:\n  - DELIVERY_ENDPOINT_CONCURRENCY: must be a whole number\n');
  expect(delivery).not.toContain('INGEST_PORT');
}, 60_000);

const spawnKept = (...args: Parameters<typeof spawnService>) => {
  const p = spawnService(...args);
  running.push(p);
  return p;
};

it.each([
  ['api', 'API_PORT', 'API_PORT'],
  ['attribution', 'HEALTH_PORT', 'HEALTH_PORT, or ATTRIBUTION_HEALTH_PORT under pnpm start'],
] as const)(
  'a port in use stops %s with one line naming its variable (%s)',
  async (service, variable, named) => {
    const taken = net.createServer().listen(0, '0.0.0.0');
    await new Promise((resolve) => taken.once('listening', resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const child = spawnKept(service, stackEnv(stack, { [variable]: String(port) }));
      expect(await child.exited).toBe(1);
      const lines = child
        .output()
        .split('\n')
        .filter((line) => line.includes('could not start'));
      expect(lines).toEqual([`${service} could not start: port ${port} (${named}) is in use by another program: stop it, or set that variable to a free port`]);
      expect(child.output()).not.toMatch(/^\s+at /m);
    } finally {
      taken.close();
    }
  },
  30_000,
);

it('a bad variable stops it naming the variable; LOG_LEVEL=debug adds the stack trace', async () => {
  const quiet = spawnKept('ingest', stackEnv(stack, { INGEST_PORT: 'eighty' }));
  expect(await quiet.exited).toBe(1);
  expect(quiet.output()).toMatch(/^ingest could not start: Invalid environment:\n {2}- INGEST_PORT: /m);
  expect(quiet.output()).not.toMatch(/^\s+at /m);
  const loud = spawnKept('ingest', { ...stackEnv(stack, { INGEST_PORT: 'eighty' }), LOG_LEVEL: 'debug' });
  expect(await loud.exited).toBe(1);
  expect(loud.output()).toMatch(/^ingest could not start: ConfigError: Invalid environment:[\s\S]*\n\s+at /m);
}, 30_000);

it('PostgreSQL out of reach: the worker keeps running, says so in words without a stack trace per failed job, and when it is back', async () => {
  // PostgreSQL behind a proxy that is down from the start.
  const proxy = await startTcpProxy(Number(new URL(stack.db.url).port || 5432));
  await proxy.stop();
  const url = new URL(stack.db.url);
  url.port = String(proxy.port);
  const worker = spawnKept(
    'attribution',
    stackEnv(stack, { DATABASE_URL: url.toString(), OUTBOX_RELAY_INTERVAL: '200ms', QUEUE_PREFIX: `${stack.prefix}-pg` }),
  );
  await worker.waitForOutput(/"msg":"postgres unavailable"/, 20_000);
  const lines = () =>
    worker
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line));
  expect(lines().find((line) => line.msg === 'postgres unavailable')).toMatchObject({
    service: 'attribution',
    dependency: 'postgres',
    variable: 'DATABASE_URL',
    address: `127.0.0.1:${proxy.port}`,
    hint: 'attribution keeps running and retrying: start PostgreSQL at that address, or set DATABASE_URL to one that answers',
    source: 'job failed (outbox)',
    err: { message: expect.stringContaining('ECONNREFUSED') },
  });
  // Several relay ticks later: still running, no line per failed job, no stack trace.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  expect(worker.child.exitCode).toBeNull();
  expect(worker.output()).not.toContain('"msg":"job failed"');
  expect(worker.output()).not.toMatch(/"stack":"[^"]/);

  await proxy.start();
  await worker.waitForOutput(/"msg":"postgres available again"/, 20_000);
  expect(lines().find((line) => line.msg === 'postgres available again')).toMatchObject({ dependency: 'postgres', variable: 'DATABASE_URL' });
  await proxy.stop();
}, 60_000);
