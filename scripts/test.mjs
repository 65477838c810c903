#!/usr/bin/env node
// `pnpm test`: installs and generates when needed, then runs the whole jest suite against the
// local Redis and PostgreSQL (each test file in its own Postgres schema and BullMQ prefix).
// Extra arguments go to jest, e.g. `pnpm test services/ingest` or `pnpm test --json --outputFile=r.json`.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDependencies, ensurePrismaClient } from './prepare.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
ensureDependencies();
ensurePrismaClient();
const jest = path.join(root, 'node_modules', 'jest', 'bin', 'jest.js');
const result = spawnSync(process.execPath, [jest, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
