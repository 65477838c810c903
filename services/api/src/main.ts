import { decodeKey } from '@trackway/config';
import { createSecretBox } from '@trackway/domain';
import { createQueues, publishInvalidation } from '@trackway/queues';
import { createServiceContext, runMain, serveHttp } from '@trackway/runtime';
import { createApp } from './app';
import { createVerifier } from './auth';

runMain(async () => {
  const ctx = createServiceContext('api', { require: ['ADMIN_JWT_SECRET', 'SECRETS_KEY'] });
  const { config, logger, producer } = ctx;
  const queues = createQueues(producer, config.QUEUE_PREFIX, ctx.reportError);
  ctx.metrics.trackQueues(Object.values(queues));
  const secretsKey = decodeKey(config.SECRETS_KEY)!;
  const app = createApp({
    prisma: ctx.prisma,
    pool: ctx.pool,
    queues,
    redis: producer,
    box: createSecretBox(secretsKey),
    sessionKey: secretsKey,
    webhooks: { schedule: config.DELIVERY_RETRY_SCHEDULE, allowHttp: config.WEBHOOK_ALLOW_HTTP, allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS },
    invalidate: (kind, id) =>
      publishInvalidation(producer, config.QUEUE_PREFIX, kind, id).catch((error) => logger.warn({ err: error, kind }, 'cache invalidation not sent')),
    verifier: createVerifier({ secret: config.ADMIN_JWT_SECRET, jwksUrl: config.ADMIN_JWKS_URL, audience: config.ADMIN_JWT_AUDIENCE, issuer: config.ADMIN_JWT_ISSUER }),
    logger,
    metrics: ctx.metrics,
    health: ctx.health,
    metricsToken: config.METRICS_TOKEN,
  });
  await serveHttp(ctx, { name: 'api', app, port: config.API_PORT, close: () => Promise.all(Object.values(queues).map((q) => q.close())) });
});
