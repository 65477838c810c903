import { randomUUID } from 'node:crypto';
import type { DefaultJobOptions } from 'bullmq';
import type { QueueName } from './names';

const HOUR_S = 3600;
const DAY_S = 24 * HOUR_S;

// Completed jobs are kept long enough that a re-add with the same job id (a retried postback
// enqueue, an outbox relay pass) is ignored by BullMQ instead of running again.
export const RETENTION = {
  postbacksCompletedAge: DAY_S,
  eventsCompletedAge: 7 * DAY_S,
  clicksCompletedCount: 1_000,
  deliveriesCompletedAge: DAY_S,
  failedAge: 30 * DAY_S,
  maxKept: 100_000,
} as const;

export const DEFAULT_JOB_OPTIONS = {
  postbacks: {
    attempts: 12,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: { age: RETENTION.postbacksCompletedAge, count: RETENTION.maxKept },
    removeOnFail: { age: RETENTION.failedAge },
  },
  clicks: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: { count: RETENTION.clicksCompletedCount },
    removeOnFail: { age: RETENTION.failedAge },
  },
  events: {
    attempts: 12,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: { age: RETENTION.eventsCompletedAge, count: RETENTION.maxKept },
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

/** The first delivery of an event to an endpoint: fanning out twice finds the same job. */
export const deliveryJobId = (eventId: string, endpointId: string) => `${eventId}-${endpointId}`;
/**
 * A replay (retry or recover) is a new job for the same delivery (same webhook-id), with a job
 * id of its own: a replay that ended without an attempt must not make the next one a no-op.
 */
export const replayJobId = (eventId: string, endpointId: string) => `${eventId}-${endpointId}-replay-${randomUUID()}`;
