// Requests in flight to one endpoint never stop other endpoints' deliveries from starting: with
// the default concurrency (50 jobs, 10 requests per endpoint), twenty endpoints that accept a
// request and never answer hold 200 requests open, and a healthy endpoint subscribed to the same
// events still gets every webhook while all 200 are open (none timed out, none answered).
import { createEvent } from '@trackway/domain';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { type Receiver, startReceiver, waitFor } from '@trackway/testing';
import { type Stack, startStack } from './support/stack';

const HANGING = 20;
const ENDPOINT_CONCURRENCY = 10;
const WORKER_CONCURRENCY = 50;

let stack: Stack;
const receivers: Receiver[] = [];
beforeEach(async () => {
  stack = await startStack();
});
afterEach(async () => {
  // The hanging sockets first: the workers' close waits for the jobs whose requests they hold.
  await Promise.all(receivers.splice(0).map((r) => r.close()));
  await stack.close();
});

async function emit(count: number, tag: string) {
  const events = Array.from({ length: count }, (_, i) => createEvent('conversion.approved', { conversion: { id: `cnv_${tag}_${i}` } }));
  await stack.db.prisma.$transaction((tx) => writeEvents(tx, events));
  await publishEvents(stack.db.pool, stack.queues.events, events);
  return events;
}

/** Twenty hanging endpoints and a healthy one, all subscribed, served by `processes` delivery workers with the default concurrency. */
async function healthyBesideHanging(processes: number) {
  // A long timeout: no hanging request ends, and so no breaker opens, during the test.
  for (let i = 0; i < processes; i++) {
    await stack.startDelivery(
      { timeoutMs: 60_000, breakerThreshold: 5, endpointConcurrency: ENDPOINT_CONCURRENCY, schedule: [0, 60_000] },
      { concurrency: WORKER_CONCURRENCY },
    );
  }
  const hanging = await Promise.all(Array.from({ length: HANGING }, () => startReceiver(() => ({ hang: true }))));
  const healthy = await startReceiver(() => ({ status: 200 }));
  receivers.push(...hanging, healthy);
  for (const receiver of hanging) await stack.subscribe(receiver.url, ['conversion.approved']);
  const healthyEndpoint = await stack.subscribe(healthy.url, ['conversion.approved']);
  const open = () => hanging.reduce((sum, r) => sum + r.active, 0);

  // Enough events for every hanging endpoint to reach its cap: 20 × 10 requests open.
  const first = await emit(ENDPOINT_CONCURRENCY + 2, 'first');
  await waitFor(() => open() === HANGING * ENDPOINT_CONCURRENCY, { timeoutMs: 20_000, what: `${HANGING * ENDPOINT_CONCURRENCY} hanging requests open` });

  // More events while all of them hang: each adds twenty deliveries that cannot start (their
  // endpoints are at their cap) and one that must.
  const second = await emit(30, 'second');
  const wanted = new Set([...first, ...second].map((e) => e.id));
  const arrived = () => new Set(healthy.requests.map((r) => String(r.headers['webhook-id'])).filter((id) => wanted.has(id))).size;
  await waitFor(() => arrived() === wanted.size, { timeoutMs: 30_000, what: 'every webhook at the healthy endpoint' });

  // The moment the last healthy webhook arrived: every hanging request still open, none answered
  // or timed out (no attempt logged), each endpoint at exactly its cap.
  expect(open()).toBe(HANGING * ENDPOINT_CONCURRENCY);
  expect(hanging.map((r) => r.requests.length)).toEqual(hanging.map(() => ENDPOINT_CONCURRENCY));
  expect(Math.max(...hanging.map((r) => r.maxActive))).toBe(ENDPOINT_CONCURRENCY);
  expect(await stack.db.prisma.deliveryAttempt.count({ where: { delivery: { endpointId: { not: healthyEndpoint.id } } } })).toBe(0);
  if (processes === 1) {
    // What an operator sees: the process's requests in flight, none waiting for one.
    const gauge = Object.fromEntries((await stack.metrics.deliveryRequests.get()).values.map((v) => [v.labels.state, v.value]));
    expect(gauge).toEqual({ in_flight: HANGING * ENDPOINT_CONCURRENCY, waiting: 0 });
  }
  await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { endpointId: healthyEndpoint.id, status: 'succeeded' } })) === wanted.size, {
    what: 'the healthy deliveries recorded succeeded',
  });
}

it('delivers every webhook to a healthy endpoint while twenty endpoints hold all their requests open', () => healthyBesideHanging(1), 90_000);

it('does so with two delivery processes, whose jobs find the hanging endpoints’ caps held by the other', () => healthyBesideHanging(2), 90_000);
