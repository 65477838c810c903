import type { DefaultJobOptions } from 'bullmq';
import type { QueueName } from './names';

const HOUR_S = 3600;
const DAY_S = 24 * HOUR_S;

// Completed jobs are kept for inspection in Bull Board, not for correctness: every job is
// idempotent by the ids in its payload (postback ids, event and endpoint ids, click ids), so a
// job run again, or published again by the outbox relay, changes nothing. Postback and event
// jobs carry up to 32 and 100 items, so their counts are jobs, not items.
export const RETENTION = {
  postbacksCompletedAge: DAY_S,
  postbacksCompletedCount: 10_000,
  eventsCompletedAge: HOUR_S,
  eventsCompletedCount: 1_000,
  clicksCompletedCount: 1_000,
  deliveriesCompletedAge: DAY_S,
  failedAge: 30 * DAY_S,
  maxKept: 100_000,
} as const;

/**
 * Postback and event jobs outlive a long database outage: exponential backoff from 1 s, capped
 * at 5 min, for about 40 hours of attempts. Payloads that can never succeed fail at once
 * (UnrecoverableError), so only transient failures use this.
 */
export const CAPPED_BACKOFF = 'capped-exponential';
const CAPPED_BACKOFF_MAX_MS = 5 * 60_000;
const DURABLE_ATTEMPTS = 500;

export function cappedExponentialDelay(attemptsMade: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, Math.min(attemptsMade - 1, 20)), CAPPED_BACKOFF_MAX_MS);
}

export const DEFAULT_JOB_OPTIONS = {
  postbacks: {
    attempts: DURABLE_ATTEMPTS,
    backoff: { type: CAPPED_BACKOFF },
    removeOnComplete: { age: RETENTION.postbacksCompletedAge, count: RETENTION.postbacksCompletedCount },
    removeOnFail: { age: RETENTION.failedAge },
  },
  clicks: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: { count: RETENTION.clicksCompletedCount },
    removeOnFail: { age: RETENTION.failedAge },
  },
  events: {
    attempts: DURABLE_ATTEMPTS,
    backoff: { type: CAPPED_BACKOFF },
    removeOnComplete: { age: RETENTION.eventsCompletedAge, count: RETENTION.eventsCompletedCount },
    removeOnFail: { age: RETENTION.failedAge },
  },
  deliveries: {
    // attempts and backoff come from DELIVERY_RETRY_SCHEDULE (see services/delivery).
    removeOnComplete: { age: RETENTION.deliveriesCompletedAge, count: RETENTION.maxKept },
    removeOnFail: { age: RETENTION.failedAge },
  },
  outbox: {
    attempts: 1,
    removeOnComplete: { count: 100 },
    removeOnFail: { count: 100 },
  },
  housekeeping: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 60_000 },
    removeOnComplete: { count: 100 },
    removeOnFail: { count: 100 },
  },
} satisfies Record<QueueName, DefaultJobOptions>;

/** The custom backoff type the delivery worker implements (the retry schedule, with jitter). */
export const DELIVERY_BACKOFF = 'webhook-schedule';

/**
 * Options for one delivery job: one attempt per entry of DELIVERY_RETRY_SCHEDULE, the first
 * after the schedule's first delay (normally 0), later ones by the worker's backoff strategy.
 */
export function deliveryJobOptions(schedule: readonly number[], jobId: string) {
  return { jobId, attempts: Math.max(1, schedule.length), delay: schedule[0] ?? 0, backoff: { type: DELIVERY_BACKOFF } };
}

/**
 * A delivery's retry after an attempt made in a batch: its schedule goes on from the attempts
 * made (`priorAttempts`, carried in the job), after the delay its last attempt decided.
 */
export function deliveryRetryJobOptions(schedule: readonly number[], jobId: string, priorAttempts: number, delayMs: number) {
  return { jobId, attempts: Math.max(1, schedule.length - priorAttempts), delay: delayMs, backoff: { type: DELIVERY_BACKOFF } };
}

/**
 * The first attempts of several deliveries to one endpoint (fanned out together) travel in one
 * job: named after its first delivery, and written on each delivery's row (batch_job_id).
 */
export const deliveryBatchJobId = (firstDeliveryId: string) => `${firstDeliveryId}-batch`;

/** The first delivery of an event to an endpoint: fanning out twice finds the same job. */
export const deliveryJobId = (eventId: string, endpointId: string) => `${eventId}-${endpointId}`;
/**
 * A replay (retry or recover) is a new job for the same delivery (same webhook-id). Its id
 * carries the delivery's replay count: unique per replay (a replay that ended without an
 * attempt does not make the next one a no-op) and stable for one request (no double send).
 */
export const replayJobId = (eventId: string, endpointId: string, replayCount: number) => `${eventId}-${endpointId}-replay-${replayCount}`;

/** Job states in which a job will still run: a delivery with such a job is not stranded. */
export const LIVE_JOB_STATES: ReadonlySet<string> = new Set(['waiting', 'delayed', 'active', 'prioritized', 'waiting-children']);

/**
 * The jobs a delivery may be queued under — the batch that carries its first attempt while it has
 * none (a batch never sends an attempted delivery again), its own first send (or retry), then its
 * latest replay — with their states, in that order; `live` when one of them is still queued or
 * running.
 */
export async function deliveryJobStates(
  queue: { getJobState(id: string): Promise<string> },
  delivery: { eventId: string; endpointId: string; replayCount: number; batchJobId: string | null; attemptCount: number },
): Promise<{ ids: string[]; states: string[]; live: boolean }> {
  const { eventId, endpointId, replayCount, batchJobId, attemptCount } = delivery;
  const ids = [
    ...(batchJobId && attemptCount === 0 ? [batchJobId] : []),
    deliveryJobId(eventId, endpointId),
    ...(replayCount > 0 ? [replayJobId(eventId, endpointId, replayCount)] : []),
  ];
  const states = await Promise.all(ids.map((id) => queue.getJobState(id)));
  return { ids, states, live: states.some((state) => LIVE_JOB_STATES.has(state)) };
}
