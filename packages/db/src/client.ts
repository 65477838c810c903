import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
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

/**
 * One pg pool per process, shared by Prisma (schema, migrations, admin paths) and the hot
 * paths, which write through `pg` directly with named, multi-row statements (see ./sql.ts).
 */
export interface Database {
  prisma: PrismaClient;
  pool: pg.Pool;
}

export function createDatabase(databaseUrl: string, options: { poolSize?: number; schema?: string } = {}): Database {
  const parsed = parseDatabaseUrl(databaseUrl);
  const target = { connectionString: parsed.connectionString, schema: options.schema ?? parsed.schema };
  const pool = new pg.Pool(poolConfig(target, options.poolSize));
  // An idle client losing its connection (Postgres restarted) must not crash the process: the
  // pool drops it and the next query opens a new one.
  pool.on('error', () => undefined);
  // $disconnect ends the pool too, so every process keeps its single shutdown step.
  const adapter = new PrismaPg(pool, { ...(target.schema ? { schema: target.schema } : {}), disposeExternalPool: true });
  return { prisma: new PrismaClient({ adapter }), pool };
}

export function createPrisma(databaseUrl: string, options: { poolSize?: number; schema?: string } = {}): PrismaClient {
  return createDatabase(databaseUrl, options).prisma;
}

/**
 * Runs a Prisma transaction again when Postgres chose it as a deadlock victim or it lost a
 * serialization race (P2034): the admin paths lock rows the workers lock too.
 */
export async function retryOnConflict<T>(run: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      const conflict = error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2034';
      if (!conflict || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
    }
  }
}
