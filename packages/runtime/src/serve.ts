import type { AddressInfo } from 'node:net';
import type { Worker } from 'bullmq';
import type { RequestListener } from 'node:http';
import type { CommonConfig, Config } from '@trackway/config';
import type { ServiceContext } from './context';
import { createOpsApp, listen } from './health';
import { httpLimits } from './http-limits';
import { closeServer, installShutdown } from './shutdown';

/** The queues a worker process consumes (ATTRIBUTION_QUEUES, DELIVERY_QUEUES), checked. */
export function queueList<Q extends string>(value: string, allowed: readonly Q[], variable: string): Q[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !(allowed as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`${variable}: unknown queue(s) ${unknown.join(', ')}; choose from ${allowed.join(', ')}`);
  return names as Q[];
}

/** A port that cannot be had, in words: which variable names it (`variable`, as the user sets it) and what to do. */
async function listenOn<T>(variable: string, port: number, listening: () => Promise<T>): Promise<T> {
  try {
    return await listening();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      throw new Error(`port ${port} (${variable}) is in use by another program: stop it, or set that variable to a free port`, { cause: error });
    if (code === 'EACCES') throw new Error(`port ${port} (${variable}) needs privileges this process lacks: set that variable above 1023`, { cause: error });
    throw error;
  }
}

/**
 * An HTTP service's life: listen once Redis is up, or as soon as it failed to answer (the hot
 * paths then answer 503 and readiness tells why; nothing waits for Redis to come),
 * then on SIGTERM/SIGINT mark unready → wait SHUTDOWN_DRAIN_MS (load balancers see the 503) →
 * stop accepting and finish in-flight requests → close queues → disconnect.
 */
export async function serveHttp(
  ctx: ServiceContext<CommonConfig & Pick<Config, 'SHUTDOWN_DRAIN_MS'>>,
  opts: { name: string; app: RequestListener; port: number; close: () => Promise<unknown> },
) {
  await ctx.producerReady;
  const server = await listenOn(`${opts.name.toUpperCase()}_PORT`, opts.port, () => listen(opts.app, opts.port, httpLimits(ctx.config)));
  ctx.logger.info({ port: (server.address() as AddressInfo).port }, `${opts.name} listening`);
  installShutdown({
    logger: ctx.logger,
    timeoutMs: ctx.config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'mark unready', run: async () => void (ctx.health.accepting = false) },
      { name: 'drain', run: () => new Promise((resolve) => setTimeout(resolve, ctx.config.SHUTDOWN_DRAIN_MS)) },
      { name: 'close http', run: () => closeServer(server) },
      { name: 'close queues', run: opts.close },
      { name: 'disconnect', run: ctx.disconnect },
    ],
  });
}

/**
 * A worker process's life: health and metrics on HEALTH_PORT at once (ready only while every
 * worker runs and Redis answers), then on SIGTERM/SIGINT mark unready → stop taking jobs and
 * finish the active ones (BullMQ close) → close queues → close the health server → disconnect.
 */
export async function serveWorkers(
  ctx: ServiceContext<CommonConfig & Pick<Config, 'HEALTH_PORT'>>,
  opts: { name: string; workers: Worker[]; queues: string[]; close: () => Promise<unknown> },
) {
  ctx.health.checks.workers = async () => {
    const stopped = opts.workers.filter((w) => !w.isRunning()).map((w) => w.name);
    if (stopped.length > 0) throw new Error(`not running: ${stopped.join(', ')}`);
  };
  // `pnpm start` sets each worker's HEALTH_PORT from ATTRIBUTION_HEALTH_PORT / DELIVERY_HEALTH_PORT.
  const variable = `HEALTH_PORT, or ${opts.name.toUpperCase()}_HEALTH_PORT under pnpm start`;
  const server = await listenOn(variable, ctx.config.HEALTH_PORT, () =>
    listen(createOpsApp(ctx.health, ctx.metrics, ctx.logger), ctx.config.HEALTH_PORT, httpLimits(ctx.config)),
  );
  ctx.logger.info({ queues: opts.queues, health_port: (server.address() as AddressInfo).port }, `${opts.name} worker running`);
  installShutdown({
    logger: ctx.logger,
    timeoutMs: ctx.config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'mark unready', run: async () => void (ctx.health.accepting = false) },
      // While Redis cannot be reached no job can be finished, and BullMQ's graceful close would
      // wait for it: the workers stop at once, and their active jobs run again (stalled) later.
      { name: 'close workers', run: () => Promise.all(opts.workers.map((w) => w.close(ctx.producer.status !== 'ready'))) },
      { name: 'close queues', run: opts.close },
      { name: 'close health server', run: () => closeServer(server) },
      { name: 'disconnect', run: ctx.disconnect },
    ],
  });
}

/**
 * Runs a service's main; a start-up failure (a bad variable, a port in use) exits 1 with one
 * message naming the service, and its stack trace only with LOG_LEVEL=debug (or trace).
 */
export function runMain(service: string, main: () => Promise<void>): void {
  main().catch((error) => {
    const debug = ['debug', 'trace'].includes(process.env.LOG_LEVEL ?? '');
    const detail = error instanceof Error ? ((debug ? error.stack : undefined) ?? error.message) : String(error);
    console.error(`${service} could not start: ${detail}`);
    process.exit(1);
  });
}
