// The one-shot migrate step (docker-compose `migrate` service, or a release job): creates the
// database if missing and applies prisma/migrations, keeping `_prisma_migrations` bookkeeping.
import { loadConfig, loadDotEnv } from '@trackway/config';
import { ensureDatabase, migrate } from '@trackway/db';

async function main() {
  loadDotEnv();
  const { DATABASE_URL } = loadConfig();
  if (await ensureDatabase(DATABASE_URL)) console.log('created the database');
  const result = await migrate(DATABASE_URL, { log: console.log });
  console.log(`migrations: ${result.applied.length} applied, ${result.skipped.length} already applied`);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
