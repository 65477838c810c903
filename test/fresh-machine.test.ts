// The README's Quickstart on a fresh machine: a fresh copy of this checkout (what `git clone`
// gives: tracked and new files, nothing ignored — no node_modules, .env, .trackway or generated
// client), its dependencies installed from pnpm's store (the registry cannot be reached from the
// namespace), then `pnpm start` inside a network namespace of its own (`unshare -n`, loopback up),
// where nothing listens on PostgreSQL's and Redis's default ports: the machine's own servers
// listen there, and must never be stopped. It runs the README's "Try it" lines, stops with
// SIGTERM, starts again on the kept data and stops with Ctrl-C (SIGINT to the process group);
// `pnpm test packages/db` runs the migrations and the schema-drift test on the embedded
// PostgreSQL 18 (the suite's own run covers the machine's PostgreSQL 15). Needs root (CI is root).
// The launcher's failure messages are checked here too, as a user sees them.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
} from 'node:fs';
import path from 'node:path';
import { TEST_DATABASE_URL, TEST_REDIS_URL, freePort } from '@trackway/testing';

const ROOT = path.resolve(__dirname, '..');
const asRoot = process.getuid?.() === 0;
const describeAsRoot = asRoot ? describe : describe.skip;
if (!asRoot) console.warn('fresh-machine: the namespace tests need root (unshare -n); they run in CI');

/** What a new user's shell has: no DATABASE_URL, REDIS_URL, NODE_ENV or TEST_* variables. */
const userEnv = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8', ...extra });

let dir: string;
let namespace: ChildProcess | undefined;

class Run {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly child: ChildProcess) {
    for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', (error) => {
        this.output += `${error}`;
        resolve({ code: null, signal: null });
      });
    });
  }
  async waitFor(patterns: RegExp[], ms: number): Promise<void> {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(200)) {
      if (patterns.every((pattern) => pattern.test(this.output))) return;
      if (this.child.exitCode !== null || this.child.signalCode !== null) break;
    }
    throw new Error(`waited for ${patterns.join(', ')}; the output was:\n${this.output}`);
  }
}

const NSENTER = asRoot ? execFileSync('sh', ['-c', 'command -v nsenter'], { encoding: 'utf8' }).trim() : 'nsenter';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A command in the fresh copy; in the namespace unless `outside`. Its own process group, as a terminal's foreground job. */
function launch(argv: string[], opts: { env?: Record<string, string>; outside?: boolean } = {}): Run {
  // nsenter by its full path: the command's own PATH may be a narrow one.
  const [command, ...args] = opts.outside ? argv : [NSENTER, '-t', String(namespace!.pid), '-n', '--', ...argv];
  return new Run(spawn(command, args, { cwd: dir, env: opts.env ?? userEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] }));
}

async function run(argv: string[], opts: { env?: Record<string, string>; outside?: boolean } = {}) {
  const child = launch(argv, opts);
  const exit = await child.exited;
  return { ...exit, output: child.output };
}

const SERVICES_UP = [/ingest listening/, /api listening/, /attribution worker running/, /delivery worker running/];

/** Processes still running from the copy: a service, the launcher, the embedded PostgreSQL (its data folder) or Redis. */
function leftovers(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      if (Number(pid) === namespace?.pid) continue;
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      if (cwd === dir || cwd.startsWith(`${dir}/`)) found.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim());
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The lines `pnpm start` prints under "Try it", and the README's, with the postback key masked. */
const tryItLines = (text: string) => {
  const after = text.slice(text.indexOf('Try it (paste into a shell):'));
  return after
    .split('\n')
    .slice(1)
    .filter((line, i, lines) => line.startsWith('  ') && lines.slice(0, i).every((l) => l.startsWith('  ')))
    .map((line) => line.trim());
};
const masked = (lines: string[]) => lines.map((line) => line.replace(/pk_[A-Za-z0-9_-]+/, 'pk_…'));

beforeAll(() => {
  dir = mkdtempSync('/tmp/trackway-fresh-');
  // Run as root, the embedded PostgreSQL runs as `postgres`, which must reach its data folder.
  chmodSync(dir, 0o755);
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter(Boolean);
  for (const file of files) {
    if (!existsSync(path.join(ROOT, file))) continue;
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    copyFileSync(path.join(ROOT, file), path.join(dir, file));
  }
  execFileSync('pnpm', ['install', '--frozen-lockfile', '--offline'], { cwd: dir, env: userEnv(), stdio: 'ignore' });
}, 120_000);

afterAll(async () => {
  for (const line of leftovers()) console.error(`fresh-machine: still running, killed: ${line}`);
  execFileSync('sh', ['-c', `for p in /proc/[0-9]*; do case "$(readlink $p/cwd)" in ${dir}|${dir}/*) kill -9 \${p#/proc/} ;; esac; done; true`]);
  namespace?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describeAsRoot('a fresh clone, with nothing at the default DATABASE_URL and REDIS_URL', () => {
  let tryIt: string[];

  beforeAll(async () => {
    namespace = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && echo up && exec sleep 3600'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => namespace!.stdout!.once('data', resolve));
  });

  it('pnpm start runs an embedded PostgreSQL and Redis, the README\'s "Try it" lines work, and a SIGTERM stops everything (exit 0)', async () => {
    const start = launch(['pnpm', 'start']);
    await start.waitFor([...SERVICES_UP, /Try it/], 150_000);
    expect(start.output).toMatch(
      /\[start\] Redis: nothing answers at redis:\/\/127\.0\.0\.1:6379, the default REDIS_URL; starting \S*redis-server at 127\.0\.0\.1:26379/,
    );
    expect(start.output).toContain(
      '[start] PostgreSQL: nothing answers at postgresql://postgres@127.0.0.1:5432/trackway, the default DATABASE_URL; starting the embedded PostgreSQL 18 at 127.0.0.1:25432 (data in .trackway/postgres)',
    );
    expect(start.output).toMatch(/\[start\] PostgreSQL: DATABASE_URL=postgresql:\/\/postgres:\S+@127\.0\.0\.1:25432\/trackway/);
    // .env, as written, leaves the default URLs unset: the next start looks for them again.
    expect(readFileSync(path.join(dir, '.env'), 'utf8')).toMatch(/^DATABASE_URL=$/m);

    tryIt = tryItLines(start.output);
    const readme = readFileSync(path.join(dir, 'README.md'), 'utf8');
    expect(tryIt).toHaveLength(3);
    expect(masked(tryIt)).toEqual(tryItLines(readme));

    const posted = await run(['bash', '-c', tryIt.slice(0, 2).join('\n')]);
    expect(posted.output).toContain('"status":"queued"');
    let listed = '';
    for (const end = Date.now() + 30_000; Date.now() < end && !listed.includes('"order_id":"ORDER-1001"'); await sleep(500)) {
      listed = (await run(['bash', '-c', tryIt[2]])).output;
    }
    expect(listed).toContain('"order_id":"ORDER-1001"');

    process.kill(start.child.pid!, 'SIGTERM');
    expect(await start.exited).toEqual({ code: 0, signal: null });
    expect(start.output).toContain('[start] stopped');
    expect(start.output).not.toContain('ELIFECYCLE');
    expect(leftovers()).toEqual([]);
  }, 240_000);

  it('a second pnpm start reuses the embedded data, and Ctrl-C stops it (exit 0, no ELIFECYCLE)', async () => {
    const again = launch(['pnpm', 'start']);
    await again.waitFor(SERVICES_UP, 120_000);
    expect(again.output).toContain('[setup] database is up to date');
    expect(again.output).not.toContain('Seeded a demo');
    expect((await run(['bash', '-c', tryIt[2]])).output).toContain('"order_id":"ORDER-1001"');

    // A terminal's Ctrl-C: SIGINT to the whole foreground process group.
    process.kill(-again.child.pid!, 'SIGINT');
    expect(await again.exited).toEqual({ code: 0, signal: null });
    expect(again.output).toContain('[start] stopped');
    expect(again.output).not.toContain('ELIFECYCLE');
    expect(leftovers()).toEqual([]);
  }, 180_000);

  it('pnpm test runs on the embedded PostgreSQL 18: the migrations and the schema-drift test', async () => {
    const tested = await run(['pnpm', 'test', 'packages/db']);
    expect(tested.output).toContain(
      '[test] PostgreSQL: nothing answers at postgresql://postgres@127.0.0.1:5432/trackway_test, the default TEST_DATABASE_URL; starting the embedded PostgreSQL 18',
    );
    expect(tested.output).toMatch(/Tests:\s+\d+ passed, \d+ total/);
    expect(tested).toMatchObject({ code: 0 });
    expect(leftovers()).toEqual([]);
  }, 180_000);

  it('with no redis-server installed, pnpm start stops with one paragraph saying what to install', async () => {
    // A PATH with what pnpm start needs, and no redis-server.
    const bin = path.join(dir, '.bin-without-redis');
    mkdirSync(bin, { recursive: true });
    const which = (name: string) => execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    for (const name of ['node', 'pnpm', 'sh']) if (!existsSync(path.join(bin, name))) symlinkSync(which(name), path.join(bin, name));
    const failed = await run(['pnpm', 'start'], { env: userEnv({ PATH: bin }) });
    expect(failed.code).toBe(1);
    expect(failed.output).toContain(
      '[start] Redis: nothing answers at redis://127.0.0.1:6379, the default REDIS_URL, and no redis-server is installed to start one (no npm package ships a Redis server).',
    );
    expect(failed.output).toContain('`sudo apt-get install redis-server`');
    expect(failed.output).not.toMatch(/^\s+at /m);
    expect(leftovers()).toEqual([]);
  }, 60_000);
});

describe('pnpm start, when a store it was told to use does not answer', () => {
  let closed: number;
  beforeAll(async () => {
    closed = await freePort();
  });

  it('names the variable, the address and what to do, in one line and without a stack trace', async () => {
    const failed = await run(['pnpm', 'start'], {
      outside: true,
      env: userEnv({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${closed}/trackway`, REDIS_URL: TEST_REDIS_URL }),
    });
    expect(failed.code).toBe(1);
    const lines = failed.output.split('\n').filter((line) => line.startsWith('[start]'));
    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(`^\\[start\\] PostgreSQL: nothing answers at 127\\.0\\.0\\.1:${closed}, the address in DATABASE_URL \\(set in the environment`),
      ),
    ]);
    expect(failed.output).not.toMatch(/^\s+at /m);
  }, 60_000);

  it('shows the stack trace with LOG_LEVEL=debug', async () => {
    const failed = await run(['pnpm', 'start'], {
      outside: true,
      env: userEnv({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${closed}/trackway`, REDIS_URL: TEST_REDIS_URL, LOG_LEVEL: 'debug' }),
    });
    expect(failed.code).toBe(1);
    expect(failed.output).toMatch(/StartError: PostgreSQL: nothing answers[^\n]*\n\s+at /);
  }, 60_000);

  it('says in words when the database cannot be created or migrated there', async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.username = 'no_such_role';
    url.pathname = '/trackway';
    const failed = await run(['pnpm', 'start'], { outside: true, env: userEnv({ DATABASE_URL: url.toString(), REDIS_URL: TEST_REDIS_URL }) });
    expect(failed.code).toBe(1);
    // Refused as the server's authentication says: an unknown role (trust) or its password (scram).
    const shownUrl = url.toString().replace(/:[^:@/]*@/, ':…@');
    expect(failed.output).toContain(`[setup] PostgreSQL: could not create, migrate or seed the database at ${shownUrl} (DATABASE_URL): `);
    expect(failed.output).toMatch(
      /\(DATABASE_URL\): (role "no_such_role" does not exist|password authentication failed for user "no_such_role")\. Check that DATABASE_URL names a server, user and password that can create that database, then run pnpm start again\./,
    );
    expect(failed.output).not.toMatch(/^\s+at /m);
  }, 60_000);
  it('without pnpm to install the dependencies with, says so in words', async () => {
    // Dependencies out of date (the lock file newer than the install), and no pnpm on PATH.
    const lock = path.join(dir, 'pnpm-lock.yaml');
    const { atime, mtime } = statSync(lock);
    const bin = path.join(dir, '.bin-node-only');
    mkdirSync(bin, { recursive: true });
    if (!existsSync(path.join(bin, 'node'))) symlinkSync(process.execPath, path.join(bin, 'node'));
    utimesSync(lock, new Date(), new Date(Date.now() + 60_000));
    try {
      const failed = await run(['node', 'scripts/start.mjs'], { outside: true, env: userEnv({ PATH: bin }) });
      expect(failed.code).toBe(1);
      expect(failed.output).toContain(
        '[start] pnpm: could not install the dependencies (`pnpm install --frozen-lockfile`): pnpm is not installed (or not on PATH). Install pnpm 12 (`npm install -g pnpm@12.4.2`) or run `npx pnpm@12.4.2 start`.',
      );
      expect(failed.output).not.toMatch(/^\s+at /m);
    } finally {
      utimesSync(lock, atime, mtime);
    }
  }, 60_000);
});
