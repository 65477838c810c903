// The whole pipeline as a platform team runs it: one process per service (ingest, attribution,
// delivery, from services/*/src/main.ts with their defaults and info-level logs to a file), two
// local endpoints subscribed to every event, postbacks over HTTP.
//
// Stepping: the offered load (open loop, fresh orders, approved: each postback is 3 events, so
// 6 webhooks) goes up step by step, each step STEP_SECONDS long. A step is sustained when the
// backlog did not grow: when its last postback is answered, at most one second's worth of its
// webhooks is still outstanding, and all of them arrive within 5 s after. Reported: the highest
// sustained rate, with where the cores went during each step. Then, at half that rate: end-to-end latency, from the 202 to the
// postback's conversion.created arriving at each endpoint. Also: the ingest process's RSS under
// the highest sustained load (VmRSS from /proc).
import { runHttpLoadInChild } from './http-load';
import { QUICK, type Row, bytes, cleanupOnInterrupt, machineNote, ms, once, rate, report, row, runBench, size, summarize, withDeadline } from './lib';
import { EVENTS_PER_POSTBACK, rssOf, startSystem } from './system';

const STEPS = process.env.PIPELINE_STEPS
  ? process.env.PIPELINE_STEPS.split(',').map(Number)
  : QUICK
    ? [60, 250]
    : [100, 150, 200, 250, 300, 400, 500, 650, 800, 1000];
const STEP_SECONDS = size(5, 2);
const HALF_SECONDS = size(10, 3);
const ENDPOINTS = 2;
const WEBHOOKS_PER_POSTBACK = EVENTS_PER_POSTBACK * ENDPOINTS;

async function main() {
  const system = await startSystem({
    endpoints: ENDPOINTS,
    env: process.env.PIPELINE_ENV ? JSON.parse(process.env.PIPELINE_ENV) : {},
    deliveryProcesses: Number(process.env.PIPELINE_DELIVERY_PROCESSES ?? 1),
  });
  const { stack, port, arrivals, drain } = system;
  const cleanup = once(system.close);
  cleanupOnInterrupt(cleanup);
  const rows: Row[] = [];
  try {
    await withDeadline('pipeline bench', size(300_000, 45_000), async () => {
      console.log(machineNote());
      console.log(`pipeline: ingest on :${port}; logs in ${system.logDir}; steps ${STEPS.join(', ')} postbacks/s for ${STEP_SECONDS} s each`);
      const usage = system.usage;
      const batch = system.postbacks;
      // Where a postback's time went: received → attributed (outcome committed) → its deliveries
      // created (fan-out) → their first attempt sent.
      const stages = async (orders: string[]) => {
        const rows = await stack.db.pool.query<{ attributed: number; fanned: number; sent: number }>(
          `SELECT extract(epoch FROM (p.processed_at - p.received_at)) * 1000 AS attributed,
                  extract(epoch FROM (d.created_at - p.processed_at)) * 1000 AS fanned,
                  extract(epoch FROM (a.at - d.created_at)) * 1000 AS sent
             FROM postbacks p JOIN conversions c ON c.id = p.conversion_id
             JOIN outbox_events e ON e.type = 'conversion.created' AND e.payload->'data'->'conversion'->>'id' = c.id
             JOIN deliveries d ON d.event_id = e.id JOIN delivery_attempts a ON a.delivery_id = d.id AND a.number = 1
            WHERE c.advertiser_id = $1 AND c.order_id = ANY($2::varchar[])`,
          [system.fixture.advertiserId, orders],
        );
        const part = (key: 'attributed' | 'fanned' | 'sent') => {
          const s = summarize(rows.rows.map((r) => Number(r[key])));
          return `${key} ${ms(s.p50)} / ${ms(s.p95)}`;
        };
        return `${part('attributed')}; ${part('fanned')}; ${part('sent')}`;
      };

      // Warm-up: JIT, pools, keep-alive connections, prepared statements; then the statistics a
      // running system has (system.analyze), and a second warm-up that plans with them.
      let expected = 0;
      for (const [i, n] of [size(500, 100), size(300, 60)].entries()) {
        const warm = batch(n);
        await runHttpLoadInChild({ port, warmup: [], paths: warm.map((p) => p.path), concurrency: 32, perSecond: 100 });
        expected += warm.length * WEBHOOKS_PER_POSTBACK;
        await drain(expected, 30_000);
        if (i === 0) await system.analyze();
      }

      let sustained = 0;
      let rss = 0;
      for (const perSecond of STEPS) {
        const step = batch(perSecond * STEP_SECONDS);
        const before = arrivals.total;
        let peak = 0;
        let delayedPeak = 0;
        const sampler = setInterval(() => {
          peak = Math.max(peak, rssOf(system.pids.ingest));
          void stack.producer.zcard(stack.queues.deliveries.shards[0].toKey('delayed')).then((n) => (delayedPeak = Math.max(delayedPeak, n)));
        }, 200);
        const cpuBefore = usage();
        const stepStarted = performance.now();
        const sent = await runHttpLoadInChild({ port, warmup: [], paths: step.map((p) => p.path), concurrency: 32, perSecond });
        clearInterval(sampler);
        const cpuAfter = usage();
        const elapsed = performance.now() - stepStarted;
        const cores = Object.entries(cpuAfter)
          .map(([name, ms]) => `${name} ${((ms - cpuBefore[name as keyof typeof cpuBefore]) / elapsed).toFixed(2)}`)
          .join(', ');
        const accepted = sent.statuses['202'] ?? 0;
        const outstanding = accepted * WEBHOOKS_PER_POSTBACK - (arrivals.total - before);
        expected += accepted * WEBHOOKS_PER_POSTBACK;
        const drainStarted = performance.now();
        const drained = await drain(expected, 5_000);
        const drainMs = performance.now() - drainStarted;
        const ok = accepted === step.length && outstanding <= perSecond * WEBHOOKS_PER_POSTBACK && drained;
        console.log(
          `${rate(perSecond, 'postbacks/s offered').padStart(24)}: ${accepted}/${step.length} × 202 (p99 ${ms(sent.latency.p99)}), ` +
            `${outstanding} webhooks outstanding at the last 202 (${(outstanding / (perSecond * WEBHOOKS_PER_POSTBACK)).toFixed(2)} s of work), ${drained ? `all in ${ms(drainMs)} later` : 'not all within 5 s'} → ${ok ? 'sustained' : 'backlog grows'}; ingest RSS ${bytes(peak)}; cores: ${cores}`,
        );
        console.log(
          `${' '.repeat(26)}stages (p50 / p95): ${await stages(step.map((p) => p.order))}; delivery jobs delayed (parked) at most ${delayedPeak} at once`,
        );
        if (!ok) break;
        sustained = perSecond;
        rss = Math.max(rss, peak);
      }
      // Let whatever the last step left drain before measuring latency.
      await drain(expected, 60_000);
      expected = arrivals.total;

      let latency = summarize([]);
      const half = Math.floor(sustained / 2);
      if (half > 0) {
        const run = batch(half * HALF_SECONDS);
        const sent = await runHttpLoadInChild({ port, warmup: [], paths: run.map((p) => p.path), concurrency: 64, perSecond: half });
        await drain(expected + (sent.statuses['202'] ?? 0) * WEBHOOKS_PER_POSTBACK, 30_000);
        const e2e: number[] = [];
        run.forEach((p, i) => {
          const answered = sent.answers?.[i]?.[0];
          for (const at of arrivals.created.get(p.order) ?? []) if (answered) e2e.push(at - answered);
        });
        latency = summarize(e2e);
        console.log(`at ${half} postbacks/s: ${e2e.length} webhooks, 202 → conversion.created p50 ${ms(latency.p50)}, p99 ${ms(latency.p99)}`);
      }
      rows.push(
        row('pipeline', 'sustained postbacks/s, 2 endpoints, 1 process per service', {
          measured: rate(sustained, 'postbacks/s'),
          baseline: `steps ${STEPS.filter((s) => s <= sustained * 2).join(', ')}`,
          target: '≥ 350 postbacks/s',
          met: sustained >= 350,
          values: { measured: sustained },
        }),
        row('pipeline', `e2e 202 → webhook at ${half}/s (half)`, {
          measured: `p50 ${ms(latency.p50)}, p99 ${ms(latency.p99)}`,
          baseline: `${latency.count} webhooks`,
          target: 'p99 ≤ 250 ms',
          met: latency.count > 0 && latency.p99 <= 250,
          values: { p50: latency.p50, p99: latency.p99 },
        }),
        row('pipeline', 'ingest RSS under the sustained load', { measured: bytes(rss), values: { measured: rss } }),
      );
      report('pipeline', rows);
      // A figure that cannot be measured fails the run; a slow machine does not.
      if (arrivals.total === 0) process.exitCode = 1;
    });
  } finally {
    await cleanup();
  }
}

runBench(main);
