import type { Tx } from '@trackway/db';
import { type EventEnvelope, createEvent, endpointJson } from '@trackway/domain';

/**
 * Disables an endpoint (410 Gone, or failing for DELIVERY_DISABLE_AFTER) and returns the
 * `endpoint.disabled` event to write in the same transaction; nothing if it was already off.
 */
export async function disableEndpoint(tx: Tx, endpointId: string, reason: string, now: Date): Promise<EventEnvelope[]> {
  const { count } = await tx.webhookEndpoint.updateMany({ where: { id: endpointId, enabled: true }, data: { enabled: false, disabledReason: reason, updatedAt: now } });
  if (count === 0) return [];
  const endpoint = await tx.webhookEndpoint.findUniqueOrThrow({ where: { id: endpointId } });
  return [createEvent('endpoint.disabled', { endpoint: endpointJson(endpoint) }, now)];
}
