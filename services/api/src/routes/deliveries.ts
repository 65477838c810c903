import { HttpError, notFound } from '@trackway/http';
import { Router } from 'express';
import type { ApiDeps } from '../deps';
import { prefixedId } from './params';
import { deliveryJson, replayDeliveries } from './webhook-endpoints';

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
    const d = await load(req.params.id);
    res.json({
      ...deliveryJson(d),
      attempts: d.attempts.map((a) => ({
        number: a.number,
        at: a.at.toISOString(),
        duration_ms: a.durationMs,
        status_code: a.statusCode,
        error: a.error,
        response_body: a.responseBody,
      })),
    });
  });

  router.post('/:id/retry', async (req, res) => {
    const d = await load(req.params.id);
    if (d.status === 'pending') throw new HttpError(409, 'delivery_pending', 'The delivery is still pending; it will be attempted on its schedule.');
    if (!d.endpoint.enabled) throw new HttpError(409, 'endpoint_disabled', 'Enable the endpoint before retrying its deliveries.');
    await replayDeliveries(deps, [d]);
    res.status(202).json({ id: d.id, status: 'pending' });
  });

  return router;
}
