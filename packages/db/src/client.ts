import { PrismaPg } from '@prisma/adapter-pg';
import { Prisma, PrismaClient } from './generated/prisma/client';

export { Prisma, PrismaClient };
export type Tx = Prisma.TransactionClient;

export interface DbTarget {
  /** A postgresql:// URL; a `schema` query parameter selects the Postgres schema. */
  connectionString: string;
  schema?: string;
}

/** Splits Prisma's `?schema=` convention off a URL: pg itself does not understand it. */
export function parseDatabaseUrl(url: string): { connectionString: string; schema?: string } {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  return { connectionString: parsed.toString(), schema };
}

export function poolConfig(target: DbTarget, max = 10) {
  return {
    connectionString: target.connectionString,
    max,
    // Bounded waits, for a connection or for a free client: never queued forever.
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    options: target.schema ? `-c search_path="${target.schema.replace(/"/g, '')}"` : undefined,
  };
}

export function createPrisma(databaseUrl: string, options: { poolSize?: number; schema?: string } = {}): PrismaClient {
  const parsed = parseDatabaseUrl(databaseUrl);
  const target = { connectionString: parsed.connectionString, schema: options.schema ?? parsed.schema };
  const adapter = new PrismaPg(poolConfig(target, options.poolSize), target.schema ? { schema: target.schema } : undefined);
  return new PrismaClient({ adapter });
}

export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}
