import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { parseDatabaseUrl, poolConfig } from './client';

/**
 * Applies Prisma-format migration folders without Prisma's schema engine (which cannot be
 * downloaded offline), keeping the `_prisma_migrations` bookkeeping exactly as
 * `prisma migrate deploy` does, so either tool can take over later.
 */
export const MIGRATIONS_DIR = process.env.MIGRATIONS_DIR ?? findMigrationsDir(__dirname);

function findMigrationsDir(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'prisma', 'migrations');
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return path.resolve(from, '../../../prisma/migrations');
  }
}
// The advisory lock key Prisma's schema engine takes while migrating.
const PRISMA_ADVISORY_LOCK = 72707369;

const BOOKKEEPING_DDL = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

/** The migration folders' names, in the order they apply. */
function migrationNames(dir = MIGRATIONS_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(dir, entry.name, 'migration.sql')))
    .map((entry) => entry.name)
    .sort();
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return migrationNames(dir).map((name) => {
    const sql = readFileSync(path.join(dir, name, 'migration.sql'), 'utf8');
    return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

export interface MigrateResult {
  applied: string[];
  skipped: string[];
}

export async function migrate(
  databaseUrl: string,
  options: { schema?: string; dir?: string; log?: (line: string) => void; lockTimeoutMs?: number } = {},
): Promise<MigrateResult> {
  const parsed = parseDatabaseUrl(databaseUrl);
  const schema = options.schema ?? parsed.schema;
  const client = new pg.Client(poolConfig({ connectionString: parsed.connectionString, schema }));
  await client.connect();
  const result: MigrateResult = { applied: [], skipped: [] };
  try {
    // Wait for another migrator (ours or Prisma's) for at most a minute, not forever.
    const deadline = Date.now() + (options.lockTimeoutMs ?? 60_000);
    while (!(await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [PRISMA_ADVISORY_LOCK])).rows[0].locked) {
      if (Date.now() > deadline) throw new Error('another migration holds the migration lock; try again when it has finished');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    if (schema) await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema.replace(/"/g, '')}"`);
    await client.query(BOOKKEEPING_DDL);
    const { rows } = await client.query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }>(
      'SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"',
    );
    const failed = rows.filter((r) => r.finished_at === null && r.rolled_back_at === null);
    if (failed.length > 0) {
      throw new Error(`Migration ${failed[0].migration_name} failed earlier and must be resolved first (as with Prisma's P3009).`);
    }
    const done = new Map(rows.filter((r) => r.finished_at !== null && r.rolled_back_at === null).map((r) => [r.migration_name, r]));
    for (const migration of readMigrations(options.dir)) {
      const previous = done.get(migration.name);
      if (previous) {
        if (previous.checksum !== migration.checksum) {
          options.log?.(`warning: ${migration.name} was modified after it was applied`);
        }
        result.skipped.push(migration.name);
        continue;
      }
      // One transaction per migration: a failure leaves neither schema changes nor a row behind.
      // What it says (RAISE NOTICE: e.g. rows it left for a person) is logged and kept in `logs`.
      const notices: string[] = [];
      const onNotice = (notice: { message?: string }) => {
        if (!notice.message) return;
        notices.push(notice.message);
        options.log?.(`${migration.name}: ${notice.message}`);
      };
      client.on('notice', onNotice);
      await client.query('BEGIN');
      try {
        const id = randomUUID();
        await client.query('INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ($1, $2, $3, now())', [
          id,
          migration.checksum,
          migration.name,
        ]);
        await client.query(migration.sql);
        await client.query('UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), applied_steps_count = 1, logs = $2 WHERE id = $1', [
          id,
          notices.length > 0 ? notices.join('\n') : null,
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw new Error(`Migration ${migration.name} failed: ${(error as Error).message}`);
      } finally {
        client.off('notice', onNotice);
      }
      options.log?.(`applied ${migration.name}`);
      result.applied.push(migration.name);
    }
    return result;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_ADVISORY_LOCK]).catch(() => undefined);
    await client.end();
  }
}

/**
 * What the migrate entry point (services/api/src/migrate.ts: `pnpm db:migrate` and the
 * compose `migrate` step) does: creates the database if missing, then applies the migrations.
 */
export async function migrateDatabase(databaseUrl: string, log: (line: string) => void = console.log): Promise<MigrateResult> {
  if (await ensureDatabase(databaseUrl)) log(`created database ${new URL(databaseUrl).pathname.slice(1)}`);
  const result = await migrate(databaseUrl, { log });
  if (result.applied.length === 0) log(`database is up to date (${result.skipped.length} migrations)`);
  return result;
}

/** True when every migration folder has been applied (used by readiness checks). */
export async function pendingMigrations(query: (sql: string) => Promise<Array<{ migration_name: string }>>): Promise<string[]> {
  const applied = new Set(
    (await query('SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL')).map((r) => r.migration_name),
  );
  // Names only (a readiness check runs this often): nothing read or hashed.
  return migrationNames().filter((name) => !applied.has(name));
}

/** Creates the database named in the URL when it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const parsed = new URL(parseDatabaseUrl(databaseUrl).connectionString);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!name) throw new Error('DATABASE_URL names no database');
  const admin = new URL(parsed.toString());
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return false;
    await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    return true;
  } catch (error) {
    // Another process created it between our check and CREATE DATABASE (42P04, or 23505
    // when both inserts into pg_database race).
    if (['42P04', '23505'].includes((error as { code?: string }).code ?? '')) return false;
    throw error;
  } finally {
    await client.end();
  }
}
