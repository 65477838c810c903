// HTTP load generator for the benchmarks: a fixed number of GET requests at a fixed concurrency
// over keep-alive connections (node:http Agent, keepAlive, maxSockets = concurrency; undici is
// not installed at the root). It runs in a child process of its own (runHttpLoadInChild), so the
// client does not share an event loop with the server it measures.
import http from 'node:http';
import { type LatencySummary, forkTs, nextMessage, summarize } from './lib';

export interface LoadOptions {
  port: number;
  /** Request paths (with query); warm-up paths run first, over the same connections, unmeasured. */
  warmup: string[];
  paths: string[];
  concurrency: number;
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
  /** TCP connections opened over the whole run (warm-up included): shows keep-alive worked. */
  connections: number;
  /** CPU time of the load generator during the measured phase, as a share of one core. */
  clientCpu: number;
}

export async function runHttpLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  let connections = 0;
  const get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: options.port, path, method: 'GET', agent }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      });
      req.once('socket', (socket) => {
        if (!(socket as { __counted?: boolean }).__counted) {
          (socket as { __counted?: boolean }).__counted = true;
          connections += 1;
        }
      });
      req.once('error', reject);
      req.end();
    });

  const phase = async (paths: string[], latencies: number[] | null) => {
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
    const started = performance.now();
    const cpu = process.cpuUsage();
    await Promise.all(Array.from({ length: options.concurrency }, lane));
    const durationMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    return { statuses, errors, durationMs, cpu: (used.user + used.system) / 1000 / durationMs };
  };

  const warm = await phase(options.warmup, null);
  const latencies = new Array<number>(options.paths.length);
  const measured = await phase(options.paths, latencies);
  agent.destroy();
  return {
    requests: options.paths.length,
    durationMs: measured.durationMs,
    rps: options.paths.length / (measured.durationMs / 1000),
    latency: summarize(latencies),
    statuses: measured.statuses,
    warmupStatuses: warm.statuses,
    errors: measured.errors + warm.errors,
    connections,
    clientCpu: measured.cpu,
  };
}

/** Runs the load in a separate process and returns its result. */
export async function runHttpLoadInChild(options: LoadOptions): Promise<LoadResult & { serverCpu: number }> {
  const child = forkTs('bench/http-load.ts', { BENCH_LOADGEN_CHILD: '1' });
  try {
    await nextMessage(child, 'ready');
    child.send({ type: 'run', options });
    // This process's CPU over the whole exchange (warm-up included): the server's side.
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
