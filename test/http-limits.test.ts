// Every HTTP server of the real processes — ingest, api and both workers' health ports — keeps
// HTTP_REQUEST_TIMEOUT, HTTP_HEADERS_TIMEOUT and HTTP_MAX_CONNECTIONS: a request sent halfway
// is answered 408 and closed (the probe saw one held for 321 s), and connections past the cap
// are refused.
import {
  type TestDatabase,
  createTestDatabase,
  deleteRedisPrefix,
  parseRawResponse,
  probeConnectionCap,
  randomPrefix,
  sendAndAwaitClose,
} from '@trackway/testing';
import { type ServiceProcess, startService, stackEnv } from './support/processes';

type Service = 'ingest' | 'api' | 'attribution' | 'delivery';

let db: TestDatabase;
const prefix = randomPrefix();
const running: ServiceProcess[] = [];
let short: Record<Service, number>;
let defaults: number;

const SHORT = { HTTP_REQUEST_TIMEOUT: '1s', HTTP_HEADERS_TIMEOUT: '1s' };

beforeAll(async () => {
  db = await createTestDatabase();
  const start = async (service: Service, overrides: Record<string, string> = {}) => {
    const p = await startService(service, stackEnv({ db, prefix }, overrides));
    running.push(p);
    return p.port;
  };
  const [ingest, api, attribution, delivery, ingestAtDefaults] = await Promise.all([
    start('ingest', SHORT),
    start('api', SHORT),
    start('attribution', SHORT),
    start('delivery', SHORT),
    // Default timeouts; a cap low enough to reach.
    start('ingest', { HTTP_MAX_CONNECTIONS: '2' }),
  ]);
  short = { ingest, api, attribution, delivery };
  defaults = ingestAtDefaults;
}, 60_000);

afterAll(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  await Promise.all(running.map((p) => p.exited));
  await deleteRedisPrefix(prefix);
  await db?.drop();
});

const halfABody = (path: string, type = 'application/json') =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: 64\r\n\r\n{"order_id":`;
const HALF_THE_HEADERS = 'GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: slo';

function expect408(response: string) {
  const answer = parseRawResponse(response);
  expect(answer).toMatchObject({ status: 408, headers: { connection: 'close' } });
  expect(answer.body).toEqual({ error: { code: 'request_timeout', message: expect.any(String) } });
}

it('answers a body sent halfway with 408 after HTTP_REQUEST_TIMEOUT, on ingest and api', async () => {
  const [postback, login] = await Promise.all([
    sendAndAwaitClose(short.ingest, halfABody('/postback'), 10_000),
    sendAndAwaitClose(short.api, halfABody('/admin/login', 'application/x-www-form-urlencoded'), 10_000),
  ]);
  for (const { response, ms } of [postback, login]) {
    expect408(response);
    expect(ms).toBeLessThan(1_000 + 2_000);
  }
});

it('answers headers sent halfway with 408 after HTTP_HEADERS_TIMEOUT, on every server', async () => {
  const services = Object.keys(short) as Service[];
  const results = await Promise.all(services.map((service) => sendAndAwaitClose(short[service], HALF_THE_HEADERS, 10_000)));
  results.forEach(({ response, ms }, i) => {
    expect({ service: services[i], status: parseRawResponse(response).status }).toEqual({ service: services[i], status: 408 });
    expect(ms).toBeLessThan(1_000 + 2_000);
  });
});

it('at the default settings, answers a body sent halfway with 408 within 10–15 s', async () => {
  const { response, ms } = await sendAndAwaitClose(defaults, halfABody('/postback'), 20_000);
  expect408(response);
  expect(ms).toBeGreaterThanOrEqual(9_900);
  expect(ms).toBeLessThan(15_000);
}, 30_000);

it('refuses connections beyond HTTP_MAX_CONNECTIONS, and serves again below it', async () => {
  expect(await probeConnectionCap(defaults, 2)).toEqual({ refusedPastCap: true, servedBelowCap: true });
});
