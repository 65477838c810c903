import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { ClickIdCodec } from '@trackway/clickid';
import {
  HttpError,
  REQUEST_ID_HEADER,
  answerMalformedUrl,
  badRequest,
  errorHandler,
  errorReply,
  notFoundHandler,
  requestId,
  requestIdFor,
} from '@trackway/http';
import { type ErrorReporter, type Logger, errorReporter, redactUrl } from '@trackway/logger';
import type { TypedQueue } from '@trackway/queues';
import {
  type HealthState,
  type Metrics,
  type TrustProxy,
  bearerMatches,
  closeConnectionsWhenDraining,
  compileTrust,
  healthRouter,
  protectedMetricsHandler,
  securityHeaders,
} from '@trackway/runtime';
import express from 'express';
import type { Redis } from 'ioredis';
import parseUrl from 'parseurl';
import { createClickHandler } from './click';
import type { IngestContext, Query } from './context';
import { createEnqueuers } from './enqueue';
import type { IngestLookups } from './lookups';
import { createPostbackHandler } from './postback';
import { parseQuery } from './postback-input';
import { sendJson } from './reply';

export interface IngestDeps {
  queues: { postbacks: TypedQueue<'postbacks'>; clicks: TypedQueue<'clicks'> };
  /** The producer connection the queues use: checked before each enqueue so outages fail fast. */
  redis: Redis;
  lookups: IngestLookups;
  clickIds: ClickIdCodec;
  logger: Logger;
  /** Where the hot paths' Redis errors go (ServiceContext.reportRedisError: an outage is one line per interval, not one per request). */
  reportRedisError?: ErrorReporter;
  metrics: Metrics;
  health: HealthState;
  /** TRUST_PROXY, POSTBACK_RATE_LIMIT, AUTH_FAILURE_LIMIT and the Redis prefix of their counters (defaults: false, 0, 30, the QUEUE_PREFIX the queues were made with). */
  frontDoor?: { trustProxy?: TrustProxy; postbackRateLimit?: number; authFailureLimit?: number; prefix?: string };
  /** REDIS_WAIT_REPLICAS: a postback's 202 waits for its job to reach this many replicas (0: the master alone). */
  replicas?: number;
  /** METRICS_TOKEN: /metrics (and /readyz's details) need it as a bearer token; unset, no /metrics. */
  metricsToken?: string;
}

/**
 * The ingest service: `/postback` and `/click`, the hot paths, on plain node:http (Express and
 * its router cost a quarter of the request, pino-http a tenth even when silent), with the
 * same validation, answers and error envelope as everywhere; everything else (health,
 * metrics, 404s) through a small Express app. Every answer carries an X-Request-Id (a sane
 * incoming one is kept), also in the error envelope and on the request's log line.
 */
export function createApp(deps: IngestDeps): RequestListener {
  const { logger, metrics, health } = deps;
  const context: IngestContext = {
    deps,
    enqueue: createEnqueuers(deps),
    trust: compileTrust(deps.frontDoor?.trustProxy ?? false),
    reportRedisError: deps.reportRedisError ?? errorReporter(logger),
    reportLookupError: errorReporter(logger),
  };
  const click = createClickHandler(context);
  const postback = createPostbackHandler(context);

  const others = express();
  others.disable('x-powered-by');
  others.use(requestId());
  others.use(securityHeaders());
  others.use(closeConnectionsWhenDraining(health));
  others.use(healthRouter(health, { details: bearerMatches(deps.metricsToken) }));
  others.get('/metrics', protectedMetricsHandler(metrics, deps.metricsToken));
  others.use(notFoundHandler);
  others.use(errorHandler({ onServerError: (error, req) => logger.error({ err: error, request_id: (req as { id?: unknown }).id }, 'unhandled error') }));

  /** One log line and the request metrics, when the answer is sent. */
  const observe = (req: IncomingMessage, res: ServerResponse, route: string, ids: RequestIds) => {
    const started = performance.now();
    res.once('finish', () => {
      const seconds = (performance.now() - started) / 1000;
      const labels = { method: req.method ?? '', route, status: String(res.statusCode) };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, seconds);
      // A 503 is the designed answer while a dependency is down (the outage has lines of its
      // own, one per interval): at error level it would be one per request.
      const level = res.statusCode >= 500 && res.statusCode !== 503 ? 'error' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      const line = {
        req: {
          method: req.method,
          url: redactUrl(route === '/postback/{key}' ? req.url?.replace(/^(\/postback\/)[^/?]+/i, '$1[redacted]') : req.url, ids.secrets),
        },
        res: { statusCode: res.statusCode },
        responseTime: Math.round(seconds * 1000),
        request_id: ids.requestId,
        ...(ids.postbackId ? { postback_id: ids.postbackId } : {}),
      };
      logger[level](line, level === 'error' ? 'request errored' : 'request completed');
    });
  };

  const fail = (res: ServerResponse, error: unknown, id: string) => {
    const reply = errorReply(error, id);
    if (reply.unexpected) logger.error({ err: error, request_id: id }, 'unhandled error');
    sendJson(res, reply.status, reply.body, reply.headers);
  };

  return (req, res) => {
    // The same URL parsing as Express (parseurl): origin-form and absolute-form alike; a target
    // it cannot read (`GET http://[::1/`) is a 400, not an exception out of the handler.
    let url: ReturnType<typeof parseUrl>;
    try {
      url = parseUrl(req);
    } catch {
      answerMalformedUrl(res, requestIdFor(req.headers['x-request-id']));
      return;
    }
    const path = normalizePath(url?.pathname ?? '/');
    // `/postback/{key}`: the key in the path, as it was sent (the path is matched in any case).
    const pathKey = path.startsWith('/postback/') ? keyInPath(url!.pathname!) : undefined;
    const route =
      path === '/postback' || pathKey !== undefined || (path === '/click' && (req.method === 'GET' || req.method === 'HEAD'))
        ? pathKey === undefined
          ? path
          : '/postback/{key}'
        : null;
    if (!route) {
      others(req, res);
      return;
    }
    const ids: RequestIds = { requestId: requestIdFor(req.headers['x-request-id']) };
    res.setHeader(REQUEST_ID_HEADER, ids.requestId);
    if (!health.accepting) res.setHeader('connection', 'close');
    observe(req, res, route, ids);
    const rawQuery = typeof url?.query === 'string' ? url.query : '';
    let handled: Promise<void>;
    let query: Query = {};
    try {
      query = parseQuery(rawQuery);
    } catch (error) {
      fail(res, error, ids.requestId);
      return;
    }
    // A client never sends a fragment: a raw "#" is part of a value that was not percent-encoded,
    // and reading the URL up to it would cut that value short.
    if (req.url?.includes('#'))
      handled = Promise.reject(badRequest({ _: 'the URL contains a raw "#"; percent-encode it as %23' }, 'The URL contains a raw "#".'));
    else if (route === '/click') handled = click(req, res, query);
    // A HEAD must never enqueue anything.
    else if (req.method === 'GET' || req.method === 'POST') handled = postback(req, res, rawQuery, query, pathKey, ids);
    else handled = Promise.reject(new HttpError(405, 'method_not_allowed', 'Use GET or POST.', undefined, { Allow: 'GET, POST' }));
    handled.catch((error: unknown) => fail(res, error, ids.requestId));
  };
}

/** What a request's log line names: its id, the postback it queued, and the advertiser's secrets (never logged, whatever their shape). */
interface RequestIds {
  requestId: string;
  postbackId?: string;
  secrets?: readonly string[];
}

/** Express matches paths without regard to case or a trailing slash: so do the fast paths. */
function normalizePath(path: string): string {
  const lower = path.toLowerCase();
  return lower.length > 1 && lower.endsWith('/') ? lower.slice(0, -1) : lower;
}

/** The key of `/postback/{key}` (one segment, a trailing slash allowed), or undefined for any other path. */
function keyInPath(pathname: string): string | undefined {
  const match = /^\/postback\/([^/]+)\/?$/i.exec(pathname);
  if (!match) return undefined;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}
