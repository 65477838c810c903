// The whole system as a platform team runs it, for bench/pipeline.ts and bench/cost.ts: one
// process per service (ingest, attribution, delivery, from services/*/src/main.ts with their
// defaults and info-level logs to a file), local receivers subscribed to every event (each its
// own origin, answering 200 at once), postbacks over HTTP, and every process's CPU time read
// from the operating system (/proc/<pid>/stat).
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createFixture } from '@trackway/testing';
import { stackEnv } from '../test/support/processes';
import { type Stack, startStack } from '../test/support/stack';
import { ROOT, sleep } from './lib';

/** Each approved postback makes three events: conversion.created, conversion.approved, commission.created. */
export const EVENTS_PER_POSTBACK = 3;

export interface Arrivals {
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

export function spawnLogged(service: string, env: Record<string, string>, logDir: string): { child: ChildProcess; log: string } {
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

export async function waitForLog(log: string, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    const match = pattern.exec(text);
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`${path.basename(log)} never printed ${pattern}:\n${text.slice(-2000)}`);
    await sleep(100);
  }
}

export const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

const TICK_MS = 1000 / 100; // USER_HZ: /proc reports CPU time in clock ticks of 10 ms.
/** CPU time (ms) a process has used so far (user + system); 0 once it is gone. */
export const cpuOf = (pid: number) => {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
};

/**
 * CPU time (ms) of every live process on the host whose name starts with `name` (redis-server,
 * every postgres backend and helper: the machine's shared servers, so other work on them counts
 * too), plus what the ones that ended since had used when last read. Read often (bench/cost.ts:
 * every 200 ms), a process that exits keeps nearly all its share; one that lives between two
 * readings only is missed.
 */
export function serverCpu(name: string): () => number {
  const seen = new Map<number, number>();
  let gone = 0;
  return () => {
    const live = new Map<number, number>();
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (!fs.readFileSync(`/proc/${d}/comm`, 'utf8').startsWith(name)) continue;
      } catch {
        continue;
      }
      live.set(Number(d), cpuOf(Number(d)));
    }
    for (const [pid, used] of seen) if (!live.has(pid)) gone += used;
    seen.clear();
    for (const [pid, used] of live) seen.set(pid, used);
    let sum = gone;
    for (const used of live.values()) sum += used;
    return sum;
  };
}

export interface System {
  stack: Stack;
  port: number;
  logDir: string;
  arrivals: Arrivals;
  endpoints: number;
  /** The advertiser, offer and affiliate the postbacks are for. */
  fixture: Awaited<ReturnType<typeof createFixture>>;
  /** The service processes by name (ingest, attribution, delivery, delivery2, …). */
  pids: Record<string, number>;
  /** CPU ms used so far by each service, by redis-server and by all of PostgreSQL, and by this process (the receivers). */
  usage(): Record<string, number>;
  /** `n` fresh approved postbacks (paths for the load generator), each with its order id. */
  postbacks(n: number): Array<{ order: string; path: string }>;
  /** Waits until `expected` webhooks arrived in all; false if they did not within the time. */
  drain(expected: number, timeoutMs: number): Promise<boolean>;
  /**
   * ANALYZE of the schema: the statistics autovacuum keeps on a system that has run for more than
   * a minute. Without them, the plans the services' prepared statements settle on in their first
   * seconds believe every table empty, and scan whole tables for the rest of a short run.
   */
  analyze(): Promise<void>;
  close(): Promise<void>;
}

export interface SystemOptions {
  /** Receivers subscribed to every event, each on its own port (its own origin). */
  endpoints: number;
  /** Environment of the services beyond the stack's (e.g. PIPELINE_ENV's JSON). */
  env?: Record<string, string>;
  /** Delivery processes (PIPELINE_DELIVERY_PROCESSES). */
  deliveryProcesses?: number;
}

export async function startSystem(options: SystemOptions): Promise<System> {
  const stack = await startStack();
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trackway-system-'));
  const arrivals: Arrivals = { total: 0, created: new Map() };
  const receivers: Array<Awaited<ReturnType<typeof receiver>>> = [];
  const children: ChildProcess[] = [];
  const close = async () => {
    for (const c of children) c.kill(process.env.PIPELINE_SIGINT ? 'SIGINT' : 'SIGKILL');
    if (process.env.PIPELINE_SIGINT) await sleep(3000);
    await Promise.all(receivers.map((r) => r.close()));
    await stack.close();
  };
  try {
    for (let i = 0; i < options.endpoints; i++) receivers.push(await receiver(arrivals));
    for (const r of receivers) await stack.subscribe(r.url);
    const fx = await createFixture(stack.db.prisma);
    const env = stackEnv(stack, { DELIVERY_RETRY_SCHEDULE: '0,1s,5s,30s', ...options.env });
    const ingest = spawnLogged('ingest', env, logDir);
    children.push(ingest.child);
    const attribution = spawnLogged('attribution', env, logDir);
    children.push(attribution.child);
    const pids: Record<string, number> = { ingest: ingest.child.pid!, attribution: attribution.child.pid! };
    for (let i = 0; i < (options.deliveryProcesses ?? 1); i++) {
      const delivery = spawnLogged('delivery', env, i === 0 ? logDir : path.join(logDir, `d${i}`));
      children.push(delivery.child);
      pids[i === 0 ? 'delivery' : `delivery${i + 1}`] = delivery.child.pid!;
    }
    const port = Number((await waitForLog(ingest.log, /"port":(\d+).*ingest listening/))[1]);
    await waitForLog(attribution.log, /attribution worker running/);
    await waitForLog(path.join(logDir, 'delivery.log'), /delivery worker running/);
    const redis = serverCpu('redis-server');
    const postgres = serverCpu('postgres');
    let order = 0;
    return {
      stack,
      port,
      logDir,
      arrivals,
      endpoints: options.endpoints,
      fixture: fx,
      pids,
      usage: () => ({
        ...Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuOf(pid)])),
        redis: redis(),
        postgres: postgres(),
        receivers: cpuOf(process.pid),
      }),
      postbacks: (n) =>
        Array.from({ length: n }, () => {
          order += 1;
          const clickId = stack.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) });
          return { order: `pipe-${order}`, path: `/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=pipe-${order}&amount=20.00&currency=USD` };
        }),
      async drain(expected, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        while (arrivals.total < expected && Date.now() < deadline) await sleep(20);
        return arrivals.total >= expected;
      },
      analyze: async () => {
        const { rows } = await stack.db.pool.query<{ name: string }>(
          `SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = current_schema()`,
        );
        await stack.db.pool.query(`ANALYZE ${rows.map((r) => r.name).join(', ')}`);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
