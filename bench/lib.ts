// Shared helpers for the benchmark programs in bench/: percentiles, formatting, the rows of the
// summary table bench/run.ts prints (and writes to bench/results/latest.json), quick mode,
// forking a TypeScript file under tsx.
import { type ChildProcess, fork } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '@trackway/logger';

export const ROOT = path.resolve(__dirname, '..');

/** `pnpm bench --quick`: the same table from smaller counts (CI's smoke test, ≤ 60 s). */
export const QUICK = process.env.BENCH_QUICK === '1';
export const size = (full: number, quick: number) => Number(QUICK ? quick : full);

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function summarize(values: number[]): LatencySummary {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1] : Number.NaN,
  };
}

/** Milliseconds with a sensible number of decimals. */
export const ms = (v: number) => (Number.isNaN(v) ? 'n/a' : v < 10 ? `${v.toFixed(2)} ms` : v < 100 ? `${v.toFixed(1)} ms` : `${v.toFixed(0)} ms`);
export const rate = (v: number, unit: string) => `${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)} ${unit}`;
export const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
export const pct = (l: LatencySummary) => `p50 ${ms(l.p50)} / p95 ${ms(l.p95)} / p99 ${ms(l.p99)}`;
export const bytes = (v: number) =>
  v >= 1024 * 1024 ? `${(v / 1024 / 1024).toFixed(1)} MiB` : v >= 1024 ? `${(v / 1024).toFixed(2)} KiB` : `${Math.round(v)} B`;

/** Cores and load average, printed with each bench: figures from a busy machine are not comparable. */
export function machineNote(): string {
  const [one, five] = os.loadavg();
  return `machine: ${os.cpus().length} cores, load average ${one.toFixed(2)} (1 min) ${five.toFixed(2)} (5 min), node ${process.version}${QUICK ? ', QUICK (small counts)' : ''}`;
}

/**
 * One line of the summary table: a figure beside the baseline measured in the same run, and
 * the target for it. `met` is null where there is no target.
 */
export interface Row {
  tier: string;
  metric: string;
  measured: string;
  baseline: string;
  ratio: string;
  target: string;
  met: boolean | null;
  /** The numbers behind the text, for bench/results/latest.json. */
  values: Record<string, number>;
}

export function row(tier: string, metric: string, fields: Partial<Omit<Row, 'tier' | 'metric'>>): Row {
  return { tier, metric, measured: '-', baseline: '-', ratio: '-', target: '-', met: null, values: {}, ...fields };
}

/**
 * Prints a bench's own summary; when the bench runs as a child of bench/run.ts, also hands
 * the rows to the parent over IPC.
 */
export function report(tier: string, rows: Row[]): void {
  console.log(`\n${tier} summary`);
  printTable(rows);
  if (process.send) process.send({ type: 'summary', tier, rows });
}

export function printTable(rows: Row[]): void {
  const cols = ['tier', 'metric', 'measured', 'baseline', 'ratio', 'target', 'met'] as const;
  const text = (r: Row, c: (typeof cols)[number]) => (c === 'met' ? (r.met === null ? '' : r.met ? 'yes' : 'NO') : r[c]);
  const header = Object.fromEntries(cols.map((c) => [c, c])) as Record<(typeof cols)[number], string>;
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(c.length, ...rows.map((r) => text(r, c).length))])) as Record<(typeof cols)[number], number>;
  console.log(cols.map((c) => header[c].padEnd(width[c])).join(' | '));
  console.log(cols.map((c) => '-'.repeat(width[c])).join('-+-'));
  for (const r of rows) console.log(cols.map((c) => text(r, c).padEnd(width[c])).join(' | '));
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
 * Makes sure `cleanup` (drop the schema, delete the Redis prefix, close servers, stop child
 * processes) still runs when the bench is interrupted (Ctrl-C, SIGTERM from bench/run.ts) or
 * its output pipe closes early (`| head`): EPIPE on stdout is ignored.
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

export const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

/** Runs a main function as a bench program: exit code 1 on an error (a figure that could not be measured). */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}

/**
 * Runs `run` with something on and off, in pairs ordered on, off, off, on, …: a drift of the
 * shared machine over the runs (autovacuum, checkpoints, growing tables) falls on both sides alike.
 */
export async function alternating<T>(pairs: number, run: (on: boolean, pair: number) => Promise<T>): Promise<{ with: T[]; without: T[] }> {
  const runs = { with: [] as T[], without: [] as T[] };
  for (let pair = 1; pair <= pairs; pair++)
    for (const on of pair % 2 === 1 ? [true, false] : [false, true]) runs[on ? 'with' : 'without'].push(await run(on, pair));
  return runs;
}
