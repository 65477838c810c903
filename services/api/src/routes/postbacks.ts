import { notFound, unavailable } from '@trackway/http';
import { RedisUnavailableError, failFast, findQueuedPostback } from '@trackway/queues';
import { Router } from 'express';
import type { ApiDeps } from '../deps';
import { prefixedId } from './params';

/**
 * A postback's outcome, so an advertiser can see why it did not count. Until the attribution
 * worker has written the outcome row, the job in Redis answers: "queued".
 */
export function postbacksRouter({ prisma, queues, redis }: ApiDeps): Router {
  const router = Router();
  router.get('/:id', async (req, res) => {
    const id = prefixedId(req.params.id, 'pb', 'Postback');
    const row = await prisma.postback.findUnique({ where: { id } });
    if (row) {
      res.json({
        id: row.id,
        status: row.status,
        reason: row.reason,
        conversion_id: row.conversionId,
        advertiser_id: row.advertiserId,
        params: row.params,
        // Parameters Trackway does not read, as sent: an integrator's mistake shows here.
        ignored_params: row.ignoredParams ?? {},
        received_at: row.receivedAt.toISOString(),
        processed_at: row.processedAt.toISOString(),
      });
      return;
    }
    const [found, state] = await failFast(redis, async () => {
      const queued = await findQueuedPostback(queues.postbacks, id);
      return [queued, queued ? await queued.job.getState() : undefined] as const;
    }).catch((error: unknown) => {
      if (error instanceof RedisUnavailableError) throw unavailable('Queued postbacks cannot be looked up right now; retry later.');
      throw error;
    });
    if (!found) throw notFound('Postback');
    const { job, postback } = found;
    res.json({
      id,
      status: 'queued',
      // Why it is still queued, when there is a reason: a failed attempt awaiting retry, or
      // retries exhausted (the job can be retried from Bull Board).
      reason: state === 'failed' ? 'processing_failed' : job.attemptsMade > 0 ? 'retrying' : null,
      conversion_id: null,
      advertiser_id: postback.advertiserId,
      ignored_params: postback.ignoredParams ?? {},
      received_at: postback.receivedAt,
      processed_at: null,
    });
  });
  return router;
}
