import { BODY_LIMITS, errorHandler, notFoundHandler, parseQueryString, refuseNonUtf8Body } from '@trackway/http';
import {
  authFailureGuard,
  bearerMatches,
  closeConnectionsWhenDraining,
  healthRouter,
  httpMetrics,
  protectedMetricsHandler,
  securityHeaders,
} from '@trackway/runtime';
import express, { type Express, Router } from 'express';
import { redactUrl } from '@trackway/logger';
import { pinoHttp } from 'pino-http';
import { adminBoardRouter } from './admin-board';
import { requireAdmin } from './auth';
import type { ApiDeps } from './deps';
import { docsRouter } from './docs';
import { eventTypesJson } from './representations';
import { advertisersRouter, affiliatesRouter } from './routes/advertisers';
import { conversionsRouter } from './routes/conversions';
import { offersRouter } from './routes/offers';
import { deliveriesRouter } from './routes/deliveries';
import { payoutsRouter } from './routes/payouts';
import { postbacksRouter } from './routes/postbacks';
import { webhookEndpointsRouter } from './routes/webhook-endpoints';

export type { ApiDeps };

export function createApp(deps: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  // node:querystring, but more than 1,000 parameters is a 400 instead of the rest dropped.
  app.set('query parser', parseQueryString);
  // The client's address (AUTH_FAILURE_LIMIT) is the socket's unless TRUST_PROXY says to read X-Forwarded-For.
  app.set('trust proxy', deps.frontDoor?.trustProxy ?? false);
  const authFailures = authFailureGuard({
    redis: deps.redis,
    prefix: deps.frontDoor?.prefix ?? deps.queues.postbacks.opts.prefix ?? 'trackway',
    scope: 'admin',
    perMinute: deps.frontDoor?.authFailureLimit ?? 30,
  });
  // helmet and no-store on every answer; Bull Board and its login page load their own scripts and styles.
  app.use(securityHeaders());
  app.use('/admin', securityHeaders('ui'));
  app.use(closeConnectionsWhenDraining(deps.health));
  app.use(httpMetrics(deps.metrics));
  app.use(healthRouter(deps.health, { details: bearerMatches(deps.metricsToken) }));
  app.get('/metrics', protectedMetricsHandler(deps.metrics, deps.metricsToken));
  app.use(
    pinoHttp({
      logger: deps.logger,
      autoLogging: { ignore: (req) => req.url === '/metrics' || req.url?.startsWith('/healthz') || req.url?.startsWith('/readyz') || false },
      // Credentials in a URL (a key or secret under any parameter name) never reach the log.
      serializers: { req: (req) => ({ method: req.method, url: redactUrl(req.url) }) },
    }),
  );

  // The public contract: the OpenAPI document and its rendered reference, without auth.
  app.use(docsRouter());
  app.use(adminBoardRouter({ queues: deps.queues, redis: deps.redis, verifier: deps.verifier, sessionKey: deps.sessionKey, authFailures }));

  const v1 = Router();
  v1.use(requireAdmin(deps.verifier, authFailures));
  v1.use(express.json({ limit: BODY_LIMITS.admin, verify: refuseNonUtf8Body }));
  v1.use('/advertisers', advertisersRouter(deps));
  v1.use('/affiliates', affiliatesRouter(deps));
  v1.use('/offers', offersRouter(deps));
  v1.use('/conversions', conversionsRouter(deps));
  v1.use('/postbacks', postbacksRouter(deps));
  v1.use('/webhook-endpoints', webhookEndpointsRouter(deps));
  v1.use('/deliveries', deliveriesRouter(deps));
  v1.use('/payouts', payoutsRouter(deps));
  const eventTypes = eventTypesJson();
  v1.get('/event-types', (_req, res) => {
    res.json(eventTypes);
  });
  app.use('/v1', v1);

  app.use(notFoundHandler);
  app.use(errorHandler({ onServerError: (error) => deps.logger.error({ err: error }, 'unhandled error') }));
  return app;
}
