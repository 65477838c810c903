// migrate() applies prisma/migrations without Prisma's schema engine; these tests hold it to
// what `prisma migrate deploy` does: same `_prisma_migrations` rows, one transaction and one
// row per migration, Prisma's advisory lock, and nothing left behind by a failing migration.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TEST_DATABASE_URL, randomSuffix } from '@trackway/testing';
import pg from 'pg';
import { MIGRATIONS_DIR, ensureDatabase, migrate, pendingMigrations } from '../src';

const REAL_MIGRATIONS = path.resolve(__dirname, '../../../prisma/migrations');
const BROKEN = '99999999999999_broken';

/** The migration folders, read independently of migrate.ts: name → sha256 hex of migration.sql. */
function migrationFolders(dir = REAL_MIGRATIONS): Array<{ name: string; checksum: string }> {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(dir, entry.name, 'migration.sql')))
    .map((entry) => entry.name)
    .sort()
    .map((name) => ({
      name,
      checksum: createHash('sha256')
        .update(readFileSync(path.join(dir, name, 'migration.sql')))
        .digest('hex'),
    }));
}
const names = () => migrationFolders().map((m) => m.name);

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

const schemas: string[] = [];
const tempDirs: string[] = [];
let admin: pg.Client;

beforeAll(async () => {
  admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
});

afterAll(async () => {
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A schema name of our own, dropped after the tests; migrate() creates it. */
function newSchema(): string {
  const schema = `t_migrate_${randomSuffix()}`;
  schemas.push(schema);
  return schema;
}

async function rows(schema: string): Promise<MigrationRow[]> {
  const { rows } = await admin.query<MigrationRow>(`SELECT * FROM "${schema}"."_prisma_migrations" ORDER BY migration_name, started_at`);
  return rows;
}

async function relationExists(schema: string, name: string): Promise<boolean> {
  const { rows } = await admin.query<{ oid: string | null }>('SELECT to_regclass($1) AS oid', [`"${schema}"."${name}"`]);
  return rows[0].oid !== null;
}

/** A temporary copy of prisma/migrations, optionally with a broken migration after the real ones. */
function migrationsCopy({ broken }: { broken?: string } = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'trackway-migrations-'));
  tempDirs.push(dir);
  cpSync(REAL_MIGRATIONS, dir, { recursive: true });
  if (broken !== undefined) {
    mkdirSync(path.join(dir, BROKEN));
    writeFileSync(path.join(dir, BROKEN, 'migration.sql'), broken);
  }
  return dir;
}

/** A new schema migrated up to (not including) the migration `name`: the database as it was before it. */
async function schemaBefore(name: string): Promise<string> {
  const schema = newSchema();
  const dir = mkdtempSync(path.join(tmpdir(), 'trackway-migrations-'));
  tempDirs.push(dir);
  for (const earlier of names().filter((n) => n < name)) cpSync(path.join(REAL_MIGRATIONS, earlier), path.join(dir, earlier), { recursive: true });
  await migrate(TEST_DATABASE_URL, { schema, dir });
  return schema;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('migrate()', () => {
  it('applies every migration folder to a fresh schema, in order, with the rows prisma migrate deploy writes', async () => {
    const schema = newSchema();
    const folders = migrationFolders();
    expect(folders.length).toBeGreaterThan(0);

    const result = await migrate(TEST_DATABASE_URL, { schema });

    expect(result).toEqual({ applied: folders.map((m) => m.name), skipped: [] });
    const applied = await rows(schema);
    expect(applied.map((r) => r.migration_name)).toEqual(folders.map((m) => m.name));
    for (const [i, row] of applied.entries()) {
      expect(row).toEqual({
        id: expect.stringMatching(UUID),
        checksum: folders[i].checksum,
        finished_at: expect.any(Date),
        migration_name: folders[i].name,
        logs: null,
        rolled_back_at: null,
        started_at: expect.any(Date),
        applied_steps_count: 1,
      });
      expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
    }
    expect(new Set(applied.map((r) => r.id)).size).toBe(applied.length);
    // Applied in order: each migration started no earlier than the one before finished.
    for (let i = 1; i < applied.length; i++) {
      expect(applied[i].started_at.getTime()).toBeGreaterThanOrEqual(applied[i - 1].finished_at!.getTime());
    }
    // The migrations ran in our schema (search_path), not in public.
    expect(await relationExists(schema, 'advertisers')).toBe(true);
  });

  it('creates _prisma_migrations exactly as Prisma does', async () => {
    const schema = newSchema();
    await migrate(TEST_DATABASE_URL, { schema });
    const { rows: columns } = await admin.query(
      `SELECT column_name, data_type, character_maximum_length AS length, is_nullable, column_default
         FROM information_schema.columns WHERE table_schema = $1 AND table_name = '_prisma_migrations' ORDER BY ordinal_position`,
      [schema],
    );
    expect(columns).toEqual([
      { column_name: 'id', data_type: 'character varying', length: 36, is_nullable: 'NO', column_default: null },
      { column_name: 'checksum', data_type: 'character varying', length: 64, is_nullable: 'NO', column_default: null },
      { column_name: 'finished_at', data_type: 'timestamp with time zone', length: null, is_nullable: 'YES', column_default: null },
      { column_name: 'migration_name', data_type: 'character varying', length: 255, is_nullable: 'NO', column_default: null },
      { column_name: 'logs', data_type: 'text', length: null, is_nullable: 'YES', column_default: null },
      { column_name: 'rolled_back_at', data_type: 'timestamp with time zone', length: null, is_nullable: 'YES', column_default: null },
      { column_name: 'started_at', data_type: 'timestamp with time zone', length: null, is_nullable: 'NO', column_default: 'now()' },
      { column_name: 'applied_steps_count', data_type: 'integer', length: null, is_nullable: 'NO', column_default: '0' },
    ]);
    const { rows: pk } = await admin.query(
      `SELECT a.attname FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey)
        WHERE x.indrelid = to_regclass($1) AND x.indisprimary`,
      [`"${schema}"."_prisma_migrations"`],
    );
    expect(pk).toEqual([{ attname: 'id' }]);
  });

  it('applies nothing on a second run (also when the schema comes from the URL)', async () => {
    const schema = newSchema();
    await migrate(TEST_DATABASE_URL, { schema });
    const before = await rows(schema);

    const url = new URL(TEST_DATABASE_URL);
    url.searchParams.set('schema', schema);
    const again = await migrate(url.toString());

    expect(again).toEqual({ applied: [], skipped: names() });
    expect(await rows(schema)).toEqual(before);
  });

  it('lets concurrent runs on a new schema both succeed, applying each migration once', async () => {
    const schema = newSchema();
    const results = await Promise.all([migrate(TEST_DATABASE_URL, { schema }), migrate(TEST_DATABASE_URL, { schema }), migrate(TEST_DATABASE_URL, { schema })]);

    // Prisma's advisory lock serializes the runs: one applies everything, the others skip it all.
    const winners = results.filter((r) => r.applied.length > 0);
    expect(winners).toEqual([{ applied: names(), skipped: [] }]);
    expect(results.filter((r) => r.applied.length === 0)).toEqual([
      { applied: [], skipped: names() },
      { applied: [], skipped: names() },
    ]);
    expect((await rows(schema)).map((r) => r.migration_name)).toEqual(names());
  });

  describe('a failing migration', () => {
    const brokenSql = [
      'CREATE TABLE "broken_probe" ("id" INTEGER NOT NULL);',
      'ALTER TABLE "advertisers" ADD COLUMN "broken_column" INTEGER;',
      'INSERT INTO "broken_probe" ("id") VALUES (1);',
      'SELECT * FROM "no_such_table";',
    ].join('\n');

    it('throws, leaves no row for it and none of its changes, and keeps the migrations before it', async () => {
      const schema = newSchema();
      const dir = migrationsCopy({ broken: brokenSql });

      await expect(migrate(TEST_DATABASE_URL, { schema, dir })).rejects.toThrow(`Migration ${BROKEN} failed: relation "no_such_table" does not exist`);

      expect((await rows(schema)).map((r) => r.migration_name)).toEqual(names());
      expect(await relationExists(schema, 'broken_probe')).toBe(false);
      const { rowCount } = await admin.query(
        `SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'advertisers' AND column_name = 'broken_column'`,
        [schema],
      );
      expect(rowCount).toBe(0);

      // Nothing is left to resolve (unlike Prisma's P3009): running again fails the same way,
      // and, once the broken folder is gone, the schema is simply up to date.
      await expect(migrate(TEST_DATABASE_URL, { schema, dir })).rejects.toThrow(`Migration ${BROKEN} failed`);
      rmSync(path.join(dir, BROKEN), { recursive: true });
      expect(await migrate(TEST_DATABASE_URL, { schema, dir })).toEqual({ applied: [], skipped: names() });
    });
  });

  it('refuses to run while a migration is recorded as failed, until it is marked rolled back (P3009)', async () => {
    const schema = newSchema();
    await migrate(TEST_DATABASE_URL, { schema });
    await admin.query(`INSERT INTO "${schema}"."_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ($1, $2, $3, now())`, [
      '00000000-0000-4000-8000-000000000000',
      '0'.repeat(64),
      BROKEN,
    ]);

    await expect(migrate(TEST_DATABASE_URL, { schema })).rejects.toThrow(`Migration ${BROKEN} failed earlier and must be resolved first`);

    await admin.query(`UPDATE "${schema}"."_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = $1`, [BROKEN]);
    expect(await migrate(TEST_DATABASE_URL, { schema })).toEqual({ applied: [], skipped: names() });
  });

  it('skips a migration edited after it was applied, with a warning, and keeps its recorded checksum', async () => {
    const schema = newSchema();
    const dir = migrationsCopy();
    await migrate(TEST_DATABASE_URL, { schema, dir });
    const before = await rows(schema);
    const edited = names()[0];
    appendFileSync(path.join(dir, edited, 'migration.sql'), '\n-- edited afterwards\n');

    const log: string[] = [];
    expect(await migrate(TEST_DATABASE_URL, { schema, dir, log: (line) => log.push(line) })).toEqual({ applied: [], skipped: names() });

    expect(log).toEqual([`warning: ${edited} was modified after it was applied`]);
    expect(await rows(schema)).toEqual(before);
  });

  it('logs each migration it applies', async () => {
    const log: string[] = [];
    await migrate(TEST_DATABASE_URL, { schema: newSchema(), log: (line) => log.push(line) });
    expect(log).toEqual(names().map((name) => `applied ${name}`));
  });
});

describe('20261206090000_normalize_event_names', () => {
  const NAME = '20261206090000_normalize_event_names';

  it('writes event names in lower case (in a collision, the oldest when none is), and lists the collisions it leaves', async () => {
    const schema = await schemaBefore(NAME);
    const insert = (id: string, order: string, event: string) =>
      admin.query(
        `INSERT INTO "${schema}".conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency, clicked_at, updated_at)
         VALUES ($1, 1, 1, 1, 'c', $2, $3, 'approved', 1, 'USD', 1, 'USD', now(), now())`,
        [id, order, event],
      );
    await insert('cnv_A', 'O-1', 'Sale'); // alone: normalized
    await insert('cnv_B', 'O-2', 'Sale'); // beside its lower-case form: left
    await insert('cnv_C', 'O-2', 'sale');
    await insert('cnv_D', 'O-3', 'LEAD'); // two other cases: the oldest takes the lower case
    await insert('cnv_E', 'O-3', 'Lead');
    await insert('cnv_F', 'O-4', 'conversion'); // already in its form

    const log: string[] = [];
    await migrate(TEST_DATABASE_URL, { schema, log: (line) => log.push(line) });
    const { rows: events } = await admin.query<{ id: string; event: string }>(`SELECT id, event FROM "${schema}".conversions ORDER BY id`);
    expect(events.map((r) => [r.id, r.event])).toEqual([
      ['cnv_A', 'sale'],
      ['cnv_B', 'Sale'],
      ['cnv_C', 'sale'],
      ['cnv_D', 'lead'],
      ['cnv_E', 'Lead'],
      ['cnv_F', 'conversion'],
    ]);
    const said = [
      `${NAME}: 2 conversion event name(s) written in lower case`,
      `${NAME}: event name collision: advertiser 1, order O-2, event sale: conversions cnv_B (Sale), cnv_C (sale) (new postbacks go to the one in lower case)`,
      `${NAME}: event name collision: advertiser 1, order O-3, event lead: conversions cnv_D (lead), cnv_E (Lead) (new postbacks go to the one in lower case)`,
    ];
    expect(log.filter((line) => line.startsWith(`${NAME}:`))).toEqual(said);
    const row = (await rows(schema)).find((r) => r.migration_name === NAME)!;
    expect(row.logs).toBe(said.map((line) => line.slice(NAME.length + 2)).join('\n'));
  });
});

describe('20261206110000_redact_stored_secrets', () => {
  const NAME = '20261206110000_redact_stored_secrets';

  it('replaces every stored parameter value shaped like a postback key or signing secret, and says how many postbacks held one', async () => {
    const schema = await schemaBefore(NAME);
    const key = 'pk_3xJ9yq0Z7C2hV5mN8pR1tW4bK6dF0gHs';
    const insert = (id: string, ignored: unknown) =>
      admin.query(
        `INSERT INTO "${schema}".postbacks (id, advertiser_id, status, params, ignored_params, received_at) VALUES ($1, 1, 'accepted', '{}', $2, now())`,
        [id, JSON.stringify(ignored)],
      );
    await insert('pb_A', { api_key: key, note: 'say "hi"', nested: { auth: `Bearer ${key}`, list: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'x'] } });
    await insert('pb_B', { sum: '30.00' });
    await insert('pb_C', null);
    const log: string[] = [];
    await migrate(TEST_DATABASE_URL, { schema, log: (line) => log.push(line) });
    const { rows: stored } = await admin.query<{ id: string; ignored_params: unknown }>(`SELECT id, ignored_params FROM "${schema}".postbacks ORDER BY id`);
    expect(stored).toEqual([
      { id: 'pb_A', ignored_params: { api_key: '[redacted]', note: 'say "hi"', nested: { auth: '[redacted]', list: ['[redacted]', 'x'] } } },
      { id: 'pb_B', ignored_params: { sum: '30.00' } },
      { id: 'pb_C', ignored_params: null },
    ]);
    expect(log.filter((line) => line.startsWith(`${NAME}:`))).toEqual([
      `${NAME}: 1 postback(s) kept a value shaped like a postback key or signing secret: redacted; rotate the keys of their advertisers`,
    ]);
  });
});

describe('20261207090000_partners', () => {
  const NAME = '20261207090000_partners';

  it("gives conversions recorded before their click rows' sub IDs, where the row is there; revenue stays null", async () => {
    const schema = await schemaBefore(NAME);
    await admin.query(
      `INSERT INTO "${schema}".clicks (id, offer_id, affiliate_id, sub1, sub2, sub5, created_at) VALUES ('k1', 1, 1, 'their-click', 'camp', 'z', now()), ('k2', 1, 1, NULL, NULL, NULL, now())`,
    );
    const insert = (id: string, click: string) =>
      admin.query(
        `INSERT INTO "${schema}".conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency, clicked_at, updated_at)
         VALUES ($1, 1, 1, 1, $2, $1, 'sale', 'approved', 1, 'USD', 1, 'USD', now(), now())`,
        [id, click],
      );
    await insert('cnv_A', 'k1');
    await insert('cnv_B', 'k2');
    await insert('cnv_C', 'gone');
    await migrate(TEST_DATABASE_URL, { schema });
    const { rows: stored } = await admin.query(`SELECT id, sub1, sub2, sub3, sub5, revenue FROM "${schema}".conversions ORDER BY id`);
    expect(stored).toEqual([
      { id: 'cnv_A', sub1: 'their-click', sub2: 'camp', sub3: null, sub5: 'z', revenue: null },
      { id: 'cnv_B', sub1: null, sub2: null, sub3: null, sub5: null, revenue: null },
      { id: 'cnv_C', sub1: null, sub2: null, sub3: null, sub5: null, revenue: null },
    ]);
  });
});

describe('pendingMigrations()', () => {
  let schema: string;
  let client: pg.Client;
  const query = async (sql: string) => (await client.query<{ migration_name: string }>(sql)).rows;

  beforeAll(async () => {
    schema = newSchema();
    await migrate(TEST_DATABASE_URL, { schema });
    client = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path="${schema}"` });
    await client.connect();
  });
  afterAll(() => client.end());

  it('reads the real migrations folder', () => {
    expect(path.resolve(MIGRATIONS_DIR)).toBe(REAL_MIGRATIONS);
  });

  it('is empty once every migration is applied', async () => {
    expect(await pendingMigrations(query)).toEqual([]);
  });

  it('lists migrations that are missing, unfinished or rolled back, in folder order', async () => {
    const all = names();
    const last = all[all.length - 1];
    const first = all[0];
    await client.query(`DELETE FROM "_prisma_migrations" WHERE migration_name = $1`, [last]);
    expect(await pendingMigrations(query)).toEqual([last]);

    await client.query(`UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = $1`, [first]);
    expect(await pendingMigrations(query)).toEqual(all.length > 1 ? [first, last] : [last]);

    await client.query(`UPDATE "_prisma_migrations" SET rolled_back_at = NULL, finished_at = NULL WHERE migration_name = $1`, [first]);
    expect(await pendingMigrations(query)).toEqual(all.length > 1 ? [first, last] : [last]);
  });
});

describe('ensureDatabase()', () => {
  const databases: string[] = [];
  const urlFor = (name: string) => {
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${name}`;
    return url.toString();
  };
  const newDatabaseName = () => {
    const name = `trackway_ensure_${randomSuffix()}`;
    databases.push(name);
    return name;
  };
  const exists = async (name: string) => (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;

  afterAll(async () => {
    // DROP DATABASE cannot run inside a transaction, nor on a connection to that database.
    const postgres = new pg.Client({ connectionString: urlFor('postgres') });
    await postgres.connect();
    try {
      for (const name of databases) await postgres.query(`DROP DATABASE IF EXISTS "${name}"`);
    } finally {
      await postgres.end();
    }
  });

  it('creates a missing database and returns true', async () => {
    const name = newDatabaseName();
    expect(await exists(name)).toBe(false);
    expect(await ensureDatabase(urlFor(name))).toBe(true);
    expect(await exists(name)).toBe(true);
  });

  it('returns false when the database exists (ignoring a ?schema= parameter)', async () => {
    const name = newDatabaseName();
    expect(await ensureDatabase(urlFor(name))).toBe(true);
    expect(await ensureDatabase(urlFor(name))).toBe(false);
    expect(await ensureDatabase(`${urlFor(name)}?schema=anything`)).toBe(false);
    expect(await ensureDatabase(TEST_DATABASE_URL)).toBe(false);
  });

  it('throws when the URL names no database', async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = '/';
    await expect(ensureDatabase(url.toString())).rejects.toThrow('DATABASE_URL names no database');
  });

  it('lets concurrent calls for the same missing database all succeed, exactly one creating it', async () => {
    // ensureDatabase() means to tolerate "another process created it between our check and
    // CREATE DATABASE"; Postgres reports that race as 23505 (unique_violation on
    // pg_database_datname_index), not only as 42P04 (duplicate_database).
    const name = newDatabaseName();
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => ensureDatabase(urlFor(name))));
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : `rejected: ${(r.reason as Error).message}`)).sort()).toEqual([false, false, false, true]);
    expect(await exists(name)).toBe(true);
  });
});
