// Start-up steps that need the installed dependencies: database, migrations, demo seed.
import { ConfigError, envSchema, loadConfig, loadDotEnv, publicIngestUrl } from '@trackway/config';
import { createPrisma, migrateDatabase } from '@trackway/db';
import { seedIfEmpty } from './seed';
import { StartError, printStartError, shown } from './stores.mjs';

async function main() {
  loadDotEnv();
  const config = loadConfig();
  await migrateDatabase(config.DATABASE_URL, (line) => console.log(`[setup] ${line}`));
  const prisma = createPrisma(config.DATABASE_URL);
  try {
    const ingestUrl = publicIngestUrl(config);
    const demo = await seedIfEmpty(prisma, ingestUrl, `http://127.0.0.1:${config.API_PORT}`);
    if (demo) console.log(`\n${demo}\n`);
  } finally {
    await prisma.$disconnect();
  }
}

main().catch((error) => {
  const url = process.env.DATABASE_URL || envSchema.shape.DATABASE_URL.parse(undefined);
  const problem = error instanceof ConfigError ? `the environment is not valid: ${error.problems.join('; ')}` : (error as Error).message;
  const words =
    `PostgreSQL: could not create, migrate or seed the database at ${shown(url)} (DATABASE_URL): ${problem}. ` +
    'Check that DATABASE_URL names a server, user and password that can create that database, then run pnpm start again.';
  printStartError('[setup]', new StartError(words, { cause: error }));
  process.exit(1);
});
