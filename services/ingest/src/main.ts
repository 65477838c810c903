import { createClickIdCodec } from '@trackway/clickid';
import { decodeKey } from '@trackway/config';
import { createSecretBox } from '@trackway/domain';
import { createQueue } from '@trackway/queues';
import { createServiceContext, runMain, serveHttp } from '@trackway/runtime';
import { createApp } from './app';
import { createLookups } from './lookups';

runMain('ingest', async () => {
  const ctx = createServiceContext('ingest', { poolSize: 5 });
  const { config, producer } = ctx;
  const queues = {
    postbacks: createQueue('postbacks', producer, config.QUEUE_PREFIX, ctx.reportRedisError),
    clicks: createQueue('clicks', producer, config.QUEUE_PREFIX, ctx.reportRedisError),
  };
  // SECRETS_KEY opens advertisers' signing secrets (signed postbacks).
  const lookups = createLookups(ctx.prisma, createSecretBox(decodeKey(config.SECRETS_KEY)!), (advertiserId, problem) =>
    ctx.logger.error(
      { advertiser_id: advertiserId, problem },
      "the advertiser's stored postback_format cannot be read: its postbacks are read with the trackway preset",
    ),
  );
  // Not awaited: ingest serves while Redis is down (503 on postbacks), and subscribes once it answers.
  ctx.subscribeInvalidations((kind) => {
    if (kind === 'advertiser') lookups.advertiserByKeyHash.clear();
    if (kind === 'offer') lookups.offer.clear();
    if (kind === 'affiliate') lookups.affiliate.clear();
  });
  ctx.metrics.trackQueues([queues.postbacks, queues.clicks]);
  const app = createApp({
    queues,
    redis: producer,
    lookups,
    clickIds: createClickIdCodec(config.CLICK_SECRET),
    logger: ctx.logger,
    reportRedisError: ctx.reportRedisError,
    metrics: ctx.metrics,
    health: ctx.health,
    frontDoor: {
      trustProxy: config.TRUST_PROXY,
      postbackRateLimit: config.POSTBACK_RATE_LIMIT,
      authFailureLimit: config.AUTH_FAILURE_LIMIT,
      prefix: config.QUEUE_PREFIX,
    },
    replicas: config.REDIS_WAIT_REPLICAS,
    metricsToken: config.METRICS_TOKEN,
  });
  await serveHttp(ctx, { name: 'ingest', app, port: config.INGEST_PORT, close: () => Promise.all([queues.postbacks.close(), queues.clicks.close()]) });
});
