// Webhook deliveries to local receivers.
//
// Measures, on the whole delivery path (createDeliveryWorkers from services/delivery, started
// by test/support/stack.ts with FAST_DELIVERY settings, endpoint concurrency 10, delivery
// worker concurrency 20):
//   1. Throughput: 1000 events written to the outbox and published exactly as the attribution
//      worker does (writeEvents in a transaction, then publishEvents; 100 events per
//      transaction, all at once: a burst) to one endpoint subscribed to them, whose receiver
//      answers 200 at once. Printed: deliveries/s (first event timestamp → last arrival) and
//      end-to-end latency p50/p95/p99 (event timestamp → receiver arrival; under a burst this
//      includes the wait behind the backlog).
//      Baseline: the same number of signed POSTs (same body, headers and signature as the
//      worker builds) sent directly with send() from services/delivery/src/sender.ts at the same
//      concurrency (20): no queue, no database, no isolation gates. Its latency is send start →
//      arrival. Also counted: delivery jobs parked because the endpoint had no free slot
//      (BullMQ 'delayed' events on the deliveries queue, via QueueEvents).
//   2. Latency at light load: 100 events emitted one by one exactly as test/webhooks.test.ts
//      emit() does (own transaction, then publish) at a steady 25 events/s; baseline: 100
//      direct send()s at the same pace.
//   3. Isolation: 250 events fanned out to 4 endpoints at once (timeout 500 ms), all healthy;
//      then 3 healthy + 1 hanging (never answers). Printed: the healthy endpoints' p95 with the
//      hanging neighbour vs the all-healthy case (the isolation figure). A control run with the
//      3 healthy endpoints alone (the same healthy work, no neighbour) is printed too.
// Verified: each healthy endpoint received every event exactly once, and the deliveries of
// scenario 1 are recorded as succeeded.
import { type EventEnvelope, createEvent } from '@trackway/domain';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { createWorkerConnection } from '@trackway/queues';
import { TEST_REDIS_URL, type Receiver, startReceiver, waitFor } from '@trackway/testing';
import { signedHeaders } from '@trackway/webhooks';
import { QueueEvents } from 'bullmq';
import request from 'supertest';
import { USER_AGENT, bodyOf } from '../services/delivery/src/deliver';
import { createSender } from '../services/delivery/src/sender';
import { FAST_DELIVERY, type Stack, startStack } from '../test/support/stack';
import { type LatencySummary, type SummaryRow, cleanupOnInterrupt, machineNote, once, ms, pct, pool, rate, ratio, report, summarize, withDeadline } from './lib';

const N = Number(process.env.DELIVERY_N ?? 1000);
const WARMUP = Number(process.env.DELIVERY_WARMUP ?? 50);
const ISOLATION_EVENTS = Number(process.env.DELIVERY_ISOLATION_EVENTS ?? 250);
const CONCURRENCY = 20;
const SETTINGS = { endpointConcurrency: 10 };
const ISOLATION_SETTINGS = { endpointConcurrency: 10, timeoutMs: 500 };
const CHUNK = 100;
const PACED_EVENTS = Number(process.env.DELIVERY_PACED_EVENTS ?? 100);
const PACED_RATE = 25;

interface Run {
  deliveries: number;
  durationMs: number;
  perSecond: number;
  latency: LatencySummary;
}

async function createEndpoint(stack: Stack, url: string): Promise<{ id: string; secret: string }> {
  const res = await request(stack.api).post('/v1/webhook-endpoints').set(stack.auth).send({ url, event_types: ['*'] }).expect(201);
  return res.body as { id: string; secret: string };
}

/** Writes `n` events to the outbox and publishes them, CHUNK per transaction, as fast as possible. */
async function publishBurst(stack: Stack, n: number): Promise<EventEnvelope[]> {
  const all: EventEnvelope[] = [];
  for (let i = 0; i < n; i += CHUNK) {
    const events = Array.from({ length: Math.min(CHUNK, n - i) }, (_, k) =>
      createEvent('conversion.approved', { conversion: { id: `cnv_bench_${i + k}`, amount: '49.90', currency: 'USD' }, previous_status: null }),
    );
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, events));
    await publishEvents(stack.db.pool, stack.queues.events, events);
    all.push(...events);
  }
  return all;
}

/** Latencies (arrival − event timestamp) of the requests a receiver got for these events; checks each arrived once. */
function arrivals(receiver: Receiver, events: EventEnvelope[]): { latencies: number[]; last: number; duplicates: number; missing: number } {
  const stamp = new Map(events.map((e) => [e.id, Date.parse(e.timestamp)]));
  const seen = new Set<string>();
  const latencies: number[] = [];
  let last = 0;
  let duplicates = 0;
  for (const req of receiver.requests) {
    const id = String(req.headers['webhook-id']);
    const at = stamp.get(id);
    if (at === undefined) continue;
    if (seen.has(id)) {
      duplicates += 1;
      continue;
    }
    seen.add(id);
    latencies.push(req.at - at);
    last = Math.max(last, req.at);
  }
  return { latencies, last, duplicates, missing: events.length - seen.size };
}

/** Exactly test/webhooks.test.ts emit(): one event, its own transaction, then the publish. */
async function emit(stack: Stack, i: number): Promise<EventEnvelope> {
  const event = createEvent('conversion.approved', { conversion: { id: `cnv_paced_${i}`, amount: '49.90', currency: 'USD' }, previous_status: null });
  await stack.db.prisma.$transaction((tx) => writeEvents(tx, [event]));
  await publishEvents(stack.db.pool, stack.queues.events, [event]);
  return event;
}

/** Starts `task(i)` at a steady `perSecond` pace (open loop: a slow task does not delay the next). */
async function paced<T>(n: number, perSecond: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const started = performance.now();
  const running: Promise<T>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = started + (i * 1000) / perSecond - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    running.push(task(i));
  }
  return Promise.all(running);
}

const received = (receiver: Receiver, events: EventEnvelope[]) => arrivals(receiver, events).latencies.length;

async function main() {
  const stack = await startStack();
  const receivers: Receiver[] = [];
  const receiver = async (reply?: Receiver['reply']) => {
    const r = await startReceiver(reply);
    receivers.push(r);
    return r;
  };
  const disableAll = () => stack.db.prisma.webhookEndpoint.updateMany({ data: { enabled: false } });
  const cleanup = once(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await stack.close();
  });
  cleanupOnInterrupt(cleanup);
  let problems = 0;
  try {
    await withDeadline('delivery bench', 55_000, async () => {
      console.log(machineNote());
      console.log(
        `delivery bench: ${N} events → 1 endpoint (delivery concurrency ${CONCURRENCY}, endpoint concurrency ${SETTINGS.endpointConcurrency}), ` +
          `baseline ${N} direct send() at concurrency ${CONCURRENCY}; isolation: ${ISOLATION_EVENTS} events → 4 endpoints (timeout ${ISOLATION_SETTINGS.timeoutMs} ms)`,
      );

      // 1. Pipeline throughput and latency, one endpoint.
      const r = await receiver();
      const ep = await createEndpoint(stack, r.url);
      const workers = await stack.startDelivery(SETTINGS, { concurrency: CONCURRENCY });
      const warm = await publishBurst(stack, WARMUP);
      await waitFor(() => received(r, warm) >= WARMUP, { timeoutMs: 15_000, what: 'warm-up deliveries' });
      r.requests.length = 0;
      // Jobs moved to delayed while the endpoint's slots were all busy (no failures happen here,
      // so every 'delayed' event of the deliveries queue is such a parking).
      const queueEvents = new QueueEvents('deliveries', { connection: createWorkerConnection(TEST_REDIS_URL), prefix: stack.prefix });
      await queueEvents.waitUntilReady();
      let parked = 0;
      queueEvents.on('delayed', () => {
        parked += 1;
      });

      const events = await publishBurst(stack, N);
      await waitFor(() => received(r, events) >= N, { timeoutMs: 40_000, intervalMs: 10, what: `${N} deliveries` });
      const got = arrivals(r, events);
      const first = Math.min(...events.map((e) => Date.parse(e.timestamp)));
      const pipeline: Run = { deliveries: N, durationMs: got.last - first, perSecond: N / ((got.last - first) / 1000), latency: summarize(got.latencies) };
      const succeeded = await waitFor(
        async () => {
          const count = await stack.db.prisma.delivery.count({ where: { status: 'succeeded', eventId: { in: events.map((e) => e.id) } } });
          return count === N ? count : null;
        },
        { timeoutMs: 10_000, what: 'deliveries recorded as succeeded' },
      ).catch(() => -1);
      const parkedInBurst = parked;
      console.log(
        `pipeline burst (outbox → fan-out → delivery) ${rate(pipeline.perSecond, 'deliveries/s').padStart(18)}  ${N} in ${ms(pipeline.durationMs)}; ` +
          `event → arrival ${pct(pipeline.latency)} (mean ${ms(pipeline.latency.mean)}, includes backlog wait); ` +
          `${succeeded === N ? `${N} recorded succeeded` : 'NOT all recorded succeeded'}; duplicates ${got.duplicates}; jobs parked (endpoint busy) ${parkedInBurst}`,
      );
      if (succeeded !== N || got.duplicates > 0) problems += 1;

      r.requests.length = 0;
      const pacedEvents = await paced(PACED_EVENTS, PACED_RATE, (i) => emit(stack, i));
      await waitFor(() => received(r, pacedEvents) >= PACED_EVENTS, { timeoutMs: 15_000, intervalMs: 10, what: 'paced deliveries' });
      const pacedLatency = summarize(arrivals(r, pacedEvents).latencies);
      await stack.stopWorkers(workers);
      await queueEvents.close();
      console.log(`pipeline paced, ${PACED_RATE} events/s (emit() one by one)      event → arrival ${pct(pacedLatency)} (mean ${ms(pacedLatency.mean)}); ${PACED_EVENTS} events`);

      // Baseline: the same signed POSTs (body, headers, signature as deliver.ts builds them),
      // straight from send(): first N at the same concurrency, then the paced run's count at its pace.
      // The same keep-alive sender the worker uses (one per policy).
      const sender = createSender(FAST_DELIVERY.policy);
      const startedAt = new Map<string, number>();
      let sendErrors = 0;
      const sendOne = async (event: EventEnvelope) => {
        const body = bodyOf(event);
        const headers = { 'content-type': 'application/json', 'user-agent': USER_AGENT, ...signedHeaders({ id: event.id, timestamp: new Date(), body }, [ep.secret]) };
        startedAt.set(event.id, Date.now());
        const result = await sender.send(r.url, body, headers, { timeoutMs: FAST_DELIVERY.timeoutMs });
        if (result.statusCode !== 200) sendErrors += 1;
      };
      const directEvent = (tag: string) => createEvent('conversion.approved', { conversion: { id: `cnv_${tag}`, amount: '49.90', currency: 'USD' }, previous_status: null });
      const sentLatencies = () => r.requests.map((q) => q.at - (startedAt.get(String(q.headers['webhook-id'])) ?? Number.NaN));

      r.requests.length = 0;
      const direct = Array.from({ length: N }, (_, i) => directEvent(`direct_${i}`));
      const t0 = performance.now();
      await pool(N, CONCURRENCY, (i) => sendOne(direct[i]));
      const directMs = performance.now() - t0;
      const baseline: Run = { deliveries: N, durationMs: directMs, perSecond: N / (directMs / 1000), latency: summarize(sentLatencies()) };
      console.log(
        `baseline (direct send(), c=${CONCURRENCY})                ${rate(baseline.perSecond, 'deliveries/s').padStart(18)}  ${N} in ${ms(baseline.durationMs)}; ` +
          `send → arrival ${pct(baseline.latency)}; errors ${sendErrors}`,
      );

      r.requests.length = 0;
      await paced(PACED_EVENTS, PACED_RATE, (i) => sendOne(directEvent(`direct_paced_${i}`)));
      const directPaced = summarize(sentLatencies());
      console.log(`baseline paced, ${PACED_RATE}/s (direct send())                  send → arrival ${pct(directPaced)}; errors ${sendErrors}`);
      await sender.close();
      if (sendErrors > 0) problems += 1;
      console.log(
        `ratio: pipeline throughput = ${ratio(pipeline.perSecond, baseline.perSecond)} direct sending; at light load its p50 latency = ${ratio(pacedLatency.p50, directPaced.p50)} direct sending's`,
      );
      await disableAll();

      // 2. Isolation: four endpoints, all healthy, then one hanging.
      const isolation = async (healthyCount: number, hanging: boolean) => {
        const healthy = await Promise.all(Array.from({ length: healthyCount }, () => receiver()));
        const stuck = hanging ? await receiver(() => ({ hang: true })) : null;
        for (const target of [...healthy, ...(stuck ? [stuck] : [])]) await createEndpoint(stack, target.url);
        const started = await stack.startDelivery(ISOLATION_SETTINGS, { concurrency: CONCURRENCY });
        const batch = await publishBurst(stack, ISOLATION_EVENTS);
        await waitFor(() => healthy.every((h) => received(h, batch) >= ISOLATION_EVENTS), { timeoutMs: 40_000, intervalMs: 10, what: 'healthy deliveries' });
        const per = healthy.map((h) => arrivals(h, batch));
        const all = per.flatMap((p) => p.latencies);
        const firstAt = Math.min(...batch.map((e) => Date.parse(e.timestamp)));
        const lastAt = Math.max(...per.map((p) => p.last));
        const run: Run = { deliveries: all.length, durationMs: lastAt - firstAt, perSecond: all.length / ((lastAt - firstAt) / 1000), latency: summarize(all) };
        const stuckAttempts = stuck?.requests.length ?? 0;
        await stack.stopWorkers(started);
        await disableAll();
        const dupes = per.reduce((sum, p) => sum + p.duplicates, 0);
        if (dupes > 0) problems += 1;
        console.log(
          `${`${healthyCount} healthy${hanging ? ' + 1 hanging' : ' endpoints'}`.padEnd(21)}  healthy: ${rate(run.perSecond, 'deliveries/s').padStart(18)}  ${run.deliveries} in ${ms(run.durationMs)}; ` +
            `event → arrival ${pct(run.latency)}; per endpoint p95 ${per.map((p) => ms(summarize(p.latencies).p95)).join(', ')}` +
            `${stuck ? `; hanging endpoint got ${stuckAttempts} attempts meanwhile` : ''}; duplicates ${dupes}`,
        );
        return run;
      };
      const allHealthy = await isolation(4, false);
      const alone = await isolation(3, false);
      const withHanging = await isolation(3, true);
      console.log(
        `isolation: healthy endpoints' p95 ${ms(withHanging.latency.p95)} with a hanging neighbour vs ${ms(allHealthy.latency.p95)} all healthy (${ratio(withHanging.latency.p95, allHealthy.latency.p95)}); ` +
          `vs ${ms(alone.latency.p95)} for the 3 healthy alone (${ratio(withHanging.latency.p95, alone.latency.p95)})`,
      );

      const rows: SummaryRow[] = [
        { bench: 'delivery', metric: `deliveries/s (1 endpoint, ${N} events)`, measured: rate(pipeline.perSecond, '/s'), baseline: `${rate(baseline.perSecond, '/s')} (direct send)`, ratio: ratio(pipeline.perSecond, baseline.perSecond) },
        { bench: 'delivery', metric: `latency p50 in the ${N}-event burst`, measured: ms(pipeline.latency.p50), baseline: ms(baseline.latency.p50), ratio: ratio(pipeline.latency.p50, baseline.latency.p50) },
        { bench: 'delivery', metric: `latency p95 in the ${N}-event burst`, measured: ms(pipeline.latency.p95), baseline: ms(baseline.latency.p95), ratio: ratio(pipeline.latency.p95, baseline.latency.p95) },
        { bench: 'delivery', metric: `latency p50 at ${PACED_RATE} events/s`, measured: ms(pacedLatency.p50), baseline: ms(directPaced.p50), ratio: ratio(pacedLatency.p50, directPaced.p50) },
        { bench: 'delivery', metric: `latency p95 at ${PACED_RATE} events/s`, measured: ms(pacedLatency.p95), baseline: ms(directPaced.p95), ratio: ratio(pacedLatency.p95, directPaced.p95) },
        { bench: 'delivery', metric: 'jobs parked in the burst (endpoint busy)', measured: String(parkedInBurst), baseline: '-', ratio: `${(parkedInBurst / N).toFixed(1)}/delivery` },
        { bench: 'delivery', metric: 'isolation: healthy p95, 1 of 4 hanging', measured: ms(withHanging.latency.p95), baseline: `${ms(allHealthy.latency.p95)} (4 healthy)`, ratio: ratio(withHanging.latency.p95, allHealthy.latency.p95) },
        { bench: 'delivery', metric: 'isolation: healthy p95, control', measured: ms(withHanging.latency.p95), baseline: `${ms(alone.latency.p95)} (3 healthy alone)`, ratio: ratio(withHanging.latency.p95, alone.latency.p95) },
        { bench: 'delivery', metric: 'isolation: healthy deliveries/s', measured: rate(withHanging.perSecond, '/s'), baseline: `${rate(allHealthy.perSecond, '/s')} (4 healthy)`, ratio: ratio(withHanging.perSecond, allHealthy.perSecond) },
      ];
      report('delivery', rows);
      if (problems > 0) {
        console.error(`${problems} check(s) failed`);
        process.exitCode = 1;
      }
    });
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
