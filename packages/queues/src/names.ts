// Every queue Trackway uses, in one place: producers and consumers cannot disagree on a name.
export const QUEUE = {
  postbacks: 'postbacks',
  clicks: 'clicks',
  events: 'events',
  deliveries: 'deliveries',
  // Job schedulers: the outbox relay (consumed by attribution) and log pruning (by delivery).
  outbox: 'outbox',
  housekeeping: 'housekeeping',
} as const;

export type QueueName = (typeof QUEUE)[keyof typeof QUEUE];
export const QUEUE_NAMES = Object.values(QUEUE) as QueueName[];
