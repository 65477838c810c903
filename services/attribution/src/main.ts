import type { AddressInfo } from 'node:net';
import { createClickIdCodec } from '@trackway/clickid';
import { QUEUE, createQueue } from '@trackway/queues';
import { closeServer, createOpsApp, createServiceContext, installShutdown, listen } from '@trackway/runtime';
import { ATTRIBUTION_QUEUES, type AttributionQueue, createWorkers } from './workers';

async function main() {
  const ctx = createServiceContext('attribution', { require: ['CLICK_SECRET'] });
  const { config, logger, health } = ctx;
  const consumed = config.ATTRIBUTION_QUEUES.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = consumed.filter((q) => !(ATTRIBUTION_QUEUES as readonly string[]).includes(q));
  if (unknown.length > 0) throw new Error(`ATTRIBUTION_QUEUES: unknown queue(s) ${unknown.join(', ')}; choose from ${ATTRIBUTION_QUEUES.join(', ')}`);

  const eventsQueue = createQueue('events', ctx.producer, config.QUEUE_PREFIX);
  const outboxQueue = createQueue('outbox', ctx.producer, config.QUEUE_PREFIX);
  // One scheduler for the whole cluster: each tick runs on exactly one attribution worker.
  await outboxQueue.upsertJobScheduler('outbox-relay', { every: config.OUTBOX_RELAY_INTERVAL }, { name: 'relay' });

  const workers = createWorkers(
    {
      prisma: ctx.prisma,
      clickIds: createClickIdCodec(config.CLICK_SECRET),
      eventsQueue,
      connection: ctx.newWorkerConnection(),
      prefix: config.QUEUE_PREFIX,
      logger,
      metrics: ctx.metrics,
      concurrency: { postbacks: config.ATTRIBUTION_CONCURRENCY, clicks: config.CLICKS_CONCURRENCY },
      workerOptions: { lockDuration: config.WORKER_LOCK_DURATION, stalledInterval: config.WORKER_STALLED_INTERVAL },
    },
    consumed as AttributionQueue[],
  );
  ctx.metrics.trackQueues([createQueue(QUEUE.postbacks, ctx.producer, config.QUEUE_PREFIX), createQueue(QUEUE.clicks, ctx.producer, config.QUEUE_PREFIX), eventsQueue, outboxQueue]);
  health.checks.workers = async () => {
    const stopped = workers.filter((w) => !w.isRunning()).map((w) => w.name);
    if (stopped.length > 0) throw new Error(`not running: ${stopped.join(', ')}`);
  };
  const server = await listen(createOpsApp(health, ctx.metrics), config.HEALTH_PORT);
  logger.info({ queues: consumed, health_port: (server.address() as AddressInfo).port }, 'attribution worker running');

  installShutdown({
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'mark unready', run: async () => void (health.accepting = false) },
      // close() stops taking jobs and waits for the active ones to finish.
      { name: 'close workers', run: () => Promise.all(workers.map((w) => w.close())) },
      { name: 'close queues', run: () => Promise.all([eventsQueue.close(), outboxQueue.close()]) },
      { name: 'close health server', run: () => closeServer(server) },
      { name: 'disconnect', run: ctx.disconnect },
    ],
  });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
