import { startPartitionUpkeep } from '@trackway/ledger';
import { decodeKey } from '@trackway/config';
import { createSecretBox } from '@trackway/domain';
import { bullQueues, createDeliveryQueues, createQueue, findOldDeliveryQueues, findOldLayoutQueues, publishInvalidation } from '@trackway/queues';
import { createServiceContext, queueList, runMain, serveWorkers } from '@trackway/runtime';
import { scheduleHousekeeping } from './housekeeping';
import { DELIVERY_QUEUES, createDeliveryWorkers } from './workers';

runMain('delivery', async () => {
  const ctx = createServiceContext('delivery', { poolSize: 20 });
  const { config, logger, producer } = ctx;
  const consumed = queueList(config.DELIVERY_QUEUES, DELIVERY_QUEUES, 'DELIVERY_QUEUES');

  const queues = {
    events: createQueue('events', producer, config.QUEUE_PREFIX, ctx.reportRedisError),
    deliveries: createDeliveryQueues(producer, config.QUEUE_PREFIX, ctx.reportRedisError, config.DELIVERY_QUEUE_SHARDS),
    housekeeping: createQueue('housekeeping', producer, config.QUEUE_PREFIX, ctx.reportRedisError),
  };
  // In the background: the worker serves its health port while Redis is down.
  // It writes deliveries and attempts: their partitions are made ahead (so do the api and attribution).
  ctx.startUpStep('history partitions', () => startPartitionUpkeep(ctx.pool, logger));
  ctx.startUpStep('schedulers', () => scheduleHousekeeping(queues.housekeeping));

  const { workers, endpoints, drain } = createDeliveryWorkers(
    {
      prisma: ctx.prisma,
      pool: ctx.pool,
      box: createSecretBox(decodeKey(config.SECRETS_KEY)!),
      connection: ctx.newWorkerConnection(),
      // Fail-fast (no offline queue): an admission during a Redis outage errs at once and the job
      // goes back, instead of holding a worker slot until Redis returns.
      redis: producer,
      queues,
      prefix: config.QUEUE_PREFIX,
      invalidateEndpoint: (id) => publishInvalidation(producer, config.QUEUE_PREFIX, 'endpoint', id),
      logger,
      metrics: ctx.metrics,
      reportRedisError: ctx.reportRedisError,
      postgresOutage: ctx.postgresOutage,
      concurrency: { events: config.DELIVERY_FANOUT_CONCURRENCY, deliveries: config.DELIVERY_CONCURRENCY },
      workerOptions: { lockDuration: config.WORKER_LOCK_DURATION, stalledInterval: config.WORKER_STALLED_INTERVAL },
      settings: {
        timeoutMs: config.DELIVERY_TIMEOUT_MS,
        schedule: config.DELIVERY_RETRY_SCHEDULE,
        retryAfterMaxMs: config.DELIVERY_RETRY_AFTER_MAX,
        breakerThreshold: config.DELIVERY_BREAKER_THRESHOLD,
        breakerCooldownMs: config.DELIVERY_BREAKER_COOLDOWN,
        disableAfterMs: config.DELIVERY_DISABLE_AFTER,
        retention: {
          clickDays: config.CLICK_RETENTION_DAYS,
          postbackDays: config.POSTBACK_RETENTION_DAYS,
          deliveryLogDays: config.DELIVERY_LOG_RETENTION_DAYS,
        },
        endpointConcurrency: config.DELIVERY_ENDPOINT_CONCURRENCY,
        maxInFlight: config.DELIVERY_MAX_IN_FLIGHT,
        policy: { allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS },
      },
    },
    consumed,
  );
  ctx.subscribeInvalidations((kind) => {
    if (kind === 'endpoint') endpoints.clear();
    if (kind === 'offer') endpoints.clearOffers();
  });
  // Jobs queued under an older layout (before per-queue hash tags, or another shard count) are
  // run where they are, by workers of their own, until this process stops (docs/operations.md).
  ctx.startUpStep('older queues drained', async () => {
    const kinds = consumed.filter((kind) => kind !== 'deliveries');
    for (const { name, queue } of await findOldLayoutQueues(producer, config.QUEUE_PREFIX, kinds, ctx.reportRedisError)) workers.push(drain(queue, name));
    if (!consumed.includes('deliveries')) return;
    const older = await findOldDeliveryQueues(queues.deliveries, producer, ctx.reportRedisError);
    for (const queue of older) workers.push(drain(queue, 'deliveries'));
    if (older.length > 0) logger.info({ queues: older.map((q) => `${q.opts.prefix}:${q.name}`) }, 'draining delivery queues of an older layout');
  });
  ctx.metrics.trackQueues(bullQueues(queues));
  await serveWorkers(ctx, { name: 'delivery', workers, queues: consumed, close: () => Promise.all(Object.values(queues).map((q) => q.close())) });
});
