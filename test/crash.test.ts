// A delivery worker killed (SIGKILL) in the middle of a request: its job's lock expires, another
// worker takes the job up, and the event arrives with the same webhook-id.
import { startReceiver, waitFor } from '@trackway/testing';
import request from 'supertest';
import { type ServiceProcess, spawnService, stackEnv } from './support/processes';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
const processes: ServiceProcess[] = [];
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  for (const p of processes) p.child.kill('SIGKILL');
  await stack.close();
});

const workerEnv = () =>
  stackEnv(stack, {
    DELIVERY_QUEUES: 'events,deliveries',
    DELIVERY_TIMEOUT_MS: '20000',
    DELIVERY_RETRY_SCHEDULE: '0,100ms,100ms',
    WORKER_LOCK_DURATION: '1s',
    WORKER_STALLED_INTERVAL: '500ms',
  });

it('delivers after the worker is killed mid-delivery and another starts, with the same webhook-id', async () => {
  const receiver = await startReceiver((_req, n) => (n === 1 ? { hang: true } : { status: 200 }));
  const ep = await stack.subscribe(receiver.url, ['*']);

  const first = spawnService('delivery', workerEnv());
  processes.push(first);
  await first.waitForOutput(/delivery worker running/);
  const test = (await request(stack.api).post(`/v1/webhook-endpoints/${ep.id}/test`).set(stack.auth).expect(202)).body;
  await waitFor(() => receiver.requests.length === 1, { timeoutMs: 15_000, what: 'the first request' });
  first.child.kill('SIGKILL');
  expect(await first.exited).toBe('SIGKILL');

  const second = spawnService('delivery', workerEnv());
  processes.push(second);
  await waitFor(() => receiver.requests.length === 2, { timeoutMs: 20_000, what: 'the request after restart' });
  const delivery = await waitFor(
    async () => {
      const res = await request(stack.api).get(`/v1/deliveries/${test.delivery_id}`).set(stack.auth).expect(200);
      return res.body.status === 'succeeded' ? res.body : null;
    },
    { what: 'the delivery to succeed' },
  );
  expect(receiver.requests.map((r) => r.headers['webhook-id'])).toEqual([test.event_id, test.event_id]);
  expect(receiver.requests[0].body).toBe(receiver.requests[1].body);
  // The killed attempt never finished, so it was never logged; the one that did is.
  expect(delivery.attempts).toEqual([expect.objectContaining({ number: 1, status_code: 200 })]);
  second.child.kill('SIGTERM');
  expect(await second.exited).toBe(0);
  await receiver.close();
}, 60_000);
