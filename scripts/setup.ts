// Start-up steps that need the installed dependencies: database, migrations, demo seed.
import { loadConfig, loadDotEnv, publicIngestUrl } from '@trackway/config';
import { createPrisma, migrateDatabase } from '@trackway/db';
import { seedIfEmpty } from './seed';

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
  console.error(`[setup] ${error instanceof Error ? error.message : error}`);
  process.exit(1);
});
