// No Docker engine runs on our machines: the compose file is validated against the Compose
// Specification's JSON schema (as shipped by Debian's docker-compose package) and by
// `docker-compose config`, and everything it names is checked to exist.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isBuiltin } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import { TEST_DATABASE_URL, TEST_REDIS_URL, randomSuffix, waitFor } from '@trackway/testing';
import pg from 'pg';
import { parse } from 'yaml';

const ROOT = path.resolve(__dirname, '..');
const COMPOSE = path.join(ROOT, 'docker-compose.yml');
const SCHEMA = process.env.COMPOSE_SPEC_SCHEMA ?? '/usr/lib/python3/dist-packages/compose/config/compose_spec.json';
const SERVICES = ['ingest', 'api', 'attribution', 'delivery'] as const;
const WORKERS = ['attribution', 'delivery'];

type Service = {
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  image?: string;
  command?: string[];
  ports?: string[];
  environment?: Record<string, unknown>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: unknown;
  container_name?: string;
};
const DOCKERFILE = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const compose = parse(readFileSync(COMPOSE, 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };

/** A port nothing listens on (just now). */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification JSON schema', () => {
    expect(existsSync(SCHEMA)).toBe(true); // .ci/run installs Debian's docker-compose, which ships it
    const ajv = new Ajv2019({ strict: false, validateFormats: false, allErrors: true });
    // The schema still spells its ids as draft-04 did ("id": "#/definitions/service"); they are
    // labels only ($refs resolve from the root), and ajv refuses the old keyword: drop them.
    const withoutIds = (node: unknown): unknown =>
      Array.isArray(node)
        ? node.map(withoutIds)
        : node && typeof node === 'object'
          ? Object.fromEntries(
              Object.entries(node)
                .filter(([k, v]) => !(k === 'id' && typeof v === 'string'))
                .map(([k, v]) => [k, withoutIds(v)]),
            )
          : node;
    const { $schema: _draft, ...schema } = withoutIds(JSON.parse(readFileSync(SCHEMA, 'utf8'))) as Record<string, unknown>;
    const validate = ajv.compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
    // …and the check can fail: an unknown top-level key or a malformed service is refused.
    expect(validate({ ...compose, servicez: {} })).toBe(false);
    expect(validate({ ...compose, services: { ...compose.services, redis: { ...compose.services.redis, healthcheck: { retries: 'many' } } } })).toBe(false);
  });

  it('passes `docker-compose config`, and refuses to start without the secrets', () => {
    const project = mkdtempSync(path.join(os.tmpdir(), 'compose-')); // no .env there
    const run = (env: Record<string, string>) =>
      spawnSync('docker-compose', ['--project-directory', project, '-f', COMPOSE, 'config', '-q'], {
        env: { PATH: process.env.PATH!, ...env },
        encoding: 'utf8',
      });
    const ok = run({ ADMIN_JWT_SECRET: 'a'.repeat(32), CLICK_SECRET: 'b'.repeat(32), SECRETS_KEY: Buffer.alloc(32).toString('base64') });
    expect({ status: ok.status, stderr: ok.stderr }).toEqual({ status: 0, stderr: '' });
    const missing = run({});
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/ADMIN_JWT_SECRET|CLICK_SECRET|SECRETS_KEY/);
  });

  it('builds every service from the one Dockerfile, SERVICE choosing which, and runs its start script', () => {
    for (const name of SERVICES) {
      const service = compose.services[name];
      expect(service.build).toEqual({ context: '.', dockerfile: 'Dockerfile', args: { SERVICE: name } });
      const pkg = JSON.parse(readFileSync(path.join(ROOT, 'services', name, 'package.json'), 'utf8'));
      expect(pkg.name).toBe(`@trackway/${name}`);
      expect(pkg.scripts).toMatchObject({ start: 'tsx src/main.ts', build: 'tsup', 'start:prod': 'node dist/main.js' });
      expect(existsSync(path.join(ROOT, 'services', name, 'src', 'main.ts'))).toBe(true);
      expect(existsSync(path.join(ROOT, 'services', name, 'tsup.config.ts'))).toBe(true);
      expect(existsSync(path.join(ROOT, 'services', name, 'Dockerfile'))).toBe(false); // no near-copies
    }
    expect(DOCKERFILE.match(/^FROM /gm)).toHaveLength(2); // multi-stage
    expect(DOCKERFILE.match(/^ARG SERVICE$/gm)).toHaveLength(2); // declared in both stages
    expect(DOCKERFILE).toContain('RUN pnpm turbo run build --filter=@trackway/${SERVICE}\n');
    expect(DOCKERFILE).toContain('RUN pnpm --filter=@trackway/${SERVICE} deploy --prod --config.node-linker=hoisted /out\n');
    expect(DOCKERFILE).toContain('COPY --from=build --chown=node:node /repo/services/${SERVICE}/dist ./dist\n');
    expect(DOCKERFILE).toMatch(/^USER node$/m);
    expect(DOCKERFILE).toMatch(/^CMD \["node", "--enable-source-maps", "dist\/main\.js"\]$/m);
    expect(compose.services.migrate).toMatchObject({ build: { dockerfile: 'Dockerfile', args: { SERVICE: 'api' } }, command: ['node', 'dist/migrate.js'] });
    expect(readFileSync(path.join(ROOT, 'services/api/tsup.config.ts'), 'utf8')).toContain("migrate: 'src/migrate.ts'");
  });

  it('refuses to build without a SERVICE it knows', () => {
    // The Dockerfile's check, run as the build would run it (sh, SERVICE from the build arg).
    const check = /^RUN (case "\$SERVICE" in .*esac)$/m.exec(DOCKERFILE)?.[1];
    expect(check).toBeDefined();
    const run = (service?: string) =>
      spawnSync('sh', ['-c', check!], { env: { PATH: process.env.PATH!, ...(service === undefined ? {} : { SERVICE: service }) }, encoding: 'utf8' });
    for (const name of SERVICES) expect(run(name).status).toBe(0);
    for (const wrong of [undefined, '', 'redis', 'Ingest', 'ingest ', 'services/ingest']) {
      const result = run(wrong);
      expect({ wrong, status: result.status }).toEqual({ wrong, status: 1 });
      expect(result.stderr).toContain('SERVICE must be ingest, attribution, delivery or api');
    }
  });

  it('runs Redis with AOF fsynced every second and noeviction, and Postgres, both with healthchecks', () => {
    const command = compose.services.redis.command!.join(' ');
    expect(command).toContain('--appendonly yes');
    expect(command).toContain('--appendfsync everysec');
    expect(command).toContain('--maxmemory-policy noeviction');
    expect(compose.services.redis.healthcheck).toBeDefined();
    expect(compose.services.postgres.healthcheck).toBeDefined();
  });

  it('starts the services only on healthy Redis and Postgres and after the one-shot migration', () => {
    for (const name of SERVICES) {
      expect(compose.services[name].depends_on).toEqual({
        redis: { condition: 'service_healthy' },
        postgres: { condition: 'service_healthy' },
        migrate: { condition: 'service_completed_successfully' },
      });
    }
    expect(compose.services.migrate.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
  });

  it('passes METRICS_TOKEN to the services, so a scraper can read /metrics on ingest and api', () => {
    for (const name of SERVICES) expect(compose.services[name].environment?.METRICS_TOKEN).toBe('${METRICS_TOKEN:-}');
  });

  it('lets workers scale: no published ports, no container names', () => {
    for (const name of WORKERS) {
      expect(compose.services[name].ports).toBeUndefined();
      expect(compose.services[name].container_name).toBeUndefined();
    }
    for (const [name, service] of Object.entries(compose.services))
      expect({ name, container_name: service.container_name }).toEqual({ name, container_name: undefined });
  });

  it("runs a service's bundle from the pruned production install, as the image does", async () => {
    execFileSync('pnpm', ['turbo', 'run', 'build', '--filter=@trackway/ingest', '--output-logs=errors-only'], { cwd: ROOT, stdio: 'pipe' });
    const out = mkdtempSync(path.join(os.tmpdir(), 'deploy-'));
    execFileSync('pnpm', ['--filter=@trackway/ingest', 'deploy', '--prod', '--config.node-linker=hoisted', out], { cwd: ROOT, stdio: 'pipe' });
    expect(existsSync(path.join(out, 'node_modules', 'jest'))).toBe(false); // no dev dependencies
    const port = await freePort();
    const child = spawn(process.execPath, [path.join(out, 'dist', 'main.js')], {
      cwd: out,
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'production',
        INGEST_PORT: String(port),
        CLICK_SECRET: 'c'.repeat(40),
        SECRETS_KEY: Buffer.alloc(32, 3).toString('base64'),
        MIGRATIONS_DIR: path.join(ROOT, 'prisma', 'migrations'),
        DATABASE_URL: TEST_DATABASE_URL,
        REDIS_URL: TEST_REDIS_URL,
      },
      stdio: 'ignore',
    });
    try {
      const healthy = await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok, {
        timeoutMs: 20_000,
        what: 'the bundled ingest',
      });
      expect(healthy).toBe(true);
      // The image's HEALTHCHECK (one for all four services) asks the port of the service it runs in.
      const healthcheck = /^HEALTHCHECK .*\\\n\s+CMD (.+)$/m.exec(DOCKERFILE)?.[1];
      expect(healthcheck).toBeDefined();
      const closed = String(await freePort());
      const probe = (env: Record<string, string>) =>
        spawnSync('sh', ['-c', healthcheck!], { env: { PATH: process.env.PATH!, ...env }, timeout: 10_000 }).status;
      expect(probe({ SERVICE: 'ingest', INGEST_PORT: String(port), API_PORT: closed, HEALTH_PORT: closed })).toBe(0);
      expect(probe({ SERVICE: 'ingest', INGEST_PORT: closed, HEALTH_PORT: String(port) })).toBe(1);
      expect(probe({ SERVICE: 'api', API_PORT: String(port), INGEST_PORT: closed })).toBe(0);
      expect(probe({ SERVICE: 'api', API_PORT: closed, INGEST_PORT: String(port) })).toBe(1);
      for (const worker of WORKERS) {
        expect(probe({ SERVICE: worker, HEALTH_PORT: String(port), INGEST_PORT: closed, API_PORT: closed })).toBe(0);
        expect(probe({ SERVICE: worker, HEALTH_PORT: closed, INGEST_PORT: String(port), API_PORT: String(port) })).toBe(1);
      }
    } finally {
      child.kill('SIGTERM');
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);

  // The bundles inline the workspace packages and require their npm dependencies at run time:
  // each must come with the service's pruned install (its own or a workspace package's
  // dependency), or the image would fail at start-up. Read from the bundle, not from a list.
  it("resolves every module a service's bundle requires from that service's pruned production install", () => {
    execFileSync('pnpm', ['turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: ROOT, stdio: 'pipe' });
    for (const name of SERVICES) {
      const out = mkdtempSync(path.join(os.tmpdir(), `deploy-${name}-`));
      try {
        execFileSync('pnpm', [`--filter=@trackway/${name}`, 'deploy', '--prod', '--config.node-linker=hoisted', out], { cwd: ROOT, stdio: 'pipe' });
        const bundles = readdirSync(path.join(out, 'dist')).filter((file) => file.endsWith('.js'));
        const required = new Set(
          bundles.flatMap((file) => [...readFileSync(path.join(out, 'dist', file), 'utf8').matchAll(/\brequire\("([^".][^"]*)"\)/g)].map((m) => m[1])),
        );
        const external = [...required].filter((id) => !isBuiltin(id));
        expect(external).toEqual(expect.arrayContaining(['bullmq', 'ioredis', 'pg'])); // the scan finds what every service needs
        const missing = external.filter((id) => {
          try {
            require.resolve(id, { paths: [out] });
            return false;
          } catch {
            return true;
          }
        });
        expect({ name, missing }).toEqual({ name, missing: [] });
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    }
  }, 180_000);

  it('builds every service bundle the Dockerfile copies', () => {
    execFileSync('pnpm', ['turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: ROOT, stdio: 'pipe' });
    for (const name of SERVICES) expect(existsSync(path.join(ROOT, 'services', name, 'dist', 'main.js'))).toBe(true);
    expect(existsSync(path.join(ROOT, 'services', 'api', 'dist', 'migrate.js'))).toBe(true);
  }, 120_000);

  it("runs the migrate step's bundle as the compose migrate service does (`node dist/migrate.js` in the api image)", async () => {
    execFileSync('pnpm', ['turbo', 'run', 'build', '--filter=@trackway/api', '--output-logs=errors-only'], { cwd: ROOT, stdio: 'pipe' });
    const out = mkdtempSync(path.join(os.tmpdir(), 'deploy-api-'));
    const schema = `t_migrate_bundle_${randomSuffix()}`;
    const url = new URL(TEST_DATABASE_URL);
    url.searchParams.set('schema', schema);
    try {
      execFileSync('pnpm', ['--filter=@trackway/api', 'deploy', '--prod', '--config.node-linker=hoisted', out], { cwd: ROOT, stdio: 'pipe' });
      const run = spawnSync(process.execPath, ['dist/migrate.js'], {
        cwd: out,
        env: { PATH: process.env.PATH!, NODE_ENV: 'production', DATABASE_URL: url.toString(), MIGRATIONS_DIR: path.join(ROOT, 'prisma', 'migrations') },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
      expect(run.stdout).toMatch(/^applied \d+_init$/m);
    } finally {
      const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
