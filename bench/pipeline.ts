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
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createFixture } from '@trackway/testing';
import { stackEnv } from '../test/support/processes';
import { startStack } from '../test/support/stack';
import { runHttpLoadInChild } from './http-load';
import {
  QUICK,
  ROOT,
  type Row,
  bytes,
  cleanupOnInterrupt,
  machineNote,
  ms,
  once,
  rate,
  report,
  row,
  runBench,
  size,
  sleep,
  summarize,
  withDeadline,
} from './lib';

const STEPS = process.env.PIPELINE_STEPS
  ? process.env.PIPELINE_STEPS.split(',').map(Number)
  : QUICK
    ? [60, 250]
    : [100, 150, 200, 250, 300, 400, 500, 650, 800, 1000];
const STEP_SECONDS = size(5, 2);
const HALF_SECONDS = size(10, 3);
const WEBHOOKS_PER_POSTBACK = 6;

interface Arrivals {
  total: number;
  /** order_id → arrival times of its conversion.created (one per endpoint). */
  created: Map<string, number[]>;
}

/** A receiver that answers 200 at once and notes when each postback's conversion.created arrived. */
async function receiver(arrivals: Arrivals): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
      arrivals.total += 1;
      const body = Buffer.concat(chunks).toString();
      if (body.includes('"conversion.created"')) {
        const order = JSON.parse(body).data.conversion.order_id as string;
        const list = arrivals.created.get(order);
        if (list) list.push(at);
        else arrivals.created.set(order, [at]);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function spawnLogged(service: string, env: Record<string, string>, logDir: string): { child: ChildProcess; log: string } {
  fs.mkdirSync(logDir, { recursive: true });
  const log = path.join(logDir, `${service}.log`);
  const out = fs.openSync(log, 'w');
  const profile = process.env.PIPELINE_PROF?.split(',').includes(service) ? ['--cpu-prof', `--cpu-prof-dir=${logDir}/prof-${service}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', `services/${service}/src/main.ts`], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  return { child, log };
}

async function waitForLog(log: string, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    const match = pattern.exec(text);
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`${path.basename(log)} never printed ${pattern}:\n${text.slice(-2000)}`);
    await sleep(100);
  }
}

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
/** CPU time (ms) a process has used so far. */
const cpuOf = (pid: number) => {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
};
/** Pids of the shared servers (Redis, PostgreSQL backends), to show where the cores went. */
const serverPids = (name: string) =>
  fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/comm`, 'utf8').trim().startsWith(name);
      } catch {
        return false;
      }
    })
    .map(Number);

async function main() {
  const stack = await startStack();
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trackway-pipeline-'));
  const arrivals: Arrivals = { total: 0, created: new Map() };
  const receivers = [await receiver(arrivals), await receiver(arrivals)];
  const services: ChildProcess[] = [];
  const cleanup = once(async () => {
    for (const s of services) s.kill(process.env.PIPELINE_SIGINT ? 'SIGINT' : 'SIGKILL');
    if (process.env.PIPELINE_SIGINT) await sleep(3000);
    await Promise.all(receivers.map((r) => r.close()));
    await stack.close();
  });
  cleanupOnInterrupt(cleanup);
  const rows: Row[] = [];
  try {
    await withDeadline('pipeline bench', size(300_000, 45_000), async () => {
      console.log(machineNote());
      for (const r of receivers) await stack.subscribe(r.url);
      const fx = await createFixture(stack.db.prisma);
      const env = stackEnv(stack, { DELIVERY_RETRY_SCHEDULE: '0,1s,5s,30s', ...(process.env.PIPELINE_ENV ? JSON.parse(process.env.PIPELINE_ENV) : {}) });
      const ingest = spawnLogged('ingest', env, logDir);
      services.push(ingest.child);
      const extra = Number(process.env.PIPELINE_DELIVERY_PROCESSES ?? 1) - 1;
      const workers = ['attribution', 'delivery'].map((name) => spawnLogged(name, env, logDir).child);
      for (let i = 0; i < extra; i++) workers.push(spawnLogged(`delivery`, { ...env }, path.join(logDir, `d${i}`)).child);
      services.push(...workers);
      const processes = {
        ingest: ingest.child.pid!,
        attribution: workers[0].pid!,
        delivery: workers[1].pid!,
        ...Object.fromEntries(workers.slice(2).map((w, i) => [`delivery${i + 2}`, w.pid!])),
        bench: process.pid,
      };
      const usage = () => ({
        ...Object.fromEntries(Object.entries(processes).map(([name, pid]) => [name, cpuOf(pid)])),
        redis: serverPids('redis-server').reduce((sum, pid) => sum + cpuOf(pid), 0),
        postgres: serverPids('postgres').reduce((sum, pid) => sum + cpuOf(pid), 0),
      });
      const port = Number((await waitForLog(ingest.log, /"port":(\d+).*ingest listening/))[1]);
      await waitForLog(path.join(logDir, 'attribution.log'), /attribution worker running/);
      await waitForLog(path.join(logDir, 'delivery.log'), /delivery worker running/);
      console.log(`pipeline: ingest on :${port}; logs in ${logDir}; steps ${STEPS.join(', ')} postbacks/s for ${STEP_SECONDS} s each`);

      let order = 0;
      const batch = (n: number) =>
        Array.from({ length: n }, () => {
          order += 1;
          const clickId = stack.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) });
          return { order: `pipe-${order}`, path: `/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=pipe-${order}&amount=20.00&currency=USD` };
        });
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
          [fx.advertiserId, orders],
        );
        const part = (key: 'attributed' | 'fanned' | 'sent') => {
          const s = summarize(rows.rows.map((r) => Number(r[key])));
          return `${key} ${ms(s.p50)} / ${ms(s.p95)}`;
        };
        return `${part('attributed')}; ${part('fanned')}; ${part('sent')}`;
      };
      const drain = async (expected: number, timeoutMs: number) => {
        const deadline = Date.now() + timeoutMs;
        while (arrivals.total < expected && Date.now() < deadline) await sleep(50);
        return arrivals.total >= expected;
      };

      // Warm-up: JIT, pools, keep-alive connections, prepared statements.
      const warm = batch(size(500, 100));
      await runHttpLoadInChild({ port, warmup: [], paths: warm.map((p) => p.path), concurrency: 32, perSecond: 100 });
      let expected = warm.length * WEBHOOKS_PER_POSTBACK;
      await drain(expected, 30_000);

      let sustained = 0;
      let rss = 0;
      for (const perSecond of STEPS) {
        const step = batch(perSecond * STEP_SECONDS);
        const before = arrivals.total;
        let peak = 0;
        let delayedPeak = 0;
        const sampler = setInterval(() => {
          peak = Math.max(peak, rssOf(ingest.child.pid!));
          void stack.producer.zcard(`${stack.prefix}:deliveries:delayed`).then((n) => (delayedPeak = Math.max(delayedPeak, n)));
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
          target: '≥ 250 postbacks/s',
          met: sustained >= 250,
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
