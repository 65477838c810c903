// `pnpm db:migrate`: creates the database if missing and applies prisma/migrations without
// Prisma's schema engine, keeping the `_prisma_migrations` table `prisma migrate deploy` uses.
import { loadConfig, loadDotEnv } from '@trackway/config';
import { ensureDatabase, migrate } from '@trackway/db';

export async function migrateDatabase(databaseUrl: string, log: (line: string) => void = console.log) {
  if (await ensureDatabase(databaseUrl)) log(`created database ${new URL(databaseUrl).pathname.slice(1)}`);
  const result = await migrate(databaseUrl, { log });
  if (result.applied.length === 0) log(`database is up to date (${result.skipped.length} migrations)`);
  return result;
}

if (require.main === module) {
  loadDotEnv();
  migrateDatabase(loadConfig().DATABASE_URL).catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
