// Webhook deliveries to a local endpoint, against the same requests sent directly.
//
// Measured: the whole delivery path (createDeliveryWorkers from services/delivery, started by
// test/support/stack.ts: worker concurrency 50, endpoint concurrency 10, the retry schedule
// never needed) delivering N events (10,000; quick 1,000) to one endpoint whose receiver
// answers 200 at once. The events are written to the outbox and published exactly as the
// attribution worker does (one transaction and one publish per 500 events, all at once: a
// burst). Deliveries/s runs from the first publish to the last arrival. Also counted: delivery
// jobs parked (starts that were not attempts: BullMQ's attemptsStarted − attemptsMade of each
// delivery job, read once the burst is over) — worker concurrency above the endpoint's cap
// must not bounce jobs through `delayed`.
// Baseline: the same number of signed POSTs (same body, headers and signature the worker
// builds) sent directly with the worker's own keep-alive sender (createSender, an undici Agent)
// at the endpoint's concurrency (10): no queue, no database, no isolation gates.
// Also: latency at a light load (25 events/s, one by one), event timestamp → arrival; then the
// same load again with 20 more endpoints subscribed that accept every request and never answer
// (the default 15 s timeout and breaker threshold 5, so none times out or opens during the run):
// the healthy endpoint's latency beside them, against the light load without them (same run).
// Checked: all 20 × 10 hanging requests were still open when the last healthy webhook arrived.
import { type EventEnvelope, createEvent } from '@trackway/domain';
import { inTransaction } from '@trackway/db';
import { insertEvents, publishEvents } from '@trackway/outbox';
import { chunk, deliveryJobId } from '@trackway/queues';
import { type Receiver, startReceiver } from '@trackway/testing';
import { signedHeaders } from '@trackway/webhooks';
import { USER_AGENT, bodyOf } from '../services/delivery/src/deliver';
import { createSender } from '../services/delivery/src/sender';
import { type Stack, startStack } from '../test/support/stack';
import {
  type Row,
  cleanupOnInterrupt,
  machineNote,
  ms,
  once,
  pct,
  pool,
  rate,
  ratio,
  report,
  row,
  runBench,
  size,
  sleep,
  summarize,
  withDeadline,
} from './lib';

const N = size(Number(process.env.DELIVERY_N ?? 10_000), 1_000);
const ENDPOINT_CONCURRENCY = 10;
const WORKER_CONCURRENCY = 50;
const PACED = size(200, 50);
const PACED_RATE = 25;
const HANGING = 20;

const makeEvents = (n: number, tag: string) =>
  Array.from({ length: n }, (_, i) =>
    createEvent('conversion.approved', { conversion: { id: `cnv_${tag}_${i}`, amount: '49.90', currency: 'USD' }, previous_status: null }),
  );

/** Writes events to the outbox and publishes them as the attribution worker does: 500 per transaction. */
async function publishBurst(stack: Stack, events: EventEnvelope[]) {
  for (const part of chunk(events, 500)) {
    await inTransaction(stack.db.pool, (client) => insertEvents(client, part));
    await publishEvents(stack.db.pool, stack.queues.events, part);
  }
}

/** First arrival per event id, and repeats: tallied as requests come in (the bench shares its process with the worker). */
function tally(receiver: Receiver, events: EventEnvelope[]) {
  // Events may be added to the list (with their timestamps) after the tally began.
  const wanted = new Map<string, number>();
  const learn = () => {
    if (wanted.size < events.length) for (const e of events) wanted.set(e.id, Date.parse(e.timestamp));
  };
  const seen = new Set<string>();
  const latencies: number[] = [];
  const state = { count: 0, latencies, last: 0, repeats: 0 };
  let read = 0;
  return () => {
    learn();
    for (; read < receiver.requests.length; read++) {
      const req = receiver.requests[read];
      const id = String(req.headers['webhook-id']);
      const at = wanted.get(id);
      if (at === undefined) continue;
      if (seen.has(id)) {
        state.repeats += 1;
        continue;
      }
      seen.add(id);
      latencies.push(req.at - at);
      state.last = Math.max(state.last, req.at);
      state.count += 1;
    }
    return state;
  };
}

/** Events one at a time at PACED_RATE, as a light load: each event's timestamp → its first arrival at `receiver`. */
async function pacedLatency(stack: Stack, receiver: Receiver, tag: string, deadline: number) {
  const paced: EventEnvelope[] = [];
  const pacedTally = tally(receiver, paced);
  const started = performance.now();
  for (let i = 0; i < PACED; i++) {
    const wait = started + (i * 1000) / PACED_RATE - performance.now();
    if (wait > 0) await sleep(wait);
    const [event] = makeEvents(1, `${tag}${i}`);
    paced.push(event);
    void publishBurst(stack, [event]);
  }
  let got = pacedTally();
  while (got.count < PACED && Date.now() < deadline) {
    await sleep(20);
    got = pacedTally();
  }
  return { count: got.count, latency: summarize(got.latencies) };
}

async function main() {
  const stack = await startStack();
  const receivers: Receiver[] = [];
  const cleanup = once(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await stack.close();
  });
  cleanupOnInterrupt(cleanup);
  const rows: Row[] = [];
  let problems = 0;
  try {
    await withDeadline('delivery bench', size(120_000, 30_000), async () => {
      console.log(machineNote());
      console.log(`delivery bench: ${N} events to one endpoint; worker concurrency ${WORKER_CONCURRENCY}, endpoint concurrency ${ENDPOINT_CONCURRENCY}`);
      const receiver = await startReceiver();
      receivers.push(receiver);
      const endpoint = await stack.subscribe(receiver.url, ['*']);

      // --- baseline: direct signed POSTs, the worker's own keep-alive sender -----------------
      const sender = createSender({ allowedCidrs: ['127.0.0.0/8'] });
      const direct = makeEvents(N, 'direct');
      const sendOne = async (event: EventEnvelope) => {
        const body = bodyOf(event);
        const headers = {
          'content-type': 'application/json',
          'user-agent': USER_AGENT,
          ...signedHeaders({ id: event.id, timestamp: new Date(), body }, [endpoint.secret]),
        };
        const result = await sender.send(receiver.url, body, headers, { timeoutMs: 15_000 });
        if (result.statusCode !== 200) throw new Error(`direct send: ${result.statusCode ?? result.error}`);
      };
      await pool(200, ENDPOINT_CONCURRENCY, (i) => sendOne(direct[i]));
      const directStarted = performance.now();
      await pool(N, ENDPOINT_CONCURRENCY, (i) => sendOne(direct[i]));
      const directRate = N / ((performance.now() - directStarted) / 1000);
      console.log(`direct signed POSTs (keep-alive)   ${rate(directRate, '/s')}`);
      receiver.requests.length = 0;

      // --- the delivery path -----------------------------------------------------------------
      await stack.startDelivery(
        { endpointConcurrency: ENDPOINT_CONCURRENCY, timeoutMs: 15_000, schedule: [0, 1_000, 5_000] },
        { concurrency: WORKER_CONCURRENCY },
      );
      // Warm-up: connections, prepared statements, JIT.
      const warm = makeEvents(200, 'warm');
      const warmed = tally(receiver, warm);
      await publishBurst(stack, warm);
      while (warmed().count < warm.length) await sleep(20);

      const events = makeEvents(N, 'burst');
      const burst = tally(receiver, events);
      const started = Date.now();
      await publishBurst(stack, events);
      const deadline = Date.now() + size(90_000, 20_000);
      let got = burst();
      while (got.count < N && Date.now() < deadline) {
        await sleep(50);
        got = burst();
      }
      const deliveredRate = got.count / ((got.last - started) / 1000);
      const latency = summarize(got.latencies);
      // Starts that were not attempts, summed over the burst's delivery jobs: its batches (named on
      // the delivery rows) and any delivery's own job.
      const batchIds = await stack.db.prisma.delivery.findMany({
        where: { endpointId: endpoint.id, eventId: { in: events.map((e) => e.id) }, batchJobId: { not: null } },
        distinct: ['batchJobId'],
        select: { batchJobId: true },
      });
      const starts = stack.producer.pipeline();
      for (const { batchJobId } of batchIds) starts.hmget(stack.queues.deliveries.of(endpoint.id).toKey(batchJobId!), 'ats', 'atm');
      for (const event of events) starts.hmget(stack.queues.deliveries.of(endpoint.id).toKey(deliveryJobId(event.id, endpoint.id)), 'ats', 'atm');
      const parked = ((await starts.exec()) ?? []).reduce((sum, [, value]) => {
        const [ats, atm] = (value as [string | null, string | null]).map(Number);
        return sum + Math.max(0, ats - Math.max(atm, 1));
      }, 0);
      const succeeded = await stack.db.prisma.delivery.count({
        where: { endpointId: endpoint.id, status: 'succeeded', eventId: { in: events.map((e) => e.id) } },
      });
      const ok = got.count === N && succeeded === N;
      if (!ok) problems += 1;
      console.log(
        `delivery path, ${N}-event burst        ${rate(deliveredRate, '/s')}  arrived ${got.count}/${N}, recorded succeeded ${succeeded}, repeats ${got.repeats}, parked ${parked}; event → arrival ${pct(latency)}`,
      );

      // --- light load: one event at a time, 25 per second -----------------------------------
      const light = await pacedLatency(stack, receiver, 'paced', deadline + 10_000);
      const lightLatency = light.latency;
      console.log(`light load (${PACED_RATE} events/s)            event → arrival ${pct(lightLatency)}`);
      await sender.close();

      // --- the same light load beside 20 endpoints that never answer ------------------------
      const hanging = await Promise.all(Array.from({ length: HANGING }, () => startReceiver(() => ({ hang: true }))));
      receivers.push(...hanging);
      for (const r of hanging) await stack.subscribe(r.url, ['conversion.approved']);
      const open = () => hanging.reduce((sum, r) => sum + r.active, 0);
      const answered = () => hanging.reduce((sum, r) => sum + r.requests.length, 0) - open();
      const beside = await pacedLatency(stack, receiver, 'beside', Date.now() + size(60_000, 20_000));
      const openAtEnd = open();
      const besideOk = beside.count === PACED && openAtEnd === HANGING * ENDPOINT_CONCURRENCY && answered() === 0;
      if (!besideOk) problems += 1;
      console.log(
        `light load beside ${HANGING} hanging endpoints   event → arrival ${pct(beside.latency)}; arrived ${beside.count}/${PACED}, hanging requests open at the last arrival ${openAtEnd}`,
      );

      rows.push(
        row('delivery', `deliveries/s, 1 endpoint, ${N} events`, {
          measured: rate(deliveredRate, '/s'),
          baseline: `${rate(directRate, '/s')} direct signed POSTs, same keep-alive client, ${ENDPOINT_CONCURRENCY} at once`,
          ratio: ratio(deliveredRate, directRate),
          target: '≥ 0.5×',
          met: deliveredRate >= 0.5 * directRate,
          values: { measured: deliveredRate, baseline: directRate },
        }),
        row('delivery', 'jobs parked in the burst', {
          measured: String(parked),
          baseline: `worker concurrency ${WORKER_CONCURRENCY} > endpoint cap ${ENDPOINT_CONCURRENCY}`,
          ratio: `${(parked / N).toFixed(2)}/delivery`,
          values: { measured: parked },
        }),
        row('delivery', `latency at ${PACED_RATE} events/s`, {
          measured: `p50 ${ms(lightLatency.p50)}, p99 ${ms(lightLatency.p99)}`,
          values: { p50: lightLatency.p50, p95: lightLatency.p95, p99: lightLatency.p99 },
        }),
        row('delivery', `latency at ${PACED_RATE} events/s beside ${HANGING} hanging endpoints`, {
          measured: `p50 ${ms(beside.latency.p50)}, p99 ${ms(beside.latency.p99)}`,
          baseline: `p50 ${ms(lightLatency.p50)}, p99 ${ms(lightLatency.p99)} without them`,
          ratio: `p99 ${ratio(beside.latency.p99, lightLatency.p99)}`,
          values: { p50: beside.latency.p50, p99: beside.latency.p99, baselineP50: lightLatency.p50, baselineP99: lightLatency.p99 },
        }),
        row('delivery', `all ${HANGING * ENDPOINT_CONCURRENCY} hanging requests open at the last healthy webhook`, {
          measured: `${openAtEnd} open, ${beside.count}/${PACED} arrived`,
          baseline: `${HANGING} endpoints × cap ${ENDPOINT_CONCURRENCY}`,
          met: besideOk,
          values: { measured: openAtEnd },
        }),
        row('delivery', 'every event delivered once, recorded succeeded', {
          measured: `${got.count}/${N}, ${succeeded} succeeded, ${got.repeats} repeats`,
          met: ok,
          values: { measured: got.count },
        }),
      );
      report('delivery', rows);
      if (problems > 0) process.exitCode = 1;
    });
  } finally {
    await cleanup();
  }
}

runBench(main);
