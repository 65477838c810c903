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
      await insertClicks(pool, [
        rows.map((c) => c.clickId),
        rows.map((c) => c.offerId),
        rows.map((c) => c.affiliateId),
        rows.map((c) => c.subs.sub1 ?? null),
        rows.map((c) => c.subs.sub2 ?? null),
        rows.map((c) => c.subs.sub3 ?? null),
        rows.map((c) => c.subs.sub4 ?? null),
        rows.map((c) => c.subs.sub5 ?? null),
        rows.map((c) => c.ip ?? null),
        rows.map((c) => c.userAgent ?? null),
        rows.map((c) => c.clickedAt),
      ]);
      return rows.map(() => undefined);
    },
    (click, error) => new UnrecoverableError(`click ${click.clickId} cannot be stored: ${error.message}`),
  );
}
