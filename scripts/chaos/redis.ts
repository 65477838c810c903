// The chaos run's own redis-server: AOF on, in a temporary directory, on a spare port, so that
// shutting it down (SHUTDOWN, or kill -9) and starting it again on the same port and directory
// brings back every write it acknowledged. With appendfsync everysec (the default, and the
// production setting) Redis writes each command to the AOF (the page cache) before it answers,
// so a killed process loses nothing it answered; a machine crash could lose the last second.
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { sleep } from '../../bench/lib';

export interface OwnRedis {
  url: string;
  port: number;
  /** Starts redis-server (loading its AOF) and resolves once it answers PING. */
  start(): Promise<void>;
  /** SHUTDOWN (the AOF is flushed), resolved once the process has exited. */
  shutdown(): Promise<void>;
  /** kill -9, resolved once the process has exited. */
  kill(): Promise<void>;
  pid(): number | undefined;
}

/** A TCP port nothing listens on right now, on 127.0.0.1. */
export async function sparePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function createOwnRedis(dir: string): Promise<OwnRedis> {
  const port = await sparePort();
  const url = `redis://127.0.0.1:${port}`;
  let server: ChildProcess | undefined;
  let exited: Promise<unknown> = Promise.resolve();
  const connection = () => {
    const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 });
    redis.on('error', () => undefined);
    return redis;
  };

  const ready = async (deadlineMs: number) => {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const probe = connection();
      // PING answers LOADING while the AOF is read: only PONG means ready.
      const pong = await probe
        .connect()
        .then(() => probe.ping())
        .catch(() => null);
      probe.disconnect();
      if (pong === 'PONG') return;
      if (server?.exitCode !== null) throw new Error(`redis-server exited (code ${server?.exitCode}); see ${path.join(dir, 'redis.log')}`);
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} not ready within ${deadlineMs} ms`);
      await sleep(50);
    }
  };

  const stopped = async (stop: () => void) => {
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    stop();
    await exited;
  };

  return {
    url,
    port,
    async start() {
      server = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--dir', dir, '--save', '', '--logfile', path.join(dir, 'redis.log')],
        { stdio: 'ignore' },
      );
      const child = server;
      exited = new Promise((resolve) => child.once('exit', resolve));
      await ready(30_000);
    },
    async shutdown() {
      await stopped(() => {
        const admin = connection();
        // The connection closes as the server exits, so SHUTDOWN never answers.
        void admin
          .connect()
          .then(() => admin.call('SHUTDOWN'))
          .catch(() => undefined)
          .finally(() => admin.disconnect());
      });
    },
    async kill() {
      await stopped(() => server?.kill('SIGKILL'));
    },
    pid: () => (server && server.exitCode === null && server.signalCode === null ? server.pid : undefined),
  };
}
