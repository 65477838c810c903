import { notFound, unavailable } from '@trackway/http';
import { RedisUnavailableError, failFast, findQueuedPostback } from '@trackway/queues';
import { prefixedIdPath } from '../path-params';
import { Postback, postbackJson, queuedPostbackJson } from '../representations';
import { ERRORS, resource, route } from '../route';

export default resource({ tag: 'Postbacks', base: '/v1/postbacks', description: 'The outcome of each postback ingest accepted: why it counted, or did not.' }, [
  route({
    method: 'get',
    path: '/v1/postbacks/{id}',
    summary: "Get a postback's outcome",
    description: 'queued until the attribution worker has processed it (the job in Redis answers until then).',
    params: prefixedIdPath('postback', 'Postback'),
    answer: { status: 200, description: 'The outcome.', schema: Postback },
    errors: { 503: ERRORS[503] },
    handler: async ({ params, deps }) => {
      const row = await deps.prisma.postback.findUnique({ where: { id: params.id } });
      if (row) return postbackJson(row);
      const [found, state] = await failFast(deps.redis, async () => {
        const queued = await findQueuedPostback([deps.queues.postbacks, ...(deps.olderPostbacks ? [deps.olderPostbacks] : [])], params.id);
        return [queued, queued ? await queued.job.getState() : undefined] as const;
      }).catch((error: unknown) => {
        if (error instanceof RedisUnavailableError) throw unavailable('Queued postbacks cannot be looked up right now; retry later.');
        throw error;
      });
      if (!found) throw notFound('Postback');
      // Why it is still queued, when there is a reason: a failed attempt awaiting retry, or
      // retries exhausted (the job can be retried from Bull Board).
      return queuedPostbackJson(params.id, found.postback, state === 'failed' ? 'processing_failed' : found.job.attemptsMade > 0 ? 'retrying' : null);
    },
  }),
]);
