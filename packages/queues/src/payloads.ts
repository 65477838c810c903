import { type Job, UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { CONVERSION_STATUSES, EVENT_TYPES, MONEY_PATTERN } from '@trackway/domain';
import type { QueueName } from './names';

// Job payloads only widen: a job a previous version enqueued (a postback answered 202 before a
// rolling deploy) must still parse in the next one. So the one-item shapes of earlier versions
// stay accepted beside the many-item shapes producers write now, and parse to the latter.

/** How many items one job carries at most (ingest coalesces one event-loop turn into one job). */
export const JOB_BATCH = {
  /** Bounded by the postback id block (see newIdBlock): the ids of one job share a prefix. */
  postbacks: 32,
  clicks: 256,
  events: 100,
  /** First attempts of one endpoint's deliveries in one job (deliveryBatchJobSchema). */
  deliveries: 100,
} as const;

/** The postback job's shape version: from 2 on, an amount in it was sent (absent: none was). */
export const POSTBACK_JOB_VERSION = 2 as const;

export const postbackJobSchema = z.object({
  postbackId: z.string().regex(/^pb_[0-9A-Z]{26}$/),
  /**
   * POSTBACK_JOB_VERSION, set by ingest. Absent in jobs of earlier versions, whose amount is 0
   * when none was sent, and whose ignored parameters were not redacted: the worker reads those
   * as such (an amount of 0 as none, secrets by their shape).
   */
  v: z.literal(POSTBACK_JOB_VERSION).optional(),
  advertiserId: z.number().int().positive(),
  receivedAt: z.iso.datetime(),
  clickId: z.string().min(1).max(64),
  orderId: z.string().min(1).max(255),
  /** Normalized (lower case) by ingest; a job from an earlier version may carry another case, normalized where it is read. */
  event: z.string().min(1).max(64),
  /** The event as the advertiser sent it, when that differs from `event` (the postback's params keep it). */
  eventAsSent: z.string().min(1).max(64).optional(),
  /** Absent when the postback carried no amount: it then changes no amount. */
  amount: z.string().regex(MONEY_PATTERN).optional(),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/)
    .optional(),
  status: z.enum(CONVERSION_STATUSES),
  /** Parameters the postback carried that Trackway does not read, as sent (kept on the postback). */
  ignoredParams: z.record(z.string(), z.unknown()).optional(),
  /** Set by attribution when it first put the postback back to wait for its click row (waitsForClickRow). */
  clickWaitSince: z.iso.datetime().optional(),
});
/** One postback, as ingest accepted it. */
export type PostbackJob = z.infer<typeof postbackJobSchema>;

const sub = z.string().max(255).optional();
export const clickJobSchema = z.object({
  clickId: z.string().min(1).max(64),
  offerId: z.number().int().positive(),
  affiliateId: z.number().int().positive(),
  clickedAt: z.iso.datetime(),
  subs: z.object({ sub1: sub, sub2: sub, sub3: sub, sub4: sub, sub5: sub }),
  ip: z.string().max(45).optional(),
  userAgent: z.string().max(512).optional(),
});
/** One click, for the reporting table. */
export type ClickJob = z.infer<typeof clickJobSchema>;

export const eventJobSchema = z.object({
  id: z.string().regex(/^evt_[0-9A-Z]{26}$/),
  type: z.enum(EVENT_TYPES),
  timestamp: z.iso.datetime(),
  data: z.record(z.string(), z.unknown()),
});
/** One event envelope (its id is the receivers' idempotency key). */
export type EventJob = z.infer<typeof eventJobSchema>;

/** An attempt made whose record could not be written yet: carried in its job, recorded on the next run. */
const unrecordedAttempt = z.object({
  key: z.string().min(1).max(200),
  at: z.iso.datetime(),
  durationMs: z.number().int().min(0),
  statusCode: z.number().int().nullable(),
  error: z.string().max(64).nullable(),
  responseBody: z.string().max(4096).nullable(),
  retryAfterMs: z.number().int().min(0).nullable(),
});

export const deliveryJobSchema = z.object({
  deliveryId: z.string().regex(/^dlv_[0-9A-Z]{26}$/),
  endpointId: z.string().regex(/^(ep|pp)_[0-9A-Z]{26}$/),
  eventId: z.string().regex(/^evt_[0-9A-Z]{26}$/),
  /** A replay (retry/recover) sends even if an earlier job already settled the delivery. */
  replay: z.boolean().optional(),
  /** Which replay this job is (the delivery's replay_count when it was requested); 0 = the first send. */
  replayCount: z.number().int().min(0).optional(),
  /** Attempts the delivery had before this job (a retry after its first attempt, made in a batch). */
  priorAttempts: z.number().int().min(0).optional(),
  /**
   * An attempt this job made whose record could not be written (Postgres down, or the worker
   * shutting down meanwhile): the next run records it instead of sending the request again.
   */
  unrecorded: unrecordedAttempt.optional(),
});
export type DeliveryJob = z.infer<typeof deliveryJobSchema>;

/**
 * The first attempts of several deliveries to one endpoint (deliveryBatchJobId). Each is sent
 * at most once by the job: a run again skips every delivery already attempted; a failed one is
 * retried by a job of its own (deliveryJobId, priorAttempts 1).
 */
export const deliveryBatchJobSchema = z.object({
  endpointId: deliveryJobSchema.shape.endpointId,
  deliveries: z
    .array(z.object({ deliveryId: deliveryJobSchema.shape.deliveryId, eventId: deliveryJobSchema.shape.eventId, unrecorded: unrecordedAttempt.optional() }))
    .min(1)
    .max(JOB_BATCH.deliveries),
});
export type DeliveryBatchJob = z.infer<typeof deliveryBatchJobSchema>;

// Scheduler jobs are produced by BullMQ job schedulers, by name, with an empty payload.
export const scheduledJobSchema = z.object({}).passthrough();
export type ScheduledJob = z.infer<typeof scheduledJobSchema>;

/** A list of items, or (from an earlier version) a single item, parsed to the list. */
const many = <S extends z.ZodObject, K extends string>(key: K, item: S, max: number) =>
  z.union([
    z.object({ [key]: z.array(item).min(1).max(max) } as { [P in K]: z.ZodArray<S> }),
    item.transform((one) => ({ [key]: [one] }) as { [P in K]: z.output<S>[] }),
  ]);

export const JOB_SCHEMAS = {
  postbacks: many('postbacks', postbackJobSchema, JOB_BATCH.postbacks),
  clicks: many('clicks', clickJobSchema, JOB_BATCH.clicks),
  events: many('events', eventJobSchema, JOB_BATCH.events),
  deliveries: z.union([deliveryJobSchema, deliveryBatchJobSchema]),
  outbox: scheduledJobSchema,
  housekeeping: scheduledJobSchema,
} satisfies Record<QueueName, z.ZodType>;

/** What producers enqueue on each queue. */
export interface JobPayloads {
  postbacks: { postbacks: PostbackJob[] };
  clicks: { clicks: ClickJob[] };
  events: { events: EventJob[] };
  deliveries: DeliveryJob | DeliveryBatchJob;
  outbox: ScheduledJob;
  housekeeping: ScheduledJob;
}

/**
 * A job's payload, parsed with its queue's schema where it enters the worker. A payload that
 * can never succeed fails at once: BullMQ does not retry an UnrecoverableError.
 */
export function parseJob<N extends QueueName>(queue: N, job: Job): JobPayloads[N] {
  const result = JOB_SCHEMAS[queue].safeParse(job.data);
  if (!result.success)
    throw new UnrecoverableError(`invalid ${queue} payload: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return result.data as JobPayloads[N];
}

/** Splits a list into chunks of at most `size` (one job each). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}
