// Start-up steps that need the installed dependencies: database, migrations, demo seed.
import { ConfigError, loadConfig, loadDotEnv, publicIngestUrl } from '@trackway/config';
import { createPrisma, migrateDatabase } from '@trackway/db';
import { seedIfEmpty } from './seed';
import { shown } from './stores.mjs';

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
  // One paragraph in words; the stack trace only with LOG_LEVEL=debug.
  const debug = ['debug', 'trace'].includes(process.env.LOG_LEVEL ?? '');
  const detail = error instanceof Error ? ((debug ? error.stack : undefined) ?? error.message) : String(error);
  const url = process.env.DATABASE_URL || 'postgresql://postgres@127.0.0.1:5432/trackway';
  const problem = error instanceof ConfigError ? `the environment is not valid: ${detail.replace(/\n\s*/g, ' ')}` : detail;
  console.error(
    `[setup] PostgreSQL: could not create, migrate or seed the database at ${shown(url)} (DATABASE_URL): ${problem}. ` +
      'Check that DATABASE_URL names a server, user and password that can create that database, then run pnpm start again.',
  );
  process.exit(1);
});
