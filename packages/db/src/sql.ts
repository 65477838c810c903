import type pg from 'pg';

export type PgPool = pg.Pool;
export type PgClient = pg.PoolClient;

/** A pool or a checked-out client: anything a statement can run on. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

/**
 * A named statement: Postgres parses and plans it once per connection, then only binds and
 * executes it (Prisma's raw queries are unnamed and re-planned on every call). Hot paths use
 * these with arrays as parameters (`unnest`), so one round trip writes a whole batch.
 */
export function statement<R extends pg.QueryResultRow = pg.QueryResultRow>(name: string, text: string) {
  return async (db: Queryable, values: unknown[]): Promise<R[]> => (await db.query<R>({ name, text, values })).rows;
}

/**
 * Runs `use` on one client of the pool and gives it back. A checked-out client has no 'error'
 * listener (pg-pool removes its idle one): a connection lost while it is held would be an
 * uncaught exception. The failing query rejects anyway; a client whose connection failed (or that
 * `use` marks broken) does not go back to the pool.
 */
export async function withClient<T>(pool: pg.Pool, use: (client: pg.PoolClient, markBroken: (error: Error) => void) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  client.on('error', onError);
  try {
    return await use(client, onError);
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/**
 * Runs `work` in one transaction on one client of the pool. A serialization failure or a
 * deadlock (another transaction chose the same rows in another order) rolls back and runs
 * `work` again, up to `attempts` times.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await withClient(pool, async (client, markBroken) => {
        try {
          await client.query('BEGIN');
          const result = await work(client);
          await client.query('COMMIT');
          return result;
        } catch (error) {
          await client.query('ROLLBACK').catch(markBroken);
          throw error;
        }
      });
    } catch (error) {
      if (attempt < attempts && (error instanceof RetryTransaction || isTransactionConflict(error))) continue;
      throw error instanceof RetryTransaction ? error.cause : error;
    }
  }
}

/**
 * Thrown inside `inTransaction` to roll back and run the work again: e.g. a row another
 * transaction committed after we read (ON CONFLICT DO NOTHING skipped it), which the next run
 * reads and locks. `cause` is what is thrown if the attempts run out.
 */
export class RetryTransaction extends Error {
  override name = 'RetryTransaction';
  constructor(
    message: string,
    override readonly cause: Error = new Error(message),
  ) {
    super(message);
  }
}

const code = (error: unknown) => (error as { code?: unknown })?.code;

/** 40001 serialization_failure, 40P01 deadlock_detected. */
export function isTransactionConflict(error: unknown): boolean {
  return code(error) === '40001' || code(error) === '40P01';
}

/**
 * What a failed statement says about the batch it was part of:
 * - `unavailable`: the database could not be reached or went away (retry later, all of it);
 * - `data`: a value the database refused (class 22 data exception, 23 integrity violation):
 *   the batch holds a row that can never be written, to be found by writing rows alone;
 * - `other`: anything else (a bug, a timeout): retried like an outage.
 */
export function classifyDbError(error: unknown): 'unavailable' | 'data' | 'other' {
  const c = code(error);
  // A row of a time no history partition holds yet (packages/ledger/src/history.ts makes them
  // days ahead): the data is fine, the table is not ready; a retry will find it. A row of a time
  // retention has dropped (more than a day past) never will: a data error.
  if (isMissingPartition(error)) return (missingPartitionTime(error) ?? Date.now()) < Date.now() - 86_400_000 ? 'data' : 'other';
  if (typeof c === 'string') {
    if (/^(08|53|57P0[1-3])/.test(c)) return 'unavailable';
    if (/^(ECONN|ETIMEDOUT|ENOTFOUND|EAI_|EPIPE|EHOSTUNREACH|ENETUNREACH)/.test(c)) return 'unavailable';
    if (/^(22|23)/.test(c)) return 'data';
  }
  const message = (error as Error)?.message ?? '';
  if (
    /timeout exceeded when trying to connect|Connection terminated|connection is closed|Client has encountered a connection error|Cannot use a pool after calling end/i.test(
      message,
    )
  )
    return 'unavailable';
  return 'other';
}

/** Whether a write failed because no partition holds its row (history partitions are made ahead; a retry succeeds once one is). */
export function isMissingPartition(error: unknown): boolean {
  return code(error) === '23514' && /no partition of relation/.test(String((error as Error)?.message));
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/**
 * The time of the row no partition holds, from the error's detail ("Partition key of the failing
 * row contains (id) = (dlv_01J…)."): a prefixed ULID's time, or a timestamp; null if unreadable.
 */
export function missingPartitionTime(error: unknown): number | null {
  const key = /\) = \((.*)\)\.?$/.exec(String((error as { detail?: string })?.detail ?? ''))?.[1];
  if (!key) return null;
  const ulid = /^[a-z]+_([0-7][0-9A-HJKMNP-TV-Z]{9})/.exec(key)?.[1];
  if (ulid) return [...ulid].reduce((ms, c) => ms * 32 + CROCKFORD.indexOf(c), 0);
  const at = Date.parse(key);
  return Number.isNaN(at) ? null : at;
}

export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

/**
 * Writes a batch so that a bad row never fails its neighbours: a batch the database refuses
 * for a value (a data or integrity error) is split in halves until the item that causes it
 * stands alone; that item fails with `permanent(item, error)` (it can never be written), the
 * others are written. A row of a time no history partition holds yet is isolated alike but
 * fails with its error as it is (retried); one of a time retention dropped is permanent. Any other error (an outage) fails the whole batch, to be retried.
 */
export async function writeIsolated<T, R>(items: T[], write: (items: T[]) => Promise<R[]>, permanent: (item: T, error: Error) => Error): Promise<Settled<R>[]> {
  try {
    return (await write(items)).map((value) => ({ ok: true, value }));
  } catch (error) {
    // A row no partition holds yet is isolated the same way, but fails as it is (a retry may find its partition).
    const unplaced = isMissingPartition(error) && classifyDbError(error) === 'other';
    if (!unplaced && classifyDbError(error) !== 'data') return items.map(() => ({ ok: false, error }));
    if (items.length === 1) return [{ ok: false, error: unplaced ? error : permanent(items[0], error as Error) }];
    const half = Math.ceil(items.length / 2);
    return [...(await writeIsolated(items.slice(0, half), write, permanent)), ...(await writeIsolated(items.slice(half), write, permanent))];
  }
}
