import { notFound, unavailable } from '@trackway/http';
import { RedisUnavailableError, failFast, findQueuedPostback } from '@trackway/queues';
import { Router } from 'express';
import type { ApiDeps } from '../deps';
import { postbackJson, queuedPostbackJson } from '../representations';
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
      res.json(postbackJson(row));
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
    // Why it is still queued, when there is a reason: a failed attempt awaiting retry, or
    // retries exhausted (the job can be retried from Bull Board).
    res.json(queuedPostbackJson(id, postback, state === 'failed' ? 'processing_failed' : job.attemptsMade > 0 ? 'retrying' : null));
  });
  return router;
}
