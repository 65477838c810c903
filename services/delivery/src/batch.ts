import { classifyDbError } from '@trackway/db';
import type { Settled } from '@trackway/runtime';

/**
 * Writes a batch in one go. If Postgres refuses a value in it (a data error: the batch holds an
 * item that can never be written), writes each item alone, so only that item fails and its
 * neighbours go through. Any other error (an outage) fails the whole batch: each caller retries.
 */
export async function writeIsolatingBadItems<T, R>(items: T[], writeAll: (items: T[]) => Promise<R[]>): Promise<Settled<R>[]> {
  try {
    return (await writeAll(items)).map((value) => ({ ok: true, value }));
  } catch (error) {
    if (items.length === 1 || classifyDbError(error) !== 'data') throw error;
  }
  const settled: Settled<R>[] = [];
  for (const item of items) {
    try {
      settled.push({ ok: true, value: (await writeAll([item]))[0] });
    } catch (error) {
      settled.push({ ok: false, error });
    }
  }
  return settled;
}
