// A Redis outage is logged as a few structured lines, not as BullMQ's raw console dumps: every
// queue and worker has an error listener, and repeats of one error are folded.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { waitFor } from '@trackway/testing';
import request from 'supertest';
import { spawnService, stackEnv, type ServiceProcess } from './support/processes';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let redis: ChildProcess | undefined;
const running: ServiceProcess[] = [];
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  redis?.kill('SIGKILL');
  await stack.close();
});

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });

const startRedis = (port: number) =>
  spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });

it('logs a Redis outage as structured JSON lines, folded, and recovers when Redis is back', async () => {
  const port = await freePort();
  redis = startRedis(port);
  // The health server takes any free port (0) and logs it: no port picked here for it to race for.
  const worker = spawnService('attribution', stackEnv(stack, { REDIS_URL: `redis://127.0.0.1:${port}`, QUEUE_PREFIX: `${stack.prefix}-o`, HEALTH_PORT: '0' }));
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
  redis.kill('SIGKILL');
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
  expect(parsed.some((l) => /redis connection error|queue error|worker error/.test(l.msg))).toBe(true);
  // Folded: a handful of lines per source over six seconds of reconnects, not hundreds.
  expect(lines.length).toBeLessThan(40);

  redis = startRedis(port);
  await waitFor(async () => (await ready()) === 200, { timeoutMs: 30_000, what: 'readiness after Redis came back' });
  worker.child.kill('SIGTERM');
  expect(await worker.exited).toBe(0);
}, 90_000);
