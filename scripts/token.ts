// `pnpm token`: prints an admin JWT (HS256 under ADMIN_JWT_SECRET, 12 h) for local use.
// `pnpm run token 2h` sets its lifetime, at most ADMIN_JWT_MAX_AGE (the api refuses longer ones).
import { loadConfig, loadDotEnv, parseDuration } from '@trackway/config';
import { signAdminToken } from '../services/api/src/auth';

loadDotEnv();
const config = loadConfig();
if (!config.ADMIN_JWT_SECRET) {
  console.error('ADMIN_JWT_SECRET is not set (run `pnpm start` once to write .env, or set it)');
  process.exit(1);
}
const lifetime = process.argv[2] ?? '12h';
const lifetimeMs = parseDuration(lifetime);
if (lifetimeMs === undefined || lifetimeMs < 1000 || lifetimeMs > config.ADMIN_JWT_MAX_AGE) {
  console.error(`"${lifetime}" is not a lifetime between 1s and ADMIN_JWT_MAX_AGE (${config.ADMIN_JWT_MAX_AGE / 1000} s), e.g. 30min or 12h`);
  process.exit(1);
}
signAdminToken(config.ADMIN_JWT_SECRET, { expiresIn: `${Math.floor(lifetimeMs / 1000)}s` }).then((token) => console.log(token));
