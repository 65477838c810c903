// Invariant 5: one slow or failing endpoint never delays another. A hanging endpoint holds at
// most its share of the worker's concurrency, its breaker opens and parks its jobs (no attempts
// spent), a probe half-opens it, and deliveries to a healthy endpoint keep their latency.
import { createEvent } from '@trackway/domain';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { startReceiver, waitFor } from '@trackway/testing';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

/** Events at a steady 20 per second: latency then measures isolation, not a backlog. */
async function emitMany(count: number) {
  const events = [];
  for (let i = 0; i < count; i++) {
    const event = createEvent('conversion.approved', { conversion: { id: `cnv_${i}` } });
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, [event]));
    await publishEvents(stack.db.pool, stack.queues.events, [event]);
    events.push(event);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return events;
}

/** Milliseconds from each event's creation to its arrival at the receiver. */
function latencies(requests: { body: string; at: number }[], ids: Set<string>) {
  return requests
    .map((r) => ({ event: JSON.parse(r.body) as { id: string; timestamp: string }, at: r.at }))
    .filter(({ event }) => ids.has(event.id))
    .map(({ event, at }) => at - Date.parse(event.timestamp));
}

it('keeps a healthy endpoint fast while another hangs, and recovers the hanging one through a half-open probe', async () => {
  const started = await stack.startDelivery(
    { timeoutMs: 300, breakerThreshold: 3, breakerCooldownMs: 2_500, endpointConcurrency: 2, schedule: [0, 50, 50, 50, 50, 50, 50, 50] },
    { concurrency: 8 },
  );
  const healthy = await startReceiver(() => ({ status: 200 }));
  let hanging = true;
  const slow = await startReceiver(() => (hanging ? { hang: true } : { status: 200 }));
  const healthyEp = await stack.subscribe(healthy.url, ['conversion.approved']);

  // Warm up (connections, prepared queries), then the baseline: the healthy endpoint alone.
  await emitMany(10);
  await waitFor(() => healthy.requests.length >= 10, { timeoutMs: 15_000, what: 'warm-up deliveries' });
  healthy.requests.length = 0;
  const baselineEvents = await emitMany(40);
  await waitFor(() => healthy.requests.length >= 40, { timeoutMs: 15_000, what: 'baseline deliveries' });
  const baseline = latencies(healthy.requests, new Set(baselineEvents.map((e) => e.id)));

  // Now a hanging endpoint subscribes to the same events.
  const slowEp = await stack.subscribe(slow.url, ['conversion.approved']);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const before = healthy.requests.length;
  const contended = await emitMany(40);
  await waitFor(() => healthy.requests.length >= before + 40, { timeoutMs: 15_000, what: 'contended deliveries' });
  const during = latencies(healthy.requests.slice(before), new Set(contended.map((e) => e.id)));

  const [p50Base, p95Base, p50During, p95During] = [percentile(baseline, 50), percentile(baseline, 95), percentile(during, 50), percentile(during, 95)];
  console.log(`healthy endpoint latency ms: baseline p50 ${p50Base} p95 ${p95Base}; beside a hanging endpoint p50 ${p50During} p95 ${p95During}`);
  expect(p95During).toBeLessThan(Math.max(2 * p95Base, p95Base + 300));

  // The hanging endpoint held at most its concurrency share, and its breaker opened after 3
  // consecutive timeouts: its 40 deliveries spent almost no attempts.
  expect(slow.maxActive).toBeLessThanOrEqual(2);
  const attemptsOf = () => stack.db.prisma.deliveryAttempt.count({ where: { delivery: { endpointId: slowEp.id } } });
  await waitFor(async () => (await attemptsOf()) >= 3, { what: 'three timeouts' });
  const breaker = async () => (await stack.metrics.breakerState.get()).values.find((v) => v.labels.endpoint === slowEp.id)?.value;
  await waitFor(async () => (await breaker()) === 2, { what: 'the breaker to open (metric = 2)' });
  // Before the breaker opened: at most threshold (3) + the other in-flight slot (1) attempts.
  // After: only half-open probes, each at least a cooldown (2.5 s) after the previous attempt.
  const attempts = (await stack.db.prisma.deliveryAttempt.findMany({ where: { delivery: { endpointId: slowEp.id } }, orderBy: { at: 'asc' } })).map((a) =>
    a.at.getTime(),
  );
  expect(attempts.length).toBeLessThan(10);
  for (let i = 4; i < attempts.length; i++) expect(attempts[i] - attempts[i - 1]).toBeGreaterThanOrEqual(2_400);
  expect(await stack.db.prisma.delivery.count({ where: { endpointId: slowEp.id, attemptCount: 0 } })).toBeGreaterThan(30);
  expect(await stack.db.prisma.delivery.count({ where: { endpointId: slowEp.id, status: 'failed' } })).toBe(0);

  // The receiver recovers: after the cooldown one probe goes through, closes the breaker, and
  // every parked delivery is delivered, none having run out of attempts.
  hanging = false;
  await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { endpointId: slowEp.id, status: 'succeeded' } })) === 40, {
    timeoutMs: 20_000,
    what: 'parked deliveries to arrive after recovery',
  });
  expect(await stack.db.prisma.delivery.count({ where: { endpointId: healthyEp.id, status: 'succeeded' } })).toBe(90);
  expect(await breaker()).toBeUndefined(); // closed endpoints leave the metric
  await healthy.close();
  await slow.close();
  await stack.stopWorkers(started);
});

it('keeps a healthy endpoint fast when an endpoint it has seen fast starts hanging, before any timeout or breaker', async () => {
  // A long timeout and a high breaker threshold: only the gate's own hang detection (in-flight
  // requests far older than the endpoint's usual latency) can keep A's backlog from taking the
  // worker's slots. A is fast for 20 deliveries, then hangs with 60 queued behind it.
  const started = await stack.startDelivery({ timeoutMs: 10_000, breakerThreshold: 50, endpointConcurrency: 2, schedule: [0, 60_000] }, { concurrency: 8 });
  let hanging = false;
  const a = await startReceiver(() => (hanging ? { hang: true } : { status: 200 }));
  const b = await startReceiver(() => ({ status: 200 }));
  await stack.subscribe(a.url, ['commission.created']);
  await stack.subscribe(b.url, ['conversion.rejected']);
  const emit = async (count: number, type: 'commission.created' | 'conversion.rejected') => {
    const list = Array.from({ length: count }, (_, i) => createEvent(type, { conversion: { id: `cnv_${i}` } }));
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, list));
    await publishEvents(stack.db.pool, stack.queues.events, list);
    return list;
  };
  await emit(20, 'commission.created');
  await waitFor(() => a.requests.length >= 20, { what: 'A’s fast deliveries' });

  hanging = true;
  await emit(60, 'commission.created');
  await new Promise((resolve) => setTimeout(resolve, 300));
  const bEvents = await emit(3, 'conversion.rejected');
  await waitFor(() => b.requests.length >= 3, { timeoutMs: 9_000, what: 'B’s deliveries (well before A’s 10 s timeout)' });
  const late = latencies(b.requests, new Set(bEvents.map((e) => e.id)));
  console.log(`healthy endpoint latency beside one that turned from fast to hanging (ms): ${late.join(', ')}; A in flight at most ${a.maxActive}`);
  // Well under the 1 s a waiting job may spend on a turn: A's waiters parked once its attempts
  // counted as stuck (250 ms), so B's jobs found free slots.
  expect(Math.max(...late)).toBeLessThan(1_000);
  expect(a.maxActive).toBeLessThanOrEqual(2);
  await a.close();
  await b.close();
  await stack.stopWorkers(started);
}, 60_000);
