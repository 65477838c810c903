// A Redis outage is logged as a few structured lines, not as BullMQ's raw console dumps nor a
// line per connection, queue and worker: every error of every one of them is folded into one
// outage line per interval, and its end is one line too.
import { REPEAT_INTERVAL_MS } from '@trackway/logger';
import request from 'supertest';
import { type OwnRedis, freePort, ownRedis, waitFor } from '@trackway/testing';
import { spawnService, stackEnv, type ServiceProcess } from './support/processes';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let redis: OwnRedis;
const running: ServiceProcess[] = [];
beforeAll(async () => {
  stack = await startStack();
  redis = ownRedis(await freePort());
});
afterAll(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  await redis.stop();
  await stack.close();
});

it('logs a Redis outage as structured JSON lines, one per interval, and recovers when Redis is back', async () => {
  redis.start();
  // The health server takes any free port (0) and logs it: no port picked here for it to race for.
  const worker = spawnService('attribution', stackEnv(stack, { REDIS_URL: redis.url, QUEUE_PREFIX: `${stack.prefix}-o`, HEALTH_PORT: '0' }));
  running.push(worker);
  await worker.waitForOutput(/attribution worker running/, 30_000);
  const health = Number(/"health_port":(\d+)/.exec(worker.output())![1]);
  const ready = () =>
    request(`http://127.0.0.1:${health}`)
      .get('/readyz')
      .then(
        (res) => res.status,
        () => 0,
      );
  await waitFor(async () => (await ready()) === 200, { timeoutMs: 20_000, what: 'readiness' });

  const before = worker.output().length;
  const down = Date.now();
  await redis.stop();
  // Several reconnect rounds of every connection, queue and worker.
  await new Promise((resolve) => setTimeout(resolve, 6_000));
  const lines = worker
    .output()
    .slice(before)
    .split('\n')
    .filter((line) => line.trim() !== '');
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  const parsed = lines.map((line) => JSON.parse(line) as { msg: string; level: string; err?: { message?: string } });
  // In words: which variable names the store, where it is, and what to do.
  expect(parsed[0]).toMatchObject({
    msg: 'redis unavailable',
    variable: 'REDIS_URL',
    address: new URL(redis.url).host,
    hint: 'attribution keeps running and retrying: start Redis at that address, or set REDIS_URL to one that answers',
  });
  // Folded: the outage's first line, then at most one per interval, whatever the sources.
  expect(parsed.map((l) => l.msg).filter((msg) => msg !== 'redis still unavailable')).toEqual(['redis unavailable']);
  expect(lines.length).toBeLessThanOrEqual(1 + Math.floor((Date.now() - down) / REPEAT_INTERVAL_MS));

  redis.start();
  await waitFor(async () => (await ready()) === 200, { timeoutMs: 30_000, what: 'readiness after Redis came back' });
  await worker.waitForOutput(/"msg":"redis available again"/, 15_000);
  worker.child.kill('SIGTERM');
  expect(await worker.exited).toBe(0);
}, 90_000);
