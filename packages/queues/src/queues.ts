import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE, QUEUE_NAMES, type QueueName } from './names';
import { DEFAULT_JOB_OPTIONS } from './options';
import { idBlockOf } from '@trackway/domain';
import { JOB_SCHEMAS, type JobPayloads } from './payloads';

export type TypedQueue<N extends QueueName> = Queue<JobPayloads[N], unknown, string>;
export type Queues = { [N in QueueName]: TypedQueue<N> };

/** Where a queue's errors go (a Redis outage): one structured line, not BullMQ's console dump. */
export type QueueErrorSink = (context: Record<string, unknown>, error: unknown, message: string) => void;

export function createQueue<N extends QueueName>(name: N, connection: Redis, prefix: string, onError: QueueErrorSink): TypedQueue<N> {
  const queue = new Queue<JobPayloads[N], unknown, string>(name, {
    connection,
    prefix,
    defaultJobOptions: DEFAULT_JOB_OPTIONS[name],
  });
  // Without an 'error' listener BullMQ prints every connection error with console.error.
  queue.on('error', (error) => onError({ queue: name }, error, 'queue error'));
  return queue;
}

export function createQueues(connection: Redis, prefix: string, onError: QueueErrorSink): Queues {
  return Object.fromEntries(QUEUE_NAMES.map((name) => [name, createQueue(name, connection, prefix, onError)])) as unknown as Queues;
}

export { QUEUE };

/**
 * The queued job that carries a postback, and the postback in it: ingest puts the postbacks of
 * one event-loop turn into one job whose id is their id block (see newIdBlock); jobs of earlier
 * versions carry one postback under its own id.
 */
export async function findQueuedPostback(queue: TypedQueue<'postbacks'>, postbackId: string) {
  for (const jobId of new Set([idBlockOf(postbackId), postbackId])) {
    const job = await queue.getJob(jobId);
    if (!job) continue;
    const parsed = JOB_SCHEMAS.postbacks.safeParse(job.data);
    const postback = parsed.success ? parsed.data.postbacks.find((p) => p.postbackId === postbackId) : undefined;
    if (postback) return { job, postback };
  }
  return null;
}

type BulkJobs<N extends QueueName> = Parameters<TypedQueue<N>['addBulk']>[0];

/**
 * `addBulk`, except for a single job: addBulk builds an ioredis pipeline (a MULTI, and a copy
 * of BullMQ's script table per pipeline), which costs more than the job itself when the load is
 * light and a turn holds one job. One job is one plain EVALSHA.
 */
export async function addJobs<N extends QueueName>(queue: TypedQueue<N>, jobs: BulkJobs<N>): Promise<void> {
  if (jobs.length === 0) return;
  if (jobs.length === 1) {
    const [{ name, data, opts }] = jobs;
    await queue.add(name as never, data as never, opts);
    return;
  }
  await queue.addBulk(jobs);
}
