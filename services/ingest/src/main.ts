import type { AddressInfo } from 'node:net';
import { createClickIdCodec } from '@trackway/clickid';
import { createQueue, subscribeInvalidations } from '@trackway/queues';
import { closeServer, createServiceContext, installShutdown, listen } from '@trackway/runtime';
import { createApp } from './app';
import { createLookups } from './lookups';

async function main() {
  const ctx = createServiceContext('ingest', { require: ['CLICK_SECRET'], poolSize: 5 });
  const { config, logger, prisma, producer, health } = ctx;
  const queues = {
    postbacks: createQueue('postbacks', producer, config.QUEUE_PREFIX),
    clicks: createQueue('clicks', producer, config.QUEUE_PREFIX),
  };
  const lookups = createLookups(prisma);
  await subscribeInvalidations(ctx.newWorkerConnection(), config.QUEUE_PREFIX, (kind) => {
    if (kind === 'advertiser') lookups.advertiserByKeyHash.clear();
    if (kind === 'offer') lookups.offer.clear();
    if (kind === 'affiliate') lookups.affiliate.clear();
  });
  ctx.metrics.trackQueues([queues.postbacks, queues.clicks]);
  const app = createApp({ queues, redis: producer, lookups, clickIds: createClickIdCodec(config.CLICK_SECRET), logger, metrics: ctx.metrics, health });
  await ctx.producerReady;
  const server = await listen(app, config.INGEST_PORT);
  logger.info({ port: (server.address() as AddressInfo).port }, 'ingest listening');

  installShutdown({
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'mark unready', run: async () => void (health.accepting = false) },
      { name: 'close http', run: () => closeServer(server) },
      { name: 'close queues', run: () => Promise.all([queues.postbacks.close(), queues.clicks.close()]) },
      { name: 'disconnect', run: ctx.disconnect },
    ],
  });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
