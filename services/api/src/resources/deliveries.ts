import { HttpError, notFound, unavailable } from '@trackway/http';
import { deliveryJobStates, failFast } from '@trackway/queues';
import type { ApiDeps } from '../deps';
import { prefixedIdPath } from '../path-params';
import { DeliveryRetried, DeliveryWithAttempts, deliveryWithAttemptsJson } from '../representations';
import { ERRORS, resource, route } from '../route';
import { disabled } from './webhook-endpoints';
import { replayDeliveries } from '../replay';

const id = prefixedIdPath('delivery', 'Delivery');

async function load(deps: ApiDeps, deliveryId: string) {
  const delivery = await deps.prisma.delivery.findUnique({
    where: { id: deliveryId },
    include: { attempts: { orderBy: { number: 'asc' } }, endpoint: { select: { enabled: true } } },
  });
  // A delivery whose endpoint is gone (one a fan-out wrote while the endpoint was being deleted) is gone too.
  if (!delivery?.endpoint) throw notFound('Delivery');
  return delivery;
}

/** Is a job for this delivery still queued or running (its first send, or its latest replay)? */
async function liveJob(deps: ApiDeps, d: { eventId: string; endpointId: string; replayCount: number; batchJobId: string | null; attemptCount: number }) {
  const { live } = await failFast(deps.redis, () => deliveryJobStates(deps.queues.deliveries, d)).catch(() => {
    throw unavailable('The queue cannot be checked right now; retry later.');
  });
  return live;
}

/**
 * Replays one delivery (same event and webhook-id, the full retry schedule), as
 * POST /v1/deliveries/{id}/retry and the console do: 409 while its endpoint is disabled or a job
 * for it is still live.
 */
export async function retryDelivery(deps: ApiDeps, deliveryId: string) {
  const d = await load(deps, deliveryId);
  if (!d.endpoint.enabled) throw disabled('retrying its deliveries');
  if (d.status === 'pending') {
    if (await liveJob(deps, d)) throw new HttpError(409, 'delivery_pending', 'The delivery is still pending; it will be attempted on its schedule.');
    // Pending with no job left (its worker crashed past the stall limit): settle it, then replay.
    await deps.prisma.delivery.updateMany({
      where: { id: d.id, status: 'pending', replayCount: d.replayCount },
      data: { status: 'failed', nextAttemptAt: null },
    });
  }
  if ((await replayDeliveries(deps, [d.id], { replayCount: d.replayCount })) === 0) {
    // Gone since it was read (retention dropped its day, its endpoint was deleted): 404, as a read now answers.
    await load(deps, d.id);
    throw new HttpError(409, 'delivery_pending', 'A replay of this delivery was just requested.');
  }
  return { id: d.id, status: 'pending' as const };
}

export default resource(
  { tag: 'Deliveries', base: '/v1/deliveries', description: 'One event sent to one webhook endpoint or partner postback: its attempts, and replays.' },
  [
    route({
      method: 'get',
      path: '/v1/deliveries/{id}',
      summary: 'Get a delivery and its attempts',
      description: 'Every attempt, oldest first, with the HTTP status or the error.',
      params: id,
      answer: { status: 200, description: 'The delivery.', schema: DeliveryWithAttempts },
      handler: async ({ params, deps }) => deliveryWithAttemptsJson(await load(deps, params.id)),
    }),
    route({
      method: 'post',
      path: '/v1/deliveries/{id}/retry',
      summary: 'Replay a delivery',
      description: 'The same event and webhook-id, with the full retry schedule.',
      params: id,
      answer: { status: 202, description: 'Queued again.', schema: DeliveryRetried },
      errors: { 409: 'endpoint_disabled or delivery_pending.', 503: ERRORS[503] },
      handler: ({ params, deps }) => retryDelivery(deps, params.id),
    }),
  ],
);
