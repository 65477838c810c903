import { defineConfig } from 'prisma/config';

// The CLI is used here only for `prisma generate` (and, where the schema engine can be
// downloaded, `prisma migrate deploy`); migrations are normally applied by `pnpm db:migrate`.
export default defineConfig({
  schema: './prisma/schema.prisma',
  migrations: { path: './prisma/migrations' },
  datasource: {
    url: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/trackway',
  },
});
