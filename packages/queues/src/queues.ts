import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUE, QUEUE_NAMES, type QueueName } from './names';
import { DEFAULT_JOB_OPTIONS } from './options';
import type { JobPayloads } from './payloads';

export type TypedQueue<N extends QueueName> = Queue<JobPayloads[N], unknown, string>;
export type Queues = { [N in QueueName]: TypedQueue<N> };

export function createQueue<N extends QueueName>(name: N, connection: Redis, prefix: string): TypedQueue<N> {
  return new Queue<JobPayloads[N], unknown, string>(name, {
    connection,
    prefix,
    defaultJobOptions: DEFAULT_JOB_OPTIONS[name],
  });
}

export function createQueues(connection: Redis, prefix: string): Queues {
  return Object.fromEntries(QUEUE_NAMES.map((name) => [name, createQueue(name, connection, prefix)])) as unknown as Queues;
}

export async function closeQueues(queues: Partial<Queues>): Promise<void> {
  await Promise.all(Object.values(queues).map((q) => q?.close()));
}

export { QUEUE };
