import { type PgPool, type Settled, writeIsolated } from '@trackway/db';
import { insertClicks, insertClicksUncounted } from '@trackway/ledger';
import type { ClickJob } from '@trackway/queues';
import { UnrecoverableError } from 'bullmq';

/**
 * Click rows, many per statement. A click re-delivered after a crash is already written:
 * idempotent by click id. A row Postgres refuses fails alone. Each row records its transaction,
 * for the click folder (report rows); without (reportUpkeep: false) only for the benchmark's baseline.
 */
export function writeClicks(pool: PgPool, clicks: ClickJob[], reportUpkeep = true): Promise<Settled<void>[]> {
  const insert = reportUpkeep ? insertClicks : insertClicksUncounted;
  return writeIsolated(
    clicks,
    async (rows) => {
      await insert(pool, [JSON.stringify(rows)]);
      return rows.map(() => undefined);
    },
    (click, error) => new UnrecoverableError(`click ${click.clickId} cannot be stored: ${error.message}`),
  );
}
