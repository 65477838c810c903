import { type PgPool, type Settled, writeIsolated } from '@trackway/db';
import type { ClickJob } from '@trackway/queues';
import { UnrecoverableError } from 'bullmq';
import { insertClicks } from '../postbacks/statements';

/**
 * Click rows (reporting only), many per statement. A click re-delivered after a crash is
 * already written: idempotent by click id. A row Postgres refuses fails alone.
 */
export function writeClicks(pool: PgPool, clicks: ClickJob[]): Promise<Settled<void>[]> {
  return writeIsolated(
    clicks,
    async (rows) => {
      await insertClicks(pool, [JSON.stringify(rows)]);
      return rows.map(() => undefined);
    },
    (click, error) => new UnrecoverableError(`click ${click.clickId} cannot be stored: ${error.message}`),
  );
}
