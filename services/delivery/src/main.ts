import type { AddressInfo } from 'node:net';
import { decodeKey } from '@trackway/config';
import { createSecretBox } from '@trackway/domain';
import { createQueue, publishInvalidation, subscribeInvalidations } from '@trackway/queues';
import { closeServer, createOpsApp, createServiceContext, installShutdown, listen } from '@trackway/runtime';
import { DELIVERY_QUEUES, type DeliveryQueue, createDeliveryWorkers } from './workers';

const DAILY_MS = 86_400_000;

async function main() {
  const ctx = createServiceContext('delivery', { require: ['SECRETS_KEY'] });
  const { config, logger, health, producer } = ctx;
  const consumed = config.DELIVERY_QUEUES.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = consumed.filter((q) => !(DELIVERY_QUEUES as readonly string[]).includes(q));
  if (unknown.length > 0) throw new Error(`DELIVERY_QUEUES: unknown queue(s) ${unknown.join(', ')}; choose from ${DELIVERY_QUEUES.join(', ')}`);

  const queues = {
    events: createQueue('events', producer, config.QUEUE_PREFIX),
    deliveries: createQueue('deliveries', producer, config.QUEUE_PREFIX),
    housekeeping: createQueue('housekeeping', producer, config.QUEUE_PREFIX),
  };
  await queues.housekeeping.upsertJobScheduler('prune-delivery-log', { every: DAILY_MS / 24 }, { name: 'prune' });

  const { workers, endpoints } = createDeliveryWorkers(
    {
      prisma: ctx.prisma,
      box: createSecretBox(decodeKey(config.SECRETS_KEY)!),
      connection: ctx.newWorkerConnection(),
      redis: ctx.newWorkerConnection(),
      queues,
      prefix: config.QUEUE_PREFIX,
      invalidateEndpoint: (id) => publishInvalidation(producer, config.QUEUE_PREFIX, 'endpoint', id),
      logger,
      metrics: ctx.metrics,
      concurrency: { events: config.DELIVERY_FANOUT_CONCURRENCY, deliveries: config.DELIVERY_CONCURRENCY },
      workerOptions: { lockDuration: config.WORKER_LOCK_DURATION, stalledInterval: config.WORKER_STALLED_INTERVAL },
      settings: {
        timeoutMs: config.DELIVERY_TIMEOUT_MS,
        schedule: config.DELIVERY_RETRY_SCHEDULE,
        breakerThreshold: config.DELIVERY_BREAKER_THRESHOLD,
        breakerCooldownMs: config.DELIVERY_BREAKER_COOLDOWN,
        disableAfterMs: config.DELIVERY_DISABLE_AFTER,
        retentionDays: config.DELIVERY_LOG_RETENTION_DAYS,
        endpointConcurrency: config.DELIVERY_ENDPOINT_CONCURRENCY,
        policy: { allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS },
      },
    },
    consumed as DeliveryQueue[],
  );
  await subscribeInvalidations(ctx.newWorkerConnection(), config.QUEUE_PREFIX, (kind) => {
    if (kind === 'endpoint') endpoints.clear();
  });
  ctx.metrics.trackQueues(Object.values(queues));
  health.checks.workers = async () => {
    const stopped = workers.filter((w) => !w.isRunning()).map((w) => w.name);
    if (stopped.length > 0) throw new Error(`not running: ${stopped.join(', ')}`);
  };
  const server = await listen(createOpsApp(health, ctx.metrics), config.HEALTH_PORT);
  logger.info({ queues: consumed, health_port: (server.address() as AddressInfo).port }, 'delivery worker running');

  installShutdown({
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'mark unready', run: async () => void (health.accepting = false) },
      { name: 'close workers', run: () => Promise.all(workers.map((w) => w.close())) },
      { name: 'close queues', run: () => Promise.all(Object.values(queues).map((q) => q.close())) },
      { name: 'close health server', run: () => closeServer(server) },
      { name: 'disconnect', run: ctx.disconnect },
    ],
  });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
