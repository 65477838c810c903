import { isDeliveryShard } from '@trackway/queues';
import type { Job, Worker } from 'bullmq';
import { type ErrorReporter, type Logger, errorReporter } from '@trackway/logger';
import type { PostgresOutage } from './context';
import type { Metrics } from './metrics';

/** The ids that follow a postback from ingest through attribution to each delivery. */
export function jobIds(job: Job | undefined): Record<string, string> {
  const data = (job?.data ?? {}) as Record<string, unknown>;
  const ids: Record<string, string> = {};
  for (const [from, to] of [
    ['postbackId', 'postback_id'],
    ['eventId', 'event_id'],
    ['deliveryId', 'delivery_id'],
    ['endpointId', 'endpoint_id'],
    ['clickId', 'click_id'],
  ] as const) {
    if (typeof data[from] === 'string') ids[to] = data[from] as string;
  }
  if (job?.queueName === 'events' && typeof data.id === 'string') ids.event_id = data.id;
  return ids;
}

/**
 * The one place listeners are attached: every worker gets error, failed, stalled and completed
 * handlers, a log line per job and job metrics.
 */
/**
 * Queues whose processors log their own line per item ('postback attributed', 'delivered'), or
 * whose jobs are too many to log one by one at info (clicks, fan-out): their completed jobs are
 * logged at debug. Failures and stalls are logged for every queue.
 */
const QUIET_QUEUES: ReadonlySet<string> = new Set(['postbacks', 'clicks', 'events']);
const isQuiet = (queue: string) => QUIET_QUEUES.has(queue) || isDeliveryShard(queue);

export function registerWorker(
  worker: Worker,
  deps: { logger: Logger; metrics: Metrics; reportRedisError?: ErrorReporter; postgresOutage?: PostgresOutage },
): Worker {
  const { logger, metrics } = deps;
  const queue = worker.name;
  const observe = (job: Job, result: 'completed' | 'failed') => {
    const seconds = job.finishedOn && job.processedOn ? (job.finishedOn - job.processedOn) / 1000 : 0;
    metrics.jobDuration.observe({ queue, result }, seconds);
    metrics.jobAttempts.observe({ queue, result }, job.attemptsMade);
  };
  worker.on('completed', (job) => {
    observe(job, 'completed');
    deps.postgresOutage?.recovered();
    // Scheduler ticks (the outbox relay every few seconds) would drown the log at info.
    const level = job.repeatJobKey || isQuiet(queue) ? 'debug' : 'info';
    logger[level]({ queue, job_id: job.id, attempts: job.attemptsMade, ...jobIds(job) }, 'job completed');
  });
  worker.on('failed', (job, error) => {
    if (job) observe(job, 'failed');
    // A job that failed because PostgreSQL cannot be reached is retried like any other; while
    // the outage lasts, its failures are folded into the outage's lines (no stack per job).
    if (deps.postgresOutage?.concerns(error)) deps.postgresOutage.report(`job failed (${queue})`, error);
    else logger.warn({ queue, job_id: job?.id, attempts: job?.attemptsMade, ...jobIds(job), err: error }, 'job failed');
  });
  worker.on('stalled', (jobId) => logger.warn({ queue, job_id: jobId }, 'job stalled'));
  // Repeats while Redis is down: folded into the process's outage line (ServiceContext), or
  // one structured line per kind of error and interval.
  const reportError = deps.reportRedisError ?? errorReporter(logger);
  worker.on('error', (error) => reportError({ queue }, error, 'worker error'));
  return worker;
}
