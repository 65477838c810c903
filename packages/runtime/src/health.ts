import express, { type Express, type Request, type RequestHandler, Router } from 'express';
import { type RequestListener, type Server, createServer } from 'node:http';
import { errorHandler, guardUrl, notFoundHandler, requestId } from '@trackway/http';
import type { Logger } from '@trackway/logger';
import { type HttpLimits, answerClientErrors, applyConnectionCap, serverOptions } from './http-limits';
import { type Metrics, metricsHandler } from './metrics';
import { securityHeaders } from './security';

export type Check = () => Promise<unknown>;

export interface HealthState {
  /** False once shutdown begins: load balancers stop sending traffic before we stop accepting. */
  accepting: boolean;
  checks: Record<string, Check>;
}

const CHECK_TIMEOUT_MS = 2_000;

async function runCheck(check: Check): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), CHECK_TIMEOUT_MS);
      }),
    ]);
    return 'ok';
  } catch (error) {
    return (error as Error).message || 'failed';
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `GET /healthz`: the process is alive. `GET /readyz`: every dependency answers; each check's
 * result is shown only to a request `details` accepts (on a public port, which dependency is
 * down and why is not for everyone).
 */
export function healthRouter(state: HealthState, options: { details: (req: Request) => boolean }): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (req, res) => {
    const names = Object.keys(state.checks);
    const results = await Promise.all(names.map((name) => runCheck(state.checks[name])));
    const checks = Object.fromEntries(names.map((name, i) => [name, results[i]]));
    const ready = state.accepting && results.every((r) => r === 'ok');
    if (!state.accepting) checks.shutdown = 'in progress';
    const status = ready ? 'ready' : 'not_ready';
    res.status(ready ? 200 : 503).json(options.details(req) ? { status, checks } : { status });
  });
  return router;
}

/**
 * While shutting down, every response asks the client to close its connection: keep-alive
 * connections then end with their last request instead of holding the server open until their
 * idle timeout.
 */
export function closeConnectionsWhenDraining(state: HealthState): RequestHandler {
  return (_req, res, next) => {
    if (!state.accepting) res.set('Connection', 'close');
    next();
  };
}

/**
 * The small HTTP server a worker runs on HEALTH_PORT: health and metrics only. The port is
 * not public, so readiness details and metrics are served to anyone who reaches it.
 */
export function createOpsApp(state: HealthState, metrics: Metrics, logger?: Logger): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestId());
  app.use(securityHeaders());
  app.use(healthRouter(state, { details: () => true }));
  app.get('/metrics', metricsHandler(metrics));
  app.use(notFoundHandler);
  app.use(errorHandler({ onServerError: (error) => logger?.error({ err: error }, 'unhandled error') }));
  return app;
}

/**
 * Serves a request listener (an Express app, or ingest's plain node:http handler) within the
 * limits every Trackway server keeps: header, request and keep-alive timeouts, a connection cap.
 */
export function listen(app: RequestListener, port: number, limits: HttpLimits, host?: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    // A target no parser here can read is answered 400 before the app (Express would send HTML).
    const server = createServer(serverOptions(limits), guardUrl(app));
    applyConnectionCap(server, limits);
    answerClientErrors(server);
    server.once('error', reject);
    server.listen(port, host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
