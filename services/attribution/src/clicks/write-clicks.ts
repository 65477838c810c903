import { type PgPool, type Settled, statement, writeIsolated } from '@trackway/db';
import { insertClicksCounted } from '@trackway/ledger';
import type { ClickJob } from '@trackway/queues';
import { UnrecoverableError } from 'bullmq';

// Click rows as one JSON parameter; a click written before (a job run again) is skipped. Without
// their report counts: only for the benchmark's baseline (reportUpkeep: false).
const insertClicksUncounted = statement(
  'attr-insert-clicks',
  `INSERT INTO clicks (id, offer_id, affiliate_id, sub1, sub2, sub3, sub4, sub5, ip, user_agent, created_at)
   SELECT r."clickId", r."offerId", r."affiliateId", r.subs->>'sub1', r.subs->>'sub2', r.subs->>'sub3', r.subs->>'sub4', r.subs->>'sub5',
          r.ip, r."userAgent", r."clickedAt"
     FROM json_to_recordset($1::json) AS r("clickId" varchar, "offerId" int, "affiliateId" int, subs json, ip varchar, "userAgent" varchar, "clickedAt" timestamptz)
    ORDER BY 1
   ON CONFLICT (id) DO NOTHING`,
);

/**
 * Click rows and their report counts, many per statement. A click re-delivered after a crash is
 * already written and counted: idempotent by click id. A row Postgres refuses fails alone.
 */
export function writeClicks(pool: PgPool, clicks: ClickJob[], reportUpkeep = true): Promise<Settled<void>[]> {
  const insert = reportUpkeep ? insertClicksCounted : insertClicksUncounted;
  return writeIsolated(
    clicks,
    async (rows) => {
      await insert(pool, [JSON.stringify(rows)]);
      return rows.map(() => undefined);
    },
    (click, error) => new UnrecoverableError(`click ${click.clickId} cannot be stored: ${error.message}`),
  );
}
