// What `pnpm start` does before the services run: write .env with development secrets, create
// and migrate the database, seed a demo on an empty one and print what a new user needs.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { loadConfig } from '@trackway/config';
import { createPrisma, migrateDatabase } from '@trackway/db';
import { hashPostbackKey } from '@trackway/domain';
import { TEST_DATABASE_URL, randomSuffix } from '@trackway/testing';
import pg from 'pg';
import { seedIfEmpty } from '../scripts/seed';

const ROOT = path.resolve(__dirname, '..');

/** A checkout whose dependencies and Prisma client are up to date: only .env is missing. */
function upToDateCheckout(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prepare-'));
  for (const file of ['scripts/prepare.mjs', 'scripts/stores.mjs', '.env.example', 'pnpm-lock.yaml', 'prisma/schema.prisma']) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    copyFileSync(path.join(ROOT, file), path.join(dir, file));
  }
  const later = new Date(Date.now() + 60_000);
  for (const file of ['node_modules/.modules.yaml', 'packages/db/src/generated/prisma/client.ts']) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), '');
    utimesSync(path.join(dir, file), later, later);
  }
  return dir;
}

it('writes .env from .env.example with generated secrets the services accept, once', () => {
  const dir = upToDateCheckout();
  try {
    execFileSync(process.execPath, [path.join(dir, 'scripts/prepare.mjs'), '--quiet'], { cwd: dir });
    const text = readFileSync(path.join(dir, '.env'), 'utf8');
    const env = parseEnv(text);
    const config = loadConfig({ env: { ...env, NODE_ENV: 'production' }, require: ['ADMIN_JWT_SECRET', 'CLICK_SECRET', 'SECRETS_KEY'] });
    expect(config.ADMIN_JWT_SECRET.length).toBeGreaterThanOrEqual(32);
    expect(config.CLICK_SECRET).not.toBe(config.ADMIN_JWT_SECRET);
    // …and a metrics token, so /metrics on ingest and api is served (to its holder) from the start.
    expect(config.METRICS_TOKEN).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(config.METRICS_TOKEN).not.toBe(config.ADMIN_JWT_SECRET);
    expect(config).toMatchObject({ WEBHOOK_ALLOW_HTTP: true, WEBHOOK_ALLOWED_CIDRS: ['127.0.0.0/8', '::1/128'] });
    // A second run keeps the secrets the running services share.
    execFileSync(process.execPath, [path.join(dir, 'scripts/prepare.mjs'), '--quiet'], { cwd: dir });
    expect(readFileSync(path.join(dir, '.env'), 'utf8')).toBe(text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("empties the default URLs an earlier pnpm start wrote into .env, and never a user's own .env", () => {
  const dir = upToDateCheckout();
  try {
    const old = readFileSync(path.join(ROOT, '.env.example'), 'utf8')
      .replace(/^DATABASE_URL=$/m, 'DATABASE_URL=postgresql://postgres@127.0.0.1:5432/trackway')
      .replace(/^REDIS_URL=$/m, 'REDIS_URL=redis://127.0.0.1:6379');
    writeFileSync(path.join(dir, '.env'), old);
    const printed = execFileSync(process.execPath, [path.join(dir, 'scripts/prepare.mjs')], { cwd: dir, encoding: 'utf8' });
    const env = parseEnv(readFileSync(path.join(dir, '.env'), 'utf8'));
    expect([env.DATABASE_URL, env.REDIS_URL]).toEqual(['', '']);
    expect(printed).toContain('[prepare] .env: emptied DATABASE_URL and REDIS_URL');
    // A .env the user wrote (not starting with the generated header): their URLs stay.
    const own = 'DATABASE_URL=postgresql://postgres@127.0.0.1:5432/trackway\nREDIS_URL=redis://127.0.0.1:6379\n';
    writeFileSync(path.join(dir, '.env'), own);
    execFileSync(process.execPath, [path.join(dir, 'scripts/prepare.mjs')], { cwd: dir });
    expect(readFileSync(path.join(dir, '.env'), 'utf8')).toBe(own);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('creates and migrates a missing database, then seeds a demo once and prints ids, key and URLs', async () => {
  const name = `trackway_start_${randomSuffix()}`;
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  const lines: string[] = [];
  try {
    const first = await migrateDatabase(url.toString(), (line) => lines.push(line));
    expect(lines[0]).toBe(`created database ${name}`);
    expect(first.applied.length).toBeGreaterThan(0);
    expect((await migrateDatabase(url.toString(), () => undefined)).applied).toEqual([]);

    const prisma = createPrisma(url.toString());
    try {
      const printed = await seedIfEmpty(prisma, 'http://127.0.0.1:3000', 'http://127.0.0.1:3001');
      const [advertiser, affiliate, offer] = [
        await prisma.advertiser.findFirstOrThrow(),
        await prisma.affiliate.findFirstOrThrow(),
        await prisma.offer.findFirstOrThrow(),
      ];
      expect(printed).toContain(`advertiser_id  ${advertiser.id}`);
      expect(printed).toContain(`Click URL:     http://127.0.0.1:3000/click?offer_id=${offer.id}&affiliate_id=${affiliate.id}`);
      const key = /postback key {3}(pk_\S+)/.exec(printed!)![1];
      expect(hashPostbackKey(key)).toBe(advertiser.postbackKeyHash);
      expect(printed).toContain(`/postback?key=${key}&click_id=`);
      expect(await seedIfEmpty(prisma, 'http://127.0.0.1:3000', 'http://127.0.0.1:3001')).toBeNull();
    } finally {
      await prisma.$disconnect();
    }
  } finally {
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
});

it('`pnpm db:migrate` runs the one migrate entry point, the module the api image runs as its migrate step', async () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  expect(pkg.scripts['db:migrate']).toBe('node scripts/prepare.mjs --quiet && tsx services/api/src/migrate.ts');
  expect(readFileSync(path.join(ROOT, 'services/api/tsup.config.ts'), 'utf8')).toContain("migrate: 'src/migrate.ts'"); // → dist/migrate.js
  const name = `trackway_migrate_${randomSuffix()}`;
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  // NODE_ENV=test: the entry point reads no .env, only what is passed here.
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'services/api/src/migrate.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH!, NODE_ENV: 'test', ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
  try {
    // A bad setting of a service (here delivery's) is not the migration's business.
    const first = run({ DATABASE_URL: url.toString(), DELIVERY_ENDPOINT_CONCURRENCY: 'abc', INGEST_PORT: 'abc' });
    expect({ status: first.status, stderr: first.stderr }).toEqual({ status: 0, stderr: '' });
    const lines = first.stdout.trim().split('\n');
    expect(lines[0]).toBe(`created database ${name}`);
    expect(lines.slice(1)).toEqual(
      readdirSync(path.join(ROOT, 'prisma/migrations'), { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => `applied ${e.name}`)
        .sort(),
    );
    const again = run({ DATABASE_URL: url.toString() });
    expect({ status: again.status, stdout: again.stdout }).toEqual({ status: 0, stdout: `database is up to date (${lines.length - 1} migrations)\n` });
    const bad = run({ DATABASE_URL: 'mysql://db/x' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('DATABASE_URL: must be a postgresql:// URL');
  } finally {
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}, 90_000);
