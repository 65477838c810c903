// The whole pipeline as a platform team runs it: one process per service (ingest, attribution,
// delivery, from services/*/src/main.ts with their defaults and info-level logs to a file), two
// local endpoints subscribed to every event, postbacks over HTTP.
//
// Stepping: the offered load (open loop, fresh orders, approved: each postback is 3 events, so
// 6 webhooks) goes up step by step; a step is sustained when, 2 s after its last postback was
// answered, at least 99.5 % of its webhooks have arrived (the backlog does not grow). Reported:
// the highest sustained rate. Then, at half that rate: end-to-end latency, from the 202 to the
// postback's conversion.created arriving at each endpoint. Also: the ingest process's RSS under
// the highest sustained load (VmRSS from /proc).
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createFixture } from '@trackway/testing';
import request from 'supertest';
import { stackEnv } from '../test/support/processes';
import { startStack } from '../test/support/stack';
import { runHttpLoadInChild } from './http-load';
import { QUICK, ROOT, type Row, bytes, cleanupOnInterrupt, machineNote, ms, once, rate, report, row, runBench, size, sleep, summarize, withDeadline } from './lib';

const STEPS = QUICK ? [60, 250] : [100, 200, 300, 400, 500, 650, 800, 1000, 1300, 1600, 2000];
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
  const log = path.join(logDir, `${service}.log`);
  const out = fs.openSync(log, 'w');
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${service}/src/main.ts`], {
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

async function main() {
  const stack = await startStack();
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trackway-pipeline-'));
  const arrivals: Arrivals = { total: 0, created: new Map() };
  const receivers = [await receiver(arrivals), await receiver(arrivals)];
  const services: ChildProcess[] = [];
  const cleanup = once(async () => {
    for (const s of services) s.kill('SIGKILL');
    await Promise.all(receivers.map((r) => r.close()));
    await stack.close();
  });
  cleanupOnInterrupt(cleanup);
  const rows: Row[] = [];
  try {
    await withDeadline('pipeline bench', size(300_000, 45_000), async () => {
      console.log(machineNote());
      for (const r of receivers) await request(stack.api).post('/v1/webhook-endpoints').set(stack.auth).send({ url: r.url, event_types: ['*'] }).expect(201);
      const fx = await createFixture(stack.db.prisma);
      const env = stackEnv(stack, { DELIVERY_RETRY_SCHEDULE: '0,1s,5s,30s' });
      const ingest = spawnLogged('ingest', env, logDir);
      services.push(ingest.child);
      for (const name of ['attribution', 'delivery']) services.push(spawnLogged(name, env, logDir).child);
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
        const sampler = setInterval(() => (peak = Math.max(peak, rssOf(ingest.child.pid!))), 200);
        const sent = await runHttpLoadInChild({ port, warmup: [], paths: step.map((p) => p.path), concurrency: 256, perSecond });
        clearInterval(sampler);
        const accepted = sent.statuses['202'] ?? 0;
        await sleep(2_000);
        const arrived = arrivals.total - before;
        const share = arrived / (accepted * WEBHOOKS_PER_POSTBACK);
        const ok = accepted === step.length && share >= 0.995;
        console.log(
          `${rate(perSecond, 'postbacks/s offered').padStart(24)}: ${accepted}/${step.length} × 202 (p99 ${ms(sent.latency.p99)}), ` +
            `${(share * 100).toFixed(1)} % of their webhooks arrived 2 s after the last 202 → ${ok ? 'sustained' : 'backlog grows'}; ingest RSS ${bytes(peak)}`,
        );
        expected += accepted * WEBHOOKS_PER_POSTBACK;
        if (!ok) break;
        sustained = perSecond;
        rss = Math.max(rss, peak);
        await drain(expected, 30_000);
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
        row('pipeline', 'sustained postbacks/s, 2 endpoints, 1 process per service', { measured: rate(sustained, 'postbacks/s'), baseline: `steps ${STEPS.filter((s) => s <= sustained * 2).join(', ')}`, target: '≥ 250 postbacks/s', met: sustained >= 250, values: { measured: sustained } }),
        row('pipeline', `e2e 202 → webhook at ${half}/s (half)`, { measured: `p50 ${ms(latency.p50)}, p99 ${ms(latency.p99)}`, baseline: `${latency.count} webhooks`, target: 'p99 ≤ 250 ms', met: latency.count > 0 && latency.p99 <= 250, values: { p50: latency.p50, p99: latency.p99 } }),
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
