import { startPartitionUpkeep } from '@trackway/ledger';
import { createClickIdCodec } from '@trackway/clickid';
import { createQueue, findOldLayoutQueues } from '@trackway/queues';
import { createServiceContext, queueList, runMain, serveWorkers } from '@trackway/runtime';
import { ATTRIBUTION_QUEUES, createWorkers } from './workers';

runMain('attribution', async () => {
  // One postback batch and one click batch write at a time; the relay and offer lookups share the rest.
  const ctx = createServiceContext('attribution', { poolSize: 6 });
  const { config, producer } = ctx;
  const consumed = queueList(config.ATTRIBUTION_QUEUES, ATTRIBUTION_QUEUES, 'ATTRIBUTION_QUEUES');
  const queues = {
    postbacks: createQueue('postbacks', producer, config.QUEUE_PREFIX, ctx.reportRedisError),
    clicks: createQueue('clicks', producer, config.QUEUE_PREFIX, ctx.reportRedisError),
    events: createQueue('events', producer, config.QUEUE_PREFIX, ctx.reportRedisError),
    outbox: createQueue('outbox', producer, config.QUEUE_PREFIX, ctx.reportRedisError),
  };
  // One scheduler for the whole cluster: each tick runs on exactly one attribution worker.
  // Upserted in the background: the worker serves its health port while Redis is down.
  // It writes clicks, postbacks and events: their partitions are made ahead (so do the api and delivery).
  ctx.startUpStep('history partitions', () => startPartitionUpkeep(ctx.pool, ctx.logger));
  ctx.startUpStep('schedulers', () => queues.outbox.upsertJobScheduler('outbox-relay', { every: config.OUTBOX_RELAY_INTERVAL }, { name: 'relay' }));
  const workers = createWorkers(
    {
      prisma: ctx.prisma,
      pool: ctx.pool,
      clickIds: createClickIdCodec(config.CLICK_SECRET),
      eventsQueue: queues.events,
      clicksQueue: queues.clicks,
      connection: ctx.newWorkerConnection(),
      prefix: config.QUEUE_PREFIX,
      logger: ctx.logger,
      metrics: ctx.metrics,
      reportRedisError: ctx.reportRedisError,
      postgresOutage: ctx.postgresOutage,
      concurrency: { postbacks: config.ATTRIBUTION_CONCURRENCY, clicks: config.CLICKS_CONCURRENCY },
      batches: { postbacks: { size: config.ATTRIBUTION_BATCH_SIZE, waitMs: config.ATTRIBUTION_BATCH_WAIT } },
      workerOptions: { lockDuration: config.WORKER_LOCK_DURATION, stalledInterval: config.WORKER_STALLED_INTERVAL },
    },
    consumed,
  );
  ctx.subscribeInvalidations((kind) => workers.invalidate(kind));
  // Jobs queued before per-queue hash tags (postbacks answered 202, clicks) are run where they
  // are, by workers of their own, until this process stops (docs/operations.md).
  ctx.startUpStep('older queues drained', async () => {
    for (const { name, queue } of await findOldLayoutQueues(producer, config.QUEUE_PREFIX, consumed, ctx.reportRedisError)) {
      workers.push(workers.drainOld(queue, name));
      ctx.logger.info({ queue: `${queue.opts.prefix}:${name}` }, 'draining a queue of the older layout');
    }
  });
  ctx.metrics.trackQueues(Object.values(queues));
  const close = async () => {
    await workers.drain();
    await Promise.all(Object.values(queues).map((q) => q.close()));
  };
  await serveWorkers(ctx, { name: 'attribution', workers, queues: consumed, close });
});
