import { newId } from './ids';

export const EVENT_TYPES = [
  'conversion.created',
  'conversion.approved',
  'conversion.rejected',
  'conversion.updated',
  'commission.created',
  'commission.updated',
  'fraud.flagged',
  'payout.sent',
  'endpoint.disabled',
  'webhook.test',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface EventEnvelope<T = Record<string, unknown>> {
  id: string;
  type: EventType;
  timestamp: string;
  data: T;
}

/** A new event: its id is fixed here and never changes across retries and replays. */
export function createEvent<T extends Record<string, unknown>>(type: EventType, data: T, at = new Date()): EventEnvelope<T> {
  return { id: newId('event'), type, timestamp: at.toISOString(), data };
}
