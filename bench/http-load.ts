// HTTP load generator for the benchmarks: GET requests over keep-alive connections with an
// undici Pool (about twice the requests per CPU second of node:http's client here, so the
// server, not the client, is what a run measures). It runs in a child process of its own
// (runHttpLoadInChild), so the client does not share an event loop with the server it measures.
// Closed loop: a fixed number of requests at a fixed concurrency. Open loop (`perSecond`):
// requests start on a fixed schedule whatever the answers, each timed and reported.
import { Pool } from 'undici';
import { type LatencySummary, forkTs, nextMessage, summarize } from './lib';

export interface LoadOptions {
  port: number;
  /** Request paths (with query); warm-up paths run first, over the same connections, unmeasured. */
  warmup: string[];
  paths: string[];
  concurrency: number;
  /** Open loop: start this many requests per second, on schedule. */
  perSecond?: number;
}

export interface LoadResult {
  requests: number;
  durationMs: number;
  rps: number;
  latency: LatencySummary;
  /** Responses per HTTP status (measured phase), and transport errors. */
  statuses: Record<string, number>;
  warmupStatuses: Record<string, number>;
  errors: number;
  /** CPU time of the load generator during the measured phase, as a share of one core. */
  clientCpu: number;
  /** Open loop only: per request, [epoch ms when its answer arrived, status]. */
  answers?: Array<[number, number]>;
}

export async function runHttpLoad(options: LoadOptions): Promise<LoadResult> {
  const pool = new Pool(`http://127.0.0.1:${options.port}`, { connections: options.concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
  const get = async (path: string) => {
    const { statusCode, body } = await pool.request({ path, method: 'GET' });
    await body.dump();
    return statusCode;
  };

  const closed = async (paths: string[], latencies: number[] | null) => {
    const statuses: Record<string, number> = {};
    let errors = 0;
    let next = 0;
    const lane = async () => {
      while (next < paths.length) {
        const i = next++;
        const started = performance.now();
        try {
          const status = await get(paths[i]);
          statuses[status] = (statuses[status] ?? 0) + 1;
        } catch {
          errors += 1;
        }
        if (latencies) latencies[i] = performance.now() - started;
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, lane));
    return { statuses, errors };
  };

  const open = async (paths: string[], perSecond: number, latencies: number[], answers: Array<[number, number]>) => {
    const statuses: Record<string, number> = {};
    let errors = 0;
    const started = performance.now();
    const running: Promise<void>[] = [];
    for (let i = 0; i < paths.length; i++) {
      const due = started + (i * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      running.push(
        get(paths[i]).then(
          (status) => {
            statuses[status] = (statuses[status] ?? 0) + 1;
            latencies[i] = performance.now() - due;
            answers[i] = [Date.now(), status];
          },
          () => {
            errors += 1;
            latencies[i] = performance.now() - due;
            answers[i] = [Date.now(), 0];
          },
        ),
      );
    }
    await Promise.all(running);
    return { statuses, errors };
  };

  const warm = await closed(options.warmup, null);
  const latencies = new Array<number>(options.paths.length);
  const answers: Array<[number, number]> = [];
  const startedAt = performance.now();
  const cpu = process.cpuUsage();
  const measured = options.perSecond ? await open(options.paths, options.perSecond, latencies, answers) : await closed(options.paths, latencies);
  const durationMs = performance.now() - startedAt;
  const used = process.cpuUsage(cpu);
  await pool.close();
  return {
    requests: options.paths.length,
    durationMs,
    rps: options.paths.length / (durationMs / 1000),
    latency: summarize(latencies),
    statuses: measured.statuses,
    warmupStatuses: warm.statuses,
    errors: measured.errors + warm.errors,
    clientCpu: (used.user + used.system) / 1000 / durationMs,
    ...(options.perSecond ? { answers } : {}),
  };
}

/** Runs the load in a separate process and returns its result, with this process's CPU share meanwhile. */
export async function runHttpLoadInChild(options: LoadOptions): Promise<LoadResult & { serverCpu: number }> {
  const child = forkTs('bench/http-load.ts', { BENCH_LOADGEN_CHILD: '1' });
  try {
    await nextMessage(child, 'ready');
    child.send({ type: 'run', options });
    const started = performance.now();
    const cpu = process.cpuUsage();
    const { result } = await nextMessage<{ result: LoadResult }>(child, 'result');
    const used = process.cpuUsage(cpu);
    return { ...result, serverCpu: (used.user + used.system) / 1000 / (performance.now() - started) };
  } finally {
    child.kill();
  }
}

if (process.env.BENCH_LOADGEN_CHILD === '1' && process.send) {
  process.on('message', (m: { type: string; options: LoadOptions }) => {
    if (m.type !== 'run') return;
    runHttpLoad(m.options).then(
      (result) => process.send!({ type: 'result', result }, () => process.exit(0)),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
  process.send({ type: 'ready' });
}
