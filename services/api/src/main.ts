import { startPartitionUpkeep } from '@trackway/ledger';
import { decodeKey, publicIngestUrl } from '@trackway/config';
import { createSecretBox } from '@trackway/domain';
import { sealPlaintextHeaders } from '@trackway/ledger';
import { bullQueues, createOldLayoutQueue, createQueues, findOldDeliveryQueues, publishInvalidation } from '@trackway/queues';
import { createServiceContext, runMain, serveHttp } from '@trackway/runtime';
import { createApp } from './app';
import { createVerifier } from './auth';
import { startIdempotencyPruning } from './idempotency';

runMain('api', async () => {
  const ctx = createServiceContext('api');
  const { config, logger, producer } = ctx;
  const queues = createQueues(producer, config.QUEUE_PREFIX, ctx.reportRedisError, config.DELIVERY_QUEUE_SHARDS);
  ctx.metrics.trackQueues(bullQueues(queues));
  const olderPostbacks = createOldLayoutQueue('postbacks', producer, config.QUEUE_PREFIX, ctx.reportRedisError);
  // Replays and recovers look for a delivery's job in delivery queues of an older layout too.
  // It writes events and test deliveries: their partitions are made ahead (so do attribution and delivery).
  ctx.startUpStep('history partitions', () => startPartitionUpkeep(ctx.pool, ctx.logger));
  ctx.startUpStep('older delivery queues found', () => findOldDeliveryQueues(queues.deliveries, producer, ctx.reportRedisError));
  const secretsKey = decodeKey(config.SECRETS_KEY)!;
  const app = createApp({
    prisma: ctx.prisma,
    pool: ctx.pool,
    queues,
    olderPostbacks,
    redis: producer,
    box: createSecretBox(secretsKey),
    sessionKey: secretsKey,
    payoutNiceRatio: config.PAYOUT_NICE_RATIO,
    webhooks: { schedule: config.DELIVERY_RETRY_SCHEDULE, allowHttp: config.WEBHOOK_ALLOW_HTTP, allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS },
    invalidate: (kind, id) =>
      publishInvalidation(producer, config.QUEUE_PREFIX, kind, id).catch((error) => logger.warn({ err: error, kind }, 'cache invalidation not sent')),
    verifier: createVerifier({
      secret: config.ADMIN_JWT_SECRET,
      jwksUrl: config.ADMIN_JWKS_URL,
      audience: config.ADMIN_JWT_AUDIENCE,
      issuer: config.ADMIN_JWT_ISSUER,
      maxAgeMs: config.ADMIN_JWT_MAX_AGE,
    }),
    logger,
    metrics: ctx.metrics,
    health: ctx.health,
    frontDoor: { trustProxy: config.TRUST_PROXY, authFailureLimit: config.AUTH_FAILURE_LIMIT, prefix: config.QUEUE_PREFIX },
    metricsToken: config.METRICS_TOKEN,
    publicIngestUrl: publicIngestUrl(config),
  });
  // Expired Idempotency-Key answers (sealed secrets among them) are deleted every 10 minutes; the timer never holds the process up.
  startIdempotencyPruning(ctx.prisma, logger);
  // Headers stored before they were sealed: sealed now, in the background (an outage only delays it).
  sealPlaintextHeaders(ctx.prisma, createSecretBox(secretsKey)).then(
    (count) => count > 0 && logger.info({ endpoints: count }, 'sealed plaintext webhook endpoint headers'),
    (error: unknown) => logger.warn({ err: error }, 'plaintext webhook endpoint headers not sealed yet; they are at the next start'),
  );
  await serveHttp(ctx, { name: 'api', app, port: config.API_PORT, close: () => Promise.all([...Object.values(queues), olderPostbacks].map((q) => q.close())) });
});
