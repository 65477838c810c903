#!/usr/bin/env node
// `pnpm start`: the whole system on one machine, each service its own process. Installs,
// generates, creates and migrates the database, seeds a demo on an empty database, then runs
// ingest, api, attribution and delivery, prefixing their log lines. Ctrl-C stops them all
// gracefully (each handles SIGINT/SIGTERM itself).
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDependencies, ensureEnvFile, ensurePrismaClient } from './prepare.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
ensureDependencies();
ensureEnvFile();
ensurePrismaClient();

const tsx = (file) => [process.execPath, ['--import', 'tsx', file]];
const setup = spawnSync(...tsx('scripts/setup.ts'), { cwd: root, stdio: 'inherit' });
if (setup.status !== 0) process.exit(setup.status ?? 1);

const SERVICES = [
  ['ingest', {}],
  ['api', {}],
  ['attribution', { HEALTH_PORT: process.env.ATTRIBUTION_HEALTH_PORT ?? '9464' }],
  ['delivery', { HEALTH_PORT: process.env.DELIVERY_HEALTH_PORT ?? '9465' }],
];
const children = new Map();
let stopping = false;

for (const [name, env] of SERVICES) {
  const child = spawn(...tsx(`services/${name}/src/main.ts`), { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping) {
      console.error(`${prefix}exited (${signal ?? code}); stopping the others`);
      stop('SIGTERM', code || 1);
    }
    if (children.size === 0) process.exit(process.exitCode ?? 0);
  });
  children.set(name, child);
}

function stop(signal, code = 0) {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  for (const child of children.values()) child.kill(signal);
}
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
