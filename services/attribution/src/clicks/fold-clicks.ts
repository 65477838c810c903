import type { PgPool } from '@trackway/db';
import { foldClicks } from '@trackway/ledger';
import type { Logger } from '@trackway/logger';

/** How long after a batch of clicks is written they are folded into the report rows, at most. */
export const CLICK_FOLD_MS = 1_000;
/** How long a graceful stop waits for clicks an open transaction holds back before it leaves them. */
const STOP_PATIENCE_MS = 3_000;

/**
 * Folds written clicks into the report rows (foldClicks) a moment after a batch is written, many
 * batches at once. Reports read the clicks not folded yet from the clicks themselves, so how soon
 * this runs changes what a report costs, never what it says. Another process folding at the same
 * time, or clicks a transaction still open holds back: this one looks again later. A failure
 * (Postgres away) is tried again after the same wait.
 */
export function clickFolder(pool: PgPool, logger: Logger, waitMs = CLICK_FOLD_MS) {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  /** One fold; true when something is left for later (another folder at work, clicks an open transaction holds back, an error). */
  const foldOnce = async (): Promise<boolean> => {
    try {
      const done = await foldClicks(pool);
      if (done && done.clicks > 0) logger.debug({ clicks: done.clicks }, 'clicks folded into the report rows');
      return done === null || done.behind;
    } catch (error) {
      logger.warn({ err: error }, 'clicks not folded into the report rows yet; reports count them from the click rows meanwhile');
      return true;
    }
  };
  const fold = async () => {
    if (await foldOnce()) poke();
  };
  function poke(): void {
    if (stopped || timer) return;
    timer = setTimeout(() => {
      timer = null;
      running = running.then(fold);
    }, waitMs);
    timer.unref?.();
  }
  return {
    /** Clicks were written: fold them soon. */
    poke,
    /**
     * Stops folding, after a last fold of what is written (a graceful shutdown). Clicks that a
     * transaction still open (any in the database) holds back are waited for up to
     * STOP_PATIENCE_MS, then left to the next folder: reports count them from the click rows.
     */
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
      const deadline = Date.now() + STOP_PATIENCE_MS;
      while ((await foldOnce()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    },
  };
}
