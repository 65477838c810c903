import { type PgPool, statement } from '@trackway/db';
import type { Logger } from '@trackway/logger';
import { type DeliveryQueues, type TypedQueue, deliveryJobOptions, deliveryJobStates, deliveryRetryJobOptions } from '@trackway/queues';

/** The housekeeping queue's job schedulers: what runs, how often, under which job name. */
export const HOUSEKEEPING = {
  // History past retention is dropped every hour, whole partitions (CLICK_RETENTION_DAYS,
  // POSTBACK_RETENTION_DAYS and DELIVERY_LOG_RETENTION_DAYS decide what goes:
  // packages/ledger/src/history.ts dropExpiredHistory). The scheduler keeps its first name.
  prune: { scheduler: 'prune-delivery-log', everyMs: 3_600_000 },
  // Deliveries left pending without a job are put back every minute.
  sweep: { scheduler: 'sweep-deliveries', everyMs: 60_000 },
} as const;

export async function scheduleHousekeeping(queue: TypedQueue<'housekeeping'>): Promise<void> {
  for (const [name, { scheduler, everyMs }] of Object.entries(HOUSEKEEPING)) await queue.upsertJobScheduler(scheduler, { every: everyMs }, { name });
}

/** A delivery this long overdue (past its next attempt, or created and never attempted) is checked. */
export const SWEEP_GRACE_MS = 2 * 60_000;
const SWEEP_PAGE = 500;
/** At most this many deliveries are checked per run; the next run goes on from there. */
export const SWEEP_MAX_PER_RUN = 10_000;

type Overdue = {
  id: string;
  event_id: string;
  endpoint_id: string;
  event_type: string;
  replay_count: number;
  batch_job_id: string | null;
  attempt_count: number;
};
// Served by deliveries_pending_idx (endpoint_id, id) WHERE status = 'pending': it holds only what
// is pending, a few rows per partition, merged across partitions in (endpoint_id, id) order.
export const OVERDUE_DELIVERIES_SQL = `SELECT id, event_id, endpoint_id, event_type, replay_count, batch_job_id, attempt_count FROM deliveries
   WHERE status = 'pending' AND COALESCE(next_attempt_at, updated_at) < $1::timestamptz AND (endpoint_id, id) > ($2::varchar, $3::varchar)
   ORDER BY endpoint_id, id LIMIT $4::int`;
const overdueDeliveries = statement<Overdue>('deliveries-overdue', OVERDUE_DELIVERIES_SQL);

export interface SweepDeps {
  pool: PgPool;
  deliveriesQueue: DeliveryQueues;
  schedule: readonly number[];
  logger: Logger;
}

/**
 * Invariant 9: no delivery stays `pending` without a job that will finish it. Finds overdue
 * pending deliveries with no live job (waiting, delayed, active, prioritized) under their batch
 * (while never attempted), their first send's job id or their latest replay's, and puts one back:
 * a failed job (it stalled too often) is retried with the attempts it has left; a missing or
 * completed one is added anew, a first send with what is left of its schedule after the attempts
 * on its row, a replay with the full schedule. Returns a sweeper to call on each scheduler tick;
 * it walks the overdue rows across ticks.
 */
export function createSweeper(deps: SweepDeps) {
  const { pool, deliveriesQueue: queue, schedule, logger } = deps;
  let cursor = ['', ''];

  async function putBack(d: Overdue): Promise<boolean> {
    const { ids, states, live } = await deliveryJobStates(queue, {
      eventId: d.event_id,
      endpointId: d.endpoint_id,
      replayCount: d.replay_count,
      batchJobId: d.batch_job_id,
      attemptCount: d.attempt_count,
    });
    if (live) return false;
    const latest = ids.at(-1)!;
    const job = await queue.getJob(latest);
    // The latest job's state is the last one read (getJobState of a missing job is 'unknown').
    if (job && states.at(-1) === 'failed') {
      // Its count of HTTP attempts stands (it failed for another reason, e.g. stalling too often):
      // the retry goes on with what is left of the schedule, not a new one.
      await job.retry('failed');
    } else {
      await job?.remove();
      const ids = { deliveryId: d.id, endpointId: d.endpoint_id, eventId: d.event_id };
      if (d.replay_count > 0) await queue.add(d.event_type, { ...ids, replay: true, replayCount: d.replay_count }, deliveryJobOptions(schedule, latest));
      // A first send goes on with what is left of its schedule (its attempts are on its row).
      else if (d.attempt_count > 0)
        await queue.add(d.event_type, { ...ids, priorAttempts: d.attempt_count }, deliveryRetryJobOptions(schedule, latest, d.attempt_count, 0));
      else await queue.add(d.event_type, ids, deliveryJobOptions(schedule, latest));
    }
    logger.warn(
      { delivery_id: d.id, event_id: d.event_id, endpoint_id: d.endpoint_id, job_id: latest, previous_state: states.at(-1) },
      'pending delivery had no live job: put back',
    );
    return true;
  }

  return async function sweep(now = new Date(), graceMs = SWEEP_GRACE_MS): Promise<{ checked: number; requeued: number }> {
    const before = new Date(now.getTime() - graceMs);
    let checked = 0;
    let requeued = 0;
    while (checked < SWEEP_MAX_PER_RUN) {
      const page = await overdueDeliveries(pool, [before, cursor[0], cursor[1], SWEEP_PAGE]);
      checked += page.length;
      for (const d of page) {
        try {
          if (await putBack(d)) requeued += 1;
        } catch (error) {
          // Raced with the worker or a replay (the job changed state meanwhile): the next run looks again.
          logger.warn({ delivery_id: d.id, err: error }, 'pending delivery not swept this time');
        }
      }
      if (page.length < SWEEP_PAGE) {
        cursor = ['', ''];
        break;
      }
      const last = page[page.length - 1];
      cursor = [last.endpoint_id, last.id];
    }
    return { checked, requeued };
  };
}
