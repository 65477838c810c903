#!/usr/bin/env node
// `pnpm start`: the whole system on one machine, each service its own process. Installs,
// generates, finds or starts PostgreSQL and Redis (scripts/stores.mjs: an embedded PostgreSQL and
// a redis-server under .trackway/ when nothing answers at the default URLs), creates and migrates
// the database, seeds a demo on an empty database, then runs ingest, api, attribution and
// delivery, prefixing their log lines.
//
// Stopping: Ctrl-C (SIGINT), a SIGTERM (pnpm passes it on: `timeout`, systemd, a container
// runtime), or pnpm going away stops every service gracefully (each drains on its own signal
// handler), then the embedded stores; the exit code is 0 when all of them stopped cleanly.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDependencies, ensureEnvFile, ensurePrismaClient } from './prepare.mjs';
import { prepareStores, printStartError, readDotEnv } from './stores.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (line) => console.log(`[start] ${line}`);

let stopping;
let preparingStores = false;
let finished = false;
let exitCode = 0;
const children = new Map();
let storesStop = async () => undefined;

/** Stops everything: the running processes first (they drain), then the embedded stores. */
function stop(signal, code = 0) {
  exitCode ||= code;
  if (stopping) return;
  stopping = signal;
  if (children.size > 0) say(`${signal}: stopping ${[...children.keys()].join(', ')}`);
  for (const child of children.values()) child.kill(signal);
  if (children.size === 0 && !preparingStores) finish();
}

async function finish() {
  if (finished) return;
  finished = true;
  await storesStop().catch((error) => {
    printStartError('[start] stopping the embedded stores failed:', error);
    exitCode ||= 1;
  });
  if (stopping) say(exitCode === 0 ? 'stopped' : `stopped (exit ${exitCode})`);
  process.exit(exitCode);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => stop(signal === 'SIGHUP' ? 'SIGTERM' : signal));
// pnpm passes SIGTERM on; should it be killed outright instead, stop rather than run on orphaned.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && stop('SIGTERM'), 1000).unref();

function run(name, file, env, { prefixLines }) {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    env,
    stdio: ['ignore', prefixLines ? 'pipe' : 'inherit', prefixLines ? 'pipe' : 'inherit'],
  });
  children.set(name, child);
  if (prefixLines) {
    const prefix = `[${name.padEnd(11)}] `;
    for (const stream of [child.stdout, child.stderr]) {
      let buffered = '';
      stream.on('data', (chunk) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop();
        for (const line of lines) process.stdout.write(`${prefix + line}\n`);
      });
    }
  }
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(name);
      resolve({ code, signal });
    });
  });
}

async function main() {
  let settings = process.env;
  try {
    ensureDependencies();
    ensureEnvFile();
    ensurePrismaClient();
    const dotEnv = readDotEnv(root);
    settings = { ...dotEnv, ...process.env };
    preparingStores = true;
    const stores = await prepareStores({ root, kind: 'start', env: process.env, dotEnv, say }).finally(() => (preparingStores = false));
    storesStop = stores.stop;
    const env = { ...process.env, ...stores.env };
    if (stopping) return finish();

    const setup = await run('setup', 'scripts/setup.ts', env, { prefixLines: false });
    if (stopping) return finish();
    if (setup.code !== 0) {
      exitCode = 1;
      return finish();
    }

    const services = [
      ['ingest', {}],
      ['api', {}],
      // Both workers read HEALTH_PORT: here each gets its own, from the environment or .env.
      ['attribution', { HEALTH_PORT: settings.ATTRIBUTION_HEALTH_PORT || '9464' }],
      ['delivery', { HEALTH_PORT: settings.DELIVERY_HEALTH_PORT || '9465' }],
    ];
    for (const [name, own] of services) {
      run(name, `services/${name}/src/main.ts`, { ...env, ...own }, { prefixLines: true }).then(({ code, signal }) => {
        if (!stopping) {
          say(`${name} exited (${signal ?? code}); stopping the others`);
          stop('SIGTERM', 1);
        } else if (code !== 0 && !(signal === 'SIGINT' || signal === 'SIGTERM')) {
          // Ended by the stop signal itself: a service that had not installed its handlers yet
          // (still starting) has nothing to drain. Any other end while stopping is a failure.
          say(`${name} exited (${signal ?? code}) while stopping`);
          exitCode = 1;
        }
        if (children.size === 0) finish();
      });
    }
  } catch (error) {
    if (error.interrupted) say(error.message);
    else printStartError('[start]', error, settings);
    exitCode = error.interrupted ? 0 : 1;
    await finish();
  }
}

main();
