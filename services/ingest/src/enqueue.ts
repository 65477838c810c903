import { ID_BLOCK_SIZE, newIdBlock } from '@trackway/domain';
import {
  type ClickJob,
  JOB_BATCH,
  POSTBACK_JOB_VERSION,
  type PostbackJob,
  RedisUnavailableError,
  type TypedQueue,
  addJobs,
  chunk,
  failFast,
  waitForReplicas,
} from '@trackway/queues';
import { MicroBatcher } from '@trackway/runtime';
import type { Redis } from 'ioredis';

export type AcceptedPostback = Omit<PostbackJob, 'postbackId'>;

/** How long a postback's answer waits for its job to reach REDIS_WAIT_REPLICAS replicas (within failFast's 2 s). */
export const REPLICA_WAIT_MS = 1_000;

/**
 * Enqueues what the requests of one event-loop turn accepted as few jobs as possible: one
 * Redis round trip (one `addBulk`) for all of them instead of one per request. Each request
 * still answers only once its own job is in Redis (invariant 1), or 503 if it is not.
 * `replicas` (REDIS_WAIT_REPLICAS): a postback is answered 202 only once its job has reached that
 * many replicas of its master (Redis WAIT), so a failover (the master lost, a replica promoted)
 * loses no acknowledged postback; fewer in time, and it is answered 503 (its job may still run:
 * the advertiser's retry is then a duplicate postback, which changes nothing).
 */
export function createEnqueuers(deps: { redis: Redis; queues: { postbacks: TypedQueue<'postbacks'>; clicks: TypedQueue<'clicks'> }; replicas?: number }) {
  const { redis, queues } = deps;
  const replicas = deps.replicas ?? 0;
  // Postback ids are minted per job, in blocks (newIdBlock): every id names its job, so the
  // API finds a queued postback without an index, and a job holds at most one block.
  const postbacks = new MicroBatcher<AcceptedPostback, string>(
    async (accepted) => {
      const jobs = chunk(accepted, Math.min(JOB_BATCH.postbacks, ID_BLOCK_SIZE)).map((list) => {
        const block = newIdBlock('postback');
        return { jobId: block.id, postbacks: list.map((p, i) => ({ postbackId: block.member(i), v: POSTBACK_JOB_VERSION, ...p })) };
      });
      await failFast(redis, async () => {
        await addJobs(
          queues.postbacks,
          jobs.map(({ jobId, postbacks }) => ({ name: 'postbacks', data: { postbacks }, opts: { jobId } })),
        );
        if (replicas === 0) return;
        const acked = await waitForReplicas(redis, queues.postbacks, replicas, REPLICA_WAIT_MS);
        if (acked < replicas) throw new RedisUnavailableError(`the postbacks reached ${acked} of ${replicas} replica(s) in ${REPLICA_WAIT_MS} ms`);
      });
      return jobs.flatMap((job) => job.postbacks.map((p) => ({ ok: true as const, value: p.postbackId })));
    },
    // Every turn's postbacks go out at the end of that turn, whatever is still in flight
    // (ioredis pipelines them on the connection): a request never waits behind another turn's
    // enqueue, so a hung Redis answers each one 503 after failFast's own deadline.
    { maxSize: JOB_BATCH.postbacks * 16, maxWaitMs: 0, maxInFlight: Number.POSITIVE_INFINITY },
  );
  const clicks = new MicroBatcher<ClickJob, void>(
    async (list) => {
      await failFast(redis, () =>
        addJobs(
          queues.clicks,
          chunk(list, JOB_BATCH.clicks).map((part) => ({ name: 'clicks', data: { clicks: part } })),
        ),
      );
      return list.map(() => ({ ok: true as const, value: undefined }));
    },
    { maxSize: JOB_BATCH.clicks * 4, maxWaitMs: 0, maxInFlight: Number.POSITIVE_INFINITY },
  );
  return {
    /** Resolves with the postback's id once its job is in Redis. */
    postback: (accepted: AcceptedPostback) => postbacks.add(accepted),
    click: (click: ClickJob) => clicks.add(click),
  };
}
