import type { Server } from 'node:http';
import type { Logger } from '@trackway/logger';

export interface ShutdownStep {
  name: string;
  run: () => Promise<unknown>;
}

/**
 * Runs steps in order on SIGTERM/SIGINT (mark unready → stop HTTP → close workers, finishing
 * active jobs → disconnect), with an unref'd force-exit timer as the deadline.
 */
export function installShutdown(opts: { logger: Logger; timeoutMs: number; steps: ShutdownStep[]; exit?: (code: number) => void }) {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let started: Promise<void> | undefined;
  const shutdown = (signal: string) => {
    if (started) return started;
    opts.logger.info({ signal, timeout_ms: opts.timeoutMs }, 'shutting down');
    const timer = setTimeout(() => {
      opts.logger.error({ timeout_ms: opts.timeoutMs }, 'shutdown deadline passed, exiting');
      exit(1);
    }, opts.timeoutMs);
    timer.unref();
    started = (async () => {
      let code = 0;
      for (const step of opts.steps) {
        try {
          await step.run();
          opts.logger.info({ step: step.name }, 'shutdown step done');
        } catch (error) {
          code = 1;
          opts.logger.error({ step: step.name, err: error }, 'shutdown step failed');
        }
      }
      clearTimeout(timer);
      opts.logger.info('shutdown complete');
      exit(code);
    })();
    return started;
  };
  // A signal can arrive twice (a terminal's Ctrl-C reaches the whole process group, and `pnpm
  // start` passes it on too): the later ones must not kill the process mid-drain, which the
  // default action of a signal without a listener would.
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  return shutdown;
}

/** Stops accepting connections, lets in-flight requests finish, closes idle keep-alives. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeIdleConnections();
  });
}
