import { publicIngestUrl } from '@trackway/config';
import { BODY_LIMITS, errorHandler, notFoundHandler, parseQueryString, refuseNonUtf8Body, requestId } from '@trackway/http';
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
import { adminSessions } from './admin-sessions';
import { requireAdmin } from './auth';
import { consoleRouter } from './console';
import type { ApiDeps } from './deps';
import { docsRouter } from './docs';
import { ADMIN_RESOURCES } from './resources';
import { mountResources } from './route';

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
    prefix: deps.frontDoor?.prefix ?? deps.queues.deliveries.prefix,
    scope: 'admin',
    perMinute: deps.frontDoor?.authFailureLimit ?? 30,
  });
  // X-Request-Id on every answer (and in the error envelope and the request's log lines).
  app.use(requestId());
  // helmet and no-store on every answer; Bull Board, its login page and the console load their own scripts and styles.
  app.use(securityHeaders());
  app.use('/admin', securityHeaders('ui'));
  app.use('/console', securityHeaders('ui'));
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
      customProps: (req) => ({ request_id: req.id }),
    }),
  );

  // The public contract: the OpenAPI document and its rendered reference, without auth.
  app.use(docsRouter({ ingestUrl: deps.publicIngestUrl ?? publicIngestUrl({}) }));
  // One sign-in for the admin pages: Bull Board and the console.
  const sessions = adminSessions({
    redis: deps.redis,
    verifier: deps.verifier,
    sessionKey: deps.sessionKey,
    prefix: deps.frontDoor?.prefix ?? deps.queues.deliveries.prefix,
    authFailures,
  });
  app.use(sessions.router);
  app.use(adminBoardRouter({ queues: deps.queues, redis: deps.redis, sessions }));
  app.use(consoleRouter(deps, sessions));

  const v1 = Router();
  v1.use(requireAdmin(deps.verifier, authFailures));
  v1.use(express.json({ limit: BODY_LIMITS.admin, verify: refuseNonUtf8Body }));
  // Every admin route, from its definition (./resources): registered, validated and documented alike.
  mountResources(v1, ADMIN_RESOURCES, deps);
  app.use('/v1', v1);

  app.use(notFoundHandler);
  app.use(errorHandler({ onServerError: (error, req) => deps.logger.error({ err: error, request_id: req.id }, 'unhandled error') }));
  return app;
}
