// Shared helpers for the benchmark programs in bench/: percentiles, formatting, the summary
// rows bench/run.ts collects, a silenced logger, and forking a TypeScript file under tsx.
import { type ChildProcess, fork } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '@trackway/logger';

export const ROOT = path.resolve(__dirname, '..');

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function summarize(values: number[]): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  const list = Array.from(sorted);
  const sum = list.reduce((a, b) => a + b, 0);
  return {
    count: list.length,
    mean: list.length ? sum / list.length : Number.NaN,
    p50: percentile(list, 50),
    p95: percentile(list, 95),
    p99: percentile(list, 99),
    max: list.length ? list[list.length - 1] : Number.NaN,
  };
}

/** Milliseconds with a sensible number of decimals. */
export const ms = (v: number) => (Number.isNaN(v) ? 'n/a' : v < 10 ? `${v.toFixed(2)} ms` : v < 100 ? `${v.toFixed(1)} ms` : `${v.toFixed(0)} ms`);
export const rate = (v: number, unit: string) => `${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)} ${unit}`;
export const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
export const pct = (l: LatencySummary) => `p50 ${ms(l.p50)} / p95 ${ms(l.p95)} / p99 ${ms(l.p99)}`;

/** Cores and load average, printed with each bench: figures from a busy machine are not comparable. */
export function machineNote(): string {
  const [one, five] = os.loadavg();
  return `machine: ${os.cpus().length} cores, load average ${one.toFixed(2)} (1 min) ${five.toFixed(2)} (5 min), node ${process.version}`;
}

export const elapsedMs = (since: number) => performance.now() - since;

/** One line of the summary table bench/run.ts prints at the end. */
export interface SummaryRow {
  bench: string;
  metric: string;
  measured: string;
  baseline: string;
  ratio: string;
}

/**
 * Prints a bench's own summary; when the bench runs as a child of bench/run.ts, also hands
 * the rows to the parent over IPC.
 */
export function report(bench: string, rows: SummaryRow[]): void {
  console.log(`\n${bench} summary`);
  printTable(rows);
  if (process.send) process.send({ type: 'summary', bench, rows });
}

export function printTable(rows: SummaryRow[]): void {
  const header: SummaryRow = { bench: 'bench', metric: 'metric', measured: 'measured', baseline: 'baseline', ratio: 'ratio' };
  const cols = Object.keys(header) as (keyof SummaryRow)[];
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(...[header, ...rows].map((r) => r[c].length))])) as Record<keyof SummaryRow, number>;
  const line = (r: SummaryRow) => cols.map((c) => r[c].padEnd(width[c])).join(' | ');
  console.log(line(header));
  console.log(cols.map((c) => '-'.repeat(width[c])).join('-+-'));
  for (const r of rows) console.log(line(r));
}

/** The stack's services log nothing (as in tests): figures exclude log serialization. */
export const silentLogger = () => createLogger({ service: 'bench', level: 'silent' });

/** Forks a .ts file of this repository under tsx, with an IPC channel. */
export function forkTs(file: string, env: Record<string, string> = {}): ChildProcess {
  return fork(path.resolve(ROOT, file), [], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

/** Waits for the first IPC message of the given type from a child, failing if it exits first. */
export function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown) => {
      const msg = m as { type?: string };
      if (msg?.type === type) {
        cleanup();
        resolve(m as T);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (code ${code}) before sending ${type}`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** Wraps an async function so that it runs once; later calls get the first call's promise. */
export function once(fn: () => Promise<void>): () => Promise<void> {
  let started: Promise<void> | undefined;
  return () => (started ??= fn());
}

/**
 * Makes sure `cleanup` (drop the schema, delete the Redis prefix, close servers) still runs when
 * the bench is interrupted (Ctrl-C, SIGTERM from bench/run.ts) or its output pipe closes early
 * (`| head`): EPIPE on stdout is ignored instead of crashing the process before cleanup.
 */
export function cleanupOnInterrupt(cleanup: () => Promise<void>): void {
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  let running = false;
  const stop = (signal: NodeJS.Signals) => {
    if (running) return;
    running = true;
    console.error(`${signal}: cleaning up`);
    cleanup()
      .catch(() => undefined)
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Runs `fn` with a hard deadline so a stuck benchmark fails instead of hanging. */
export function withDeadline<T>(what: string, ms: number, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    fn().finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}

/** A small fixed-concurrency pool: runs `task(i)` for i in [0, n) with at most `concurrency` in flight. */
export async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
}
