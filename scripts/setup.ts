// Start-up steps that need the installed dependencies: database, migrations, demo seed.
import { ConfigError, loadConfig, loadDotEnv, publicIngestUrl } from '@trackway/config';
import { createPrisma, migrateDatabase } from '@trackway/db';
import { seedIfEmpty } from './seed';
import { StartError, printStartError, shown } from './stores.mjs';

async function main() {
  loadDotEnv();
  const config = (() => {
    try {
      return loadConfig();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new StartError(`the environment is not valid: ${error.problems.join('; ')}.`, { cause: error });
    }
  })();
  const url = config.DATABASE_URL;
  try {
    await migrateDatabase(url, (line) => console.log(`[setup] ${line}`));
    const prisma = createPrisma(url);
    try {
      const ingestUrl = publicIngestUrl(config);
      const demo = await seedIfEmpty(prisma, ingestUrl, `http://127.0.0.1:${config.API_PORT}`);
      if (demo) console.log(`\n${demo}\n`);
    } finally {
      await prisma.$disconnect();
    }
  } catch (error) {
    // Only what the database refused or could not do is worded as the database's problem.
    throw new StartError(
      `PostgreSQL: could not create, migrate or seed the database at ${shown(url)} (DATABASE_URL): ${(error as Error).message}. ` +
        'Check that DATABASE_URL names a server, user and password that can create that database, then run pnpm start again.',
      { cause: error },
    );
  }
}

main().catch((error) => {
  printStartError('[setup]', error instanceof StartError ? error : new StartError((error as Error).message, { cause: error }));
  process.exit(1);
});
