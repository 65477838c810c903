import { HttpError, notFound, unavailable } from '@trackway/http';
import { deliveryJobStates, failFast } from '@trackway/queues';
import { Router } from 'express';
import type { ApiDeps } from '../deps';
import { prefixedId } from './params';
import { deliveryWithAttemptsJson } from '../representations';
import { replayDeliveries } from './webhook-endpoints';

export function deliveriesRouter(deps: ApiDeps): Router {
  const router = Router();
  const load = async (id: string) => {
    const delivery = await deps.prisma.delivery.findUnique({
      where: { id: prefixedId(id, 'dlv', 'Delivery') },
      include: { attempts: { orderBy: { number: 'asc' } }, endpoint: { select: { enabled: true } } },
    });
    if (!delivery) throw notFound('Delivery');
    return delivery;
  };

  router.get('/:id', async (req, res) => {
    res.json(deliveryWithAttemptsJson(await load(req.params.id)));
  });

  // Is a job for this delivery still queued or running (its first send, or its latest replay)?
  const liveJob = async (d: { eventId: string; endpointId: string; replayCount: number }) => {
    const { live } = await failFast(deps.redis, () => deliveryJobStates(deps.queues.deliveries, d.eventId, d.endpointId, d.replayCount)).catch(() => {
      throw unavailable('The queue cannot be checked right now; retry later.');
    });
    return live;
  };

  router.post('/:id/retry', async (req, res) => {
    const d = await load(req.params.id);
    if (!d.endpoint.enabled) throw new HttpError(409, 'endpoint_disabled', 'Enable the endpoint before retrying its deliveries.');
    if (d.status === 'pending') {
      if (await liveJob(d)) throw new HttpError(409, 'delivery_pending', 'The delivery is still pending; it will be attempted on its schedule.');
      // Pending with no job left (its worker crashed past the stall limit): settle it, then replay.
      await deps.prisma.delivery.updateMany({
        where: { id: d.id, status: 'pending', replayCount: d.replayCount },
        data: { status: 'failed', nextAttemptAt: null },
      });
    }
    if ((await replayDeliveries(deps, [d.id])) === 0) throw new HttpError(409, 'delivery_pending', 'A replay of this delivery was just requested.');
    res.status(202).json({ id: d.id, status: 'pending' });
  });

  return router;
}
