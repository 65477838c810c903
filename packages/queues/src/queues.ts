import { type Job, type JobType, type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { idBlockOf } from '@trackway/domain';
import { DELIVERY_QUEUE_SHARDS_MAX, deliveryShardName, deliveryShardOf, queueKeyPrefix } from './layout';
import { QUEUE, QUEUE_NAMES, type QueueName } from './names';
import { DEFAULT_JOB_OPTIONS, LIVE_JOB_STATES } from './options';
import { JOB_SCHEMAS, type JobPayloads } from './payloads';

export type TypedQueue<N extends QueueName> = Queue<JobPayloads[N], unknown, string>;
export type Queues = { [N in Exclude<QueueName, 'deliveries'>]: TypedQueue<N> } & { deliveries: DeliveryQueues };

/** Where a queue's errors go (a Redis outage): one structured line, not BullMQ's console dump. */
export type QueueErrorSink = (context: Record<string, unknown>, error: unknown, message: string) => void;

function bullQueue<N extends QueueName>(name: N, bullName: string, connection: Redis, bullPrefix: string, onError: QueueErrorSink): TypedQueue<N> {
  const queue = new Queue<JobPayloads[N], unknown, string>(bullName, { connection, prefix: bullPrefix, defaultJobOptions: DEFAULT_JOB_OPTIONS[name] });
  // Without an 'error' listener BullMQ prints every connection error with console.error.
  queue.on('error', (error) => onError({ queue: bullName }, error, 'queue error'));
  return queue;
}

/**
 * One queue under QUEUE_PREFIX (`prefix`), on its own hash tag (layout.ts); `shard` picks a
 * delivery shard (`deliveries-<shard>`) of the deliveries queue.
 */
export function createQueue<N extends QueueName>(name: N, connection: Redis, prefix: string, onError: QueueErrorSink, shard = 0): TypedQueue<N> {
  const bullName = name === QUEUE.deliveries ? deliveryShardName(shard) : name;
  return bullQueue(name, bullName, connection, queueKeyPrefix(prefix, bullName), onError);
}

/**
 * The same queue in the layout before queues had hash tags of their own: every queue under
 * QUEUE_PREFIX itself (`{trackway}:postbacks:…`). Read and drained after an upgrade (drain.ts).
 */
export function createOldLayoutQueue<N extends QueueName>(name: N, connection: Redis, prefix: string, onError: QueueErrorSink): TypedQueue<N> {
  return bullQueue(name, name, connection, prefix, onError);
}

/** The states in which a queue still holds work: a queue with none of them is drained. */
export const UNFINISHED_STATES = ['waiting', 'delayed', 'active', 'prioritized', 'waiting-children', 'failed'] as const;

/** Whether a queue holds a job that may still run (or be retried), or a job scheduler. */
export async function holdsWork(queue: Queue): Promise<boolean> {
  const counts = await queue.getJobCounts(...UNFINISHED_STATES);
  if (Object.values(counts).some((n) => n > 0)) return true;
  return (await queue.getJobSchedulersCount()) > 0;
}

type DeliveryPayload = JobPayloads['deliveries'];
type DeliveryQueue = TypedQueue<'deliveries'>;

/**
 * The deliveries queue, split into DELIVERY_QUEUE_SHARDS shards by endpoint (deliveryShardOf):
 * an endpoint's jobs are added to its shard. Read like one queue: a job is looked for in every
 * shard, and in the queues of an older layout still being drained (a lower or higher count, the
 * layout before hash tags), where a job queued before the change may still wait.
 */
export interface DeliveryQueues {
  readonly name: 'deliveries';
  /** QUEUE_PREFIX. */
  readonly prefix: string;
  /** Shard k at index k. */
  readonly shards: readonly DeliveryQueue[];
  /** Queues of an older layout that held jobs when last looked (findOldDeliveryQueues): consumed and searched. */
  readonly draining: DeliveryQueue[];
  /** The shard an endpoint's jobs go to. */
  of(endpointId: string): DeliveryQueue;
  /** Shards, then draining queues. */
  all(): DeliveryQueue[];
  /**
   * Adds to the endpoint's shard, unless a job with that id is in another queue (a count changed,
   * an upgrade): a job id names one run wherever it is, as it does within a queue.
   */
  add(name: string, data: DeliveryPayload, opts?: JobsOptions): Promise<void>;
  addBulk(jobs: Array<{ name: string; data: DeliveryPayload; opts?: JobsOptions }>): Promise<void>;
  /** The job under that id in any queue (a live one first). */
  getJob(id: string): Promise<Job<DeliveryPayload, unknown, string> | undefined>;
  /** Its state in the queue that holds it: a live state first, else 'unknown' if none holds it. */
  getJobState(id: string): Promise<string>;
  /** Removes the job under that id from the queue that holds it. */
  remove(id: string): Promise<void>;
  /** Counts summed over every queue. */
  getJobCounts(...types: JobType[]): Promise<Record<string, number>>;
  close(): Promise<void>;
}

export function createDeliveryQueues(connection: Redis, prefix: string, onError: QueueErrorSink, shards = 1): DeliveryQueues {
  const list = Array.from({ length: shards }, (_, k) => createQueue('deliveries', connection, prefix, onError, k));
  const draining: DeliveryQueue[] = [];
  const of = (endpointId: string) => list[deliveryShardOf(endpointId, shards)];
  const all = () => [...list, ...draining];

  const locate = async (id: string) => {
    const queues = all();
    const states = await Promise.all(queues.map((q) => q.getJobState(id)));
    const at = [states.findIndex((s) => LIVE_JOB_STATES.has(s)), states.findIndex((s) => s !== 'unknown')].find((i) => i !== -1) ?? -1;
    return at === -1 ? null : { queue: queues[at], state: states[at] };
  };
  // With one queue (one shard, nothing to drain) nothing can be elsewhere: no look-ups on the hot path.
  const elsewhere = async (target: DeliveryQueue, jobId: string | undefined) => {
    if (!jobId) return false;
    const others = all().filter((q) => q !== target);
    if (others.length === 0) return false;
    // The job's hash exists while BullMQ keeps the job in any state: what makes an add with its id a no-op.
    const found = await Promise.all(others.map((q) => connection.exists(q.toKey(jobId))));
    return found.some((n) => n > 0);
  };

  return {
    name: QUEUE.deliveries,
    prefix,
    shards: list,
    draining,
    of,
    all,
    async add(name, data, opts) {
      const target = of(data.endpointId);
      if (!(await elsewhere(target, opts?.jobId))) await target.add(name, data, opts);
    },
    async addBulk(jobs) {
      const kept = await Promise.all(jobs.map(async (job) => !(await elsewhere(of(job.data.endpointId), job.opts?.jobId))));
      const byShard = new Map<DeliveryQueue, typeof jobs>();
      jobs.forEach((job, i) => {
        if (!kept[i]) return;
        const target = of(job.data.endpointId);
        byShard.set(target, [...(byShard.get(target) ?? []), job]);
      });
      await Promise.all([...byShard].map(([queue, list]) => addJobs(queue, list)));
    },
    async getJob(id) {
      const found = await locate(id);
      return found ? found.queue.getJob(id) : undefined;
    },
    async getJobState(id) {
      return (await locate(id))?.state ?? 'unknown';
    },
    async remove(id) {
      await (await this.getJob(id))?.remove();
    },
    async getJobCounts(...types) {
      const sums: Record<string, number> = {};
      for (const counts of await Promise.all(all().map((q) => q.getJobCounts(...types))))
        for (const [state, n] of Object.entries(counts)) sums[state] = (sums[state] ?? 0) + n;
      return sums;
    },
    async close() {
      await Promise.all(all().map((q) => q.close()));
    },
  };
}

/**
 * Delivery queues of an older layout that still hold work: shards past the count (it was
 * higher) and the deliveries queue of the layout before hash tags. Added to `deliveries.draining`
 * (so look-ups find their jobs); returns the ones found now, for a process to consume.
 */
export async function findOldDeliveryQueues(deliveries: DeliveryQueues, connection: Redis, onError: QueueErrorSink): Promise<DeliveryQueue[]> {
  const { prefix } = deliveries;
  const candidates = [
    ...Array.from({ length: DELIVERY_QUEUE_SHARDS_MAX - deliveries.shards.length }, (_, i) =>
      createQueue('deliveries', connection, prefix, onError, deliveries.shards.length + i),
    ),
    createOldLayoutQueue('deliveries', connection, prefix, onError),
  ].filter((q) => !deliveries.draining.some((d) => d.name === q.name && d.opts.prefix === q.opts.prefix));
  const holding = await Promise.all(candidates.map(holdsWork));
  const found = candidates.filter((_, i) => holding[i]);
  await Promise.all(candidates.filter((_, i) => !holding[i]).map((q) => q.close()));
  deliveries.draining.push(...found);
  return found;
}

/**
 * The queues of the layout before hash tags (every queue under QUEUE_PREFIX itself) that still
 * hold work, among `names` (a process asks for those it consumes; deliveries: see
 * findOldDeliveryQueues). Their job schedulers are removed first: the new layout's queue has its
 * own, and an old one would keep adding jobs there for ever. What is left is drained in place.
 */
export async function findOldLayoutQueues<N extends Exclude<QueueName, 'deliveries'>>(
  connection: Redis,
  prefix: string,
  names: readonly N[],
  onError: QueueErrorSink,
): Promise<Array<{ name: N; queue: TypedQueue<N> }>> {
  const found: Array<{ name: N; queue: TypedQueue<N> }> = [];
  for (const name of names) {
    const queue = createOldLayoutQueue(name, connection, prefix, onError);
    for (const scheduler of await queue.getJobSchedulers()) await queue.removeJobScheduler(scheduler.key);
    if (await holdsWork(queue)) found.push({ name, queue });
    else await queue.close();
  }
  return found;
}

export function createQueues(connection: Redis, prefix: string, onError: QueueErrorSink, deliveryShards = 1): Queues {
  const queues = Object.fromEntries(
    QUEUE_NAMES.filter((name) => name !== QUEUE.deliveries).map((name) => [name, createQueue(name, connection, prefix, onError)]),
  ) as Omit<Queues, 'deliveries'>;
  return { ...queues, deliveries: createDeliveryQueues(connection, prefix, onError, deliveryShards) };
}

/** Every BullMQ queue of a set: the delivery shards (and queues being drained) one by one. */
export const bullQueues = (queues: Partial<Queues>): Queue[] =>
  Object.values(queues).flatMap((q) => (q && 'shards' in q ? (q as DeliveryQueues).all() : q ? [q as Queue] : []));

export { QUEUE };

/**
 * The queued job that carries a postback, and the postback in it: ingest puts the postbacks of
 * one event-loop turn into one job whose id is their id block (see newIdBlock); jobs of earlier
 * versions carry one postback under its own id. `queues`: the postbacks queue, and the one of
 * the older layout while it is drained.
 */
export async function findQueuedPostback(queues: TypedQueue<'postbacks'> | readonly TypedQueue<'postbacks'>[], postbackId: string) {
  for (const queue of Array.isArray(queues) ? queues : [queues])
    for (const jobId of new Set([idBlockOf(postbackId), postbackId])) {
      const job = await queue.getJob(jobId);
      if (!job) continue;
      const parsed = JOB_SCHEMAS.postbacks.safeParse(job.data);
      const postback = parsed.success ? parsed.data.postbacks.find((p) => p.postbackId === postbackId) : undefined;
      if (postback) return { job, postback };
    }
  return null;
}

type AddableQueue<T> = {
  add(name: string, data: T, opts?: JobsOptions): Promise<unknown>;
  addBulk(jobs: Array<{ name: string; data: T; opts?: JobsOptions }>): Promise<unknown>;
};

/**
 * `addBulk`, except for a single job: addBulk builds an ioredis pipeline (a MULTI, and a copy
 * of BullMQ's script table per pipeline), which costs more than the job itself when the load is
 * light and a turn holds one job. One job is one plain EVALSHA.
 */
export async function addJobs<T>(queue: AddableQueue<T>, jobs: Array<{ name: string; data: T; opts?: JobsOptions }>): Promise<void> {
  if (jobs.length === 0) return;
  if (jobs.length === 1) {
    const [{ name, data, opts }] = jobs;
    await queue.add(name, data, opts);
    return;
  }
  await queue.addBulk(jobs);
}
