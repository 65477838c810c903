import { type Job, UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { CONVERSION_STATUSES, EVENT_TYPES, MONEY_PATTERN } from '@trackway/domain';
import type { QueueName } from './names';

export const postbackJobSchema = z.object({
  postbackId: z.string().regex(/^pb_[0-9A-Z]{26}$/),
  advertiserId: z.number().int().positive(),
  receivedAt: z.iso.datetime(),
  clickId: z.string().min(1).max(64),
  orderId: z.string().min(1).max(255),
  event: z.string().min(1).max(64),
  amount: z.string().regex(MONEY_PATTERN),
  currency: z.string().regex(/^[A-Z]{3}$/).optional(),
  status: z.enum(CONVERSION_STATUSES),
});
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
export type ClickJob = z.infer<typeof clickJobSchema>;

export const eventJobSchema = z.object({
  id: z.string().regex(/^evt_[0-9A-Z]{26}$/),
  type: z.enum(EVENT_TYPES),
  timestamp: z.iso.datetime(),
  data: z.record(z.string(), z.unknown()),
});
export type EventJob = z.infer<typeof eventJobSchema>;

export const deliveryJobSchema = z.object({
  deliveryId: z.string().regex(/^dlv_[0-9A-Z]{26}$/),
  endpointId: z.string().regex(/^ep_[0-9A-Z]{26}$/),
  eventId: z.string().regex(/^evt_[0-9A-Z]{26}$/),
  /** A replay (retry/recover) sends even if an earlier job already settled the delivery. */
  replay: z.boolean().optional(),
  /** Which replay this job is (the delivery's replay_count when it was requested); 0 = the first send. */
  replayCount: z.number().int().min(0).optional(),
});
export type DeliveryJob = z.infer<typeof deliveryJobSchema>;

// Scheduler jobs are produced by BullMQ job schedulers, by name, with an empty payload.
export const scheduledJobSchema = z.object({}).passthrough();
export type ScheduledJob = z.infer<typeof scheduledJobSchema>;

export const JOB_SCHEMAS = {
  postbacks: postbackJobSchema,
  clicks: clickJobSchema,
  events: eventJobSchema,
  deliveries: deliveryJobSchema,
  outbox: scheduledJobSchema,
  housekeeping: scheduledJobSchema,
} satisfies Record<QueueName, z.ZodType>;

export interface JobPayloads {
  postbacks: PostbackJob;
  clicks: ClickJob;
  events: EventJob;
  deliveries: DeliveryJob;
  outbox: ScheduledJob;
  housekeeping: ScheduledJob;
}

/**
 * A job's payload, parsed with its queue's schema where it enters the worker. A payload that
 * can never succeed fails at once: BullMQ does not retry an UnrecoverableError.
 */
export function parseJob<N extends QueueName>(queue: N, job: Job): JobPayloads[N] {
  const result = JOB_SCHEMAS[queue].safeParse(job.data);
  if (!result.success) throw new UnrecoverableError(`invalid ${queue} payload: ${result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return result.data as JobPayloads[N];
}
