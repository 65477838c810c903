// The one migrate entry point: `pnpm db:migrate` runs this file, and the compose `migrate`
// step (or a release job) runs its bundle, `node dist/migrate.js` in the api image. Creates the
// database if missing and applies prisma/migrations, keeping `_prisma_migrations` bookkeeping.
import { commonEnvSchema, loadConfig, loadDotEnv } from '@trackway/config';
import { migrateDatabase } from '@trackway/db';

async function main() {
  loadDotEnv();
  // Only the common variables: a bad service setting must not stop a migration.
  await migrateDatabase(loadConfig({ schema: commonEnvSchema }).DATABASE_URL);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
