#!/usr/bin/env node
// Makes a fresh clone runnable with no manual step: installs the locked dependencies when they
// are missing or stale, writes .env with generated dev secrets, and generates the Prisma client.
// Plain Node on purpose: it runs before any dependency is installed.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StartError, printStartError } from './stores.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');
const say = (line) => quiet || console.log(`[prepare] ${line}`);
const mtime = (file) => (existsSync(file) ? statSync(file).mtimeMs : 0);
const run = (cmd, argv, env = {}) =>
  execFileSync(cmd, argv, { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', env: { ...process.env, ...env } });

/**
 * Runs the pnpm that runs this script (npm_execpath), so that `npx pnpm@12 start` needs no pnpm
 * on PATH. A failure is a StartError in words: what was run, why it failed, what to do.
 */
function runPnpm(argv, env, what) {
  const own = process.env.npm_execpath;
  const pnpm = own && /pnpm/.test(path.basename(own)) ? own : 'pnpm';
  try {
    if (/\.[cm]?js$/.test(pnpm)) run(process.execPath, [pnpm, ...argv], env);
    else run(pnpm, argv, env);
  } catch (error) {
    if (error.signal === 'SIGINT' || error.signal === 'SIGTERM') {
      // Ctrl-C while pnpm ran: a stop, not a failure.
      throw Object.assign(new StartError(`stopped (${error.signal}) while pnpm was running to ${what}`), { interrupted: true });
    }
    const why = error.code === 'ENOENT' ? `${pnpm} is not installed (or not on PATH)` : `it exited with ${error.status ?? error.signal}`;
    throw new StartError(
      `pnpm: could not ${what} (\`pnpm ${argv.join(' ')}\`): ${why}. ` +
        (error.code === 'ENOENT'
          ? 'Install pnpm 12 (`npm install -g pnpm@12.4.2`) or run `npx pnpm@12.4.2 start`.'
          : 'Its own lines above say why; run it by hand to see them again.'),
      { cause: error },
    );
  }
}

export function ensureDependencies() {
  const marker = path.join(root, 'node_modules', '.modules.yaml');
  if (mtime(marker) >= mtime(path.join(root, 'pnpm-lock.yaml'))) return;
  say('installing dependencies (pnpm install --frozen-lockfile)');
  runPnpm(['install', '--frozen-lockfile'], {}, 'install the dependencies');
}

/** What an earlier `pnpm start` wrote into .env as the connection URLs, before empty meant "find or start one". */
const OLD_DEFAULT_URLS = /^(DATABASE_URL=postgresql:\/\/postgres@127\.0\.0\.1:5432\/trackway|REDIS_URL=redis:\/\/127\.0\.0\.1:6379)$/gm;
const GENERATED = '# Trackway environment. `pnpm start` copies this file to .env on first run';

export function ensureEnvFile() {
  const env = path.join(root, '.env');
  if (args.has('--no-env')) return;
  if (existsSync(env)) {
    // A .env that pnpm start wrote (its first line says so) holding the defaults it wrote then:
    // the user did not set them, so they are emptied, and the next start finds or starts the stores.
    const text = readFileSync(env, 'utf8');
    if (text.startsWith(GENERATED) && text.match(OLD_DEFAULT_URLS)) {
      writeFileSync(
        env,
        text.replace(OLD_DEFAULT_URLS, (line) => `${line.split('=')[0]}=`),
        { mode: 0o600 },
      );
      say('.env: emptied DATABASE_URL and REDIS_URL, the defaults an earlier pnpm start wrote there (empty: found or started)');
    }
    return;
  }
  const secrets = {
    ADMIN_JWT_SECRET: randomBytes(32).toString('base64url'),
    CLICK_SECRET: randomBytes(32).toString('base64url'),
    SECRETS_KEY: randomBytes(32).toString('base64'),
    METRICS_TOKEN: randomBytes(32).toString('base64url'),
  };
  const text = readFileSync(path.join(root, '.env.example'), 'utf8')
    .replace(/^(ADMIN_JWT_SECRET|CLICK_SECRET|SECRETS_KEY|METRICS_TOKEN)=$/gm, (_m, name) => `${name}=${secrets[name]}`)
    // Development only: let webhooks reach a receiver on this machine (see docs/webhooks.md).
    .replace(/^WEBHOOK_ALLOW_HTTP=false$/m, '# development only: plain http and loopback receivers (never in production)\nWEBHOOK_ALLOW_HTTP=true')
    .replace(/^WEBHOOK_ALLOWED_CIDRS=$/m, 'WEBHOOK_ALLOWED_CIDRS=127.0.0.0/8,::1/128');
  writeFileSync(env, text, { mode: 0o600 });
  say('wrote .env with generated development secrets');
}

export function ensurePrismaClient() {
  const schema = path.join(root, 'prisma', 'schema.prisma');
  const client = path.join(root, 'packages', 'db', 'src', 'generated', 'prisma', 'client.ts');
  if (mtime(client) >= mtime(schema)) return;
  say('generating the Prisma client');
  // `prisma generate` runs offline once PRISMA_SCHEMA_ENGINE_BINARY names any existing file:
  // generation never executes the schema engine.
  runPnpm(
    ['exec', 'prisma', 'generate'],
    { PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath, PRISMA_HIDE_UPDATE_MESSAGE: '1' },
    'generate the Prisma client',
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    ensureDependencies();
    if (!args.has('--generate-only')) ensureEnvFile();
    ensurePrismaClient();
  } catch (error) {
    printStartError('[prepare]', error);
    process.exit(1);
  }
}
