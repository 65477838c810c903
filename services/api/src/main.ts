import type { AddressInfo } from 'node:net';
import { decodeKey } from '@trackway/config';
import { createSecretBox } from '@trackway/domain';
import { createQueues, publishInvalidation } from '@trackway/queues';
import { closeServer, createServiceContext, installShutdown, listen } from '@trackway/runtime';
import { createApp } from './app';
import { createVerifier } from './auth';

async function main() {
  const ctx = createServiceContext('api', { require: ['ADMIN_JWT_SECRET', 'SECRETS_KEY'] });
  const { config, logger, prisma, producer, health, metrics } = ctx;
  const queues = createQueues(producer, config.QUEUE_PREFIX);
  metrics.trackQueues(Object.values(queues));
  const app = createApp({
    prisma,
    queues,
    redis: producer,
    box: createSecretBox(decodeKey(config.SECRETS_KEY)!),
    sessionKey: decodeKey(config.SECRETS_KEY)!,
    webhooks: { schedule: config.DELIVERY_RETRY_SCHEDULE, allowHttp: config.WEBHOOK_ALLOW_HTTP, allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS },
    invalidate: (kind, id) =>
      publishInvalidation(producer, config.QUEUE_PREFIX, kind, id).catch((error) => logger.warn({ err: error, kind }, 'cache invalidation not sent')),
    verifier: createVerifier({ secret: config.ADMIN_JWT_SECRET, jwksUrl: config.ADMIN_JWKS_URL }),
    logger,
    metrics,
    health,
  });
  await ctx.producerReady;
  const server = await listen(app, config.API_PORT);
  logger.info({ port: (server.address() as AddressInfo).port }, 'api listening');

  installShutdown({
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'mark unready', run: async () => void (health.accepting = false) },
      { name: 'close http', run: () => closeServer(server) },
      { name: 'close queues', run: () => Promise.all(Object.values(queues).map((q) => q.close())) },
      { name: 'disconnect', run: ctx.disconnect },
    ],
  });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
