import { ensureDatabase } from '@trackway/db';
import { TEST_DATABASE_URL } from '@trackway/testing';

// Each test file migrates its own schema in this database; here we only make sure it exists.
export default async function globalSetup() {
  await ensureDatabase(TEST_DATABASE_URL);
}
