#!/usr/bin/env node
// `pnpm test`: installs and generates when needed, finds or starts PostgreSQL and Redis
// (scripts/stores.mjs: TEST_DATABASE_URL and TEST_REDIS_URL when set, else the local defaults,
// else an embedded PostgreSQL and a redis-server under .trackway/), then runs the whole jest suite
// (each test file in its own Postgres schema and BullMQ prefix), and stops what it started.
// Extra arguments go to jest, e.g. `pnpm test services/ingest` or `pnpm test --json --outputFile=r.json`.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDependencies, ensurePrismaClient } from './prepare.mjs';
import { prepareStores, printStartError } from './stores.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let jest;
let interrupted;
// Ctrl-C reaches jest too (one process group); pnpm passes SIGTERM on to this process only. One
// that comes while the stores start is acted on once they are up, so that none is left running.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    interrupted = signal;
    jest?.kill(signal);
  });
}

let stores;
try {
  ensureDependencies();
  ensurePrismaClient();
  stores = await prepareStores({ root, kind: 'test', say: (line) => console.log(`[test] ${line}`) });
} catch (error) {
  printStartError('[test]', error);
  process.exit(1);
}
if (interrupted) {
  await stores.stop();
  process.exit(1);
}
jest = spawn(process.execPath, [path.join(root, 'node_modules', 'jest', 'bin', 'jest.js'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, ...stores.env },
});
jest.on('exit', async (code, signal) => {
  await stores.stop();
  process.exit(code ?? (signal ? 1 : 0));
});
