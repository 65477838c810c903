// A redis-server of a test's own on a spare port, for outages: the shared Redis on 6379 is never
// stopped. Nothing persists (no RDB, no AOF); the test kills it at the end.
import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';

/** A port nothing listens on right now (the OS picked it). */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.once('error', reject);
  });

export interface OwnRedis {
  url: string;
  port: number;
  start(): void;
  /** Kills it (SIGKILL) and waits for the exit; does nothing when it is not running. */
  stop(): Promise<void>;
}

export function ownRedis(port: number): OwnRedis {
  let server: ChildProcess | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start() {
      server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
        stdio: 'ignore',
      });
    },
    async stop() {
      const running = server;
      server = undefined;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGKILL');
      await exited;
    },
  };
}
