// Services as real child processes (tsx, as `pnpm start` runs them), for crash and shutdown tests.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { ServiceName } from '@trackway/config';
import { TEST_REDIS_URL } from '@trackway/testing';
import { SECRETS_KEY, STACK_SECRET, type Stack } from './stack';

const ROOT = path.resolve(__dirname, '../..');

export interface ServiceProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<number | string>;
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

export function spawnService(service: ServiceName, env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', `services/${service}/src/main.ts`], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code ?? -1)));
  return {
    child,
    output: () => output,
    exited,
    async waitForOutput(pattern, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (child.exitCode !== null) throw new Error(`${service} exited early:\n${output}`);
        if (Date.now() > deadline) throw new Error(`${service} never printed ${pattern}:\n${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Spawns a service and waits until it listens; `port` is the one it chose (its port variable set to 0). */
export async function startService(
  service: 'ingest' | 'api' | 'attribution' | 'delivery',
  env: Record<string, string>,
): Promise<ServiceProcess & { port: number }> {
  const p = spawnService(service, env);
  try {
    await p.waitForOutput(/listening|worker running/, 30_000);
  } catch (error) {
    p.child.kill('SIGKILL');
    throw error;
  }
  return { ...p, port: Number(/"(?:health_)?port":(\d+)/.exec(p.output())![1]) };
}

/** The environment that points a service process at a test stack's database and queues. */
export function stackEnv(stack: { db: Pick<Stack['db'], 'url'>; prefix: string }, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: stack.db.url,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: stack.prefix,
    CLICK_SECRET: STACK_SECRET,
    ADMIN_JWT_SECRET: STACK_SECRET,
    SECRETS_KEY: SECRETS_KEY.toString('base64'),
    INGEST_PORT: '0',
    API_PORT: '0',
    HEALTH_PORT: '0',
    WEBHOOK_ALLOW_HTTP: 'true',
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
    ...overrides,
  };
}
