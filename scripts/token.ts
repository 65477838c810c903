// `pnpm token`: prints an admin JWT (HS256 under ADMIN_JWT_SECRET, 12 h) for local use.
import { loadConfig, loadDotEnv } from '@trackway/config';
import { signAdminToken } from '../services/api/src/auth';

loadDotEnv();
const config = loadConfig();
if (!config.ADMIN_JWT_SECRET) {
  console.error('ADMIN_JWT_SECRET is not set (run `pnpm start` once to write .env, or set it)');
  process.exit(1);
}
const expiresIn = process.argv[2] ?? '12h';
signAdminToken(config.ADMIN_JWT_SECRET, { expiresIn }).then((token) => console.log(token));
