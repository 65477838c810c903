import { createHash, timingSafeEqual } from 'node:crypto';
import { HttpError } from '@trackway/http';
import type { Request, RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const JOB_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized', 'waiting-children'] as const;
// Circuit-breaker series are kept for at most this many endpoints at once (bounded cardinality).
export const MAX_BREAKER_SERIES = 100;

export type Metrics = ReturnType<typeof createMetrics>;

export interface QueueLike {
  name: string;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
}

/**
 * `redisReady`: whether Redis can answer now. The queue depths and breaker states are read from
 * it at scrape time; while it cannot answer they are left out (readiness tells why), so the
 * rest of /metrics is still served, at once.
 */
export function createMetrics(service: string, options: { redisReady?: () => boolean } = {}) {
  const redisReady = options.redisReady ?? (() => true);
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const trackedQueues: QueueLike[] = [];

  const queueDepth = new Gauge({
    name: 'trackway_queue_jobs',
    help: 'Jobs per queue and state, read from Redis at scrape time.',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      this.reset();
      if (!redisReady()) return;
      for (const queue of trackedQueues) {
        const counts = await queue.getJobCounts(...JOB_STATES).catch(() => undefined);
        if (!counts) return;
        for (const state of JOB_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
      }
    },
  });

  // Breakers live in Redis, shared by every delivery process: read them at scrape time, so no
  // process reports a state another process has since changed.
  let breakerSource: (() => Promise<Array<{ endpoint: string; state: 'open' | 'half_open' }>>) | undefined;
  const breakerState = new Gauge({
    name: 'trackway_circuit_breaker_state',
    help: `Per-endpoint circuit breaker, read from Redis at scrape time: 1 half-open, 2 open (closed endpoints have no series; at most ${MAX_BREAKER_SERIES}).`,
    labelNames: ['endpoint'],
    registers,
    async collect() {
      this.reset();
      if (!redisReady()) return;
      const breakers = await breakerSource?.().catch(() => undefined);
      for (const { endpoint, state } of breakers ?? []) this.set({ endpoint }, state === 'open' ? 2 : 1);
    },
  });

  // A delivery process's HTTP requests in flight and the jobs waiting for one: how close it is
  // to DELIVERY_MAX_IN_FLIGHT.
  let requestsSource: (() => { in_flight: number; waiting: number }) | undefined;
  const deliveryRequests = new Gauge({
    name: 'trackway_delivery_requests',
    help: 'Webhook requests of this delivery process: in_flight (their jobs hold no worker slot meanwhile), waiting (jobs past DELIVERY_MAX_IN_FLIGHT).',
    labelNames: ['state'],
    registers,
    collect() {
      this.reset();
      const counts = requestsSource?.();
      if (counts) for (const [state, value] of Object.entries(counts)) this.set({ state }, value);
    },
  });

  return {
    registry,
    queueDepth,
    httpRequests: new Counter({
      name: 'trackway_http_requests_total',
      help: 'HTTP requests by route and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'trackway_http_request_duration_seconds',
      help: 'HTTP request latency by route.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    postbacks: new Counter({
      name: 'trackway_postbacks_total',
      help: 'Postbacks by stage and outcome (ingest: queued/invalid/unauthorized/unavailable; attribution: accepted/duplicate/rejected).',
      labelNames: ['stage', 'outcome', 'reason'],
      registers,
    }),
    conversions: new Counter({
      name: 'trackway_conversions_total',
      help: 'Conversions entering each status.',
      labelNames: ['status'],
      registers,
    }),
    clicks: new Counter({
      name: 'trackway_clicks_total',
      help: 'Clicks by outcome (redirected, not_found, enqueue_failed, recorded).',
      labelNames: ['outcome'],
      registers,
    }),
    jobDuration: new Histogram({
      name: 'trackway_job_duration_seconds',
      help: 'Job processing time by queue and result.',
      labelNames: ['queue', 'result'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30],
      registers,
    }),
    jobAttempts: new Histogram({
      name: 'trackway_job_attempts',
      help: 'Attempts a job had made when it completed or failed.',
      labelNames: ['queue', 'result'],
      buckets: [1, 2, 3, 4, 5, 6, 8, 10, 12],
      registers,
    }),
    deliveries: new Counter({
      name: 'trackway_deliveries_total',
      help: 'Webhook delivery attempts by result and HTTP status class; result deferred (put back for an outage) and record_retried (an attempt waiting for Postgres to log it) spend no attempt.',
      labelNames: ['result', 'status_class'],
      registers,
    }),
    breakerState,
    setBreakerSource(source: typeof breakerSource) {
      breakerSource = source;
    },
    deliveryRequests,
    setRequestsSource(source: typeof requestsSource) {
      requestsSource = source;
    },
    trackQueues(queues: QueueLike[]) {
      trackedQueues.push(...queues);
    },
  };
}

/** Counts and times every request, labelled by its route pattern (never the raw path). */
export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const end = metrics.httpDuration.startTimer();
    res.on('finish', () => {
      // baseUrl is the text the client sent for the mount path, which Express matches without
      // regard to case: lower-case it so /V1/… and /v1/… are one series, not one per variant.
      const route = req.route?.path ? `${req.baseUrl.toLowerCase()}${req.route.path}` : req.baseUrl ? `${req.baseUrl.toLowerCase()}/*` : 'unmatched';
      const labels = { method: req.method, route: String(route), status: String(res.statusCode) };
      metrics.httpRequests.inc(labels);
      end(labels);
    });
    next();
  };
}

export function metricsHandler(metrics: Metrics): RequestHandler {
  return async (_req, res) => {
    res.set('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  };
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Whether a request carries `Authorization: Bearer <token>`, compared in constant time (over
 * digests, so neither the token's length nor its first differing byte shows); never without a token.
 */
export function bearerMatches(token: string | undefined): (req: Request) => boolean {
  const expected = token ? digest(token) : undefined;
  return (req) => {
    const given = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.get('authorization') ?? '')?.[1];
    return expected !== undefined && given !== undefined && timingSafeEqual(digest(given), expected);
  };
}

/**
 * `/metrics` on a public port (ingest, api): only with `Authorization: Bearer <METRICS_TOKEN>`
 * (401 otherwise), and not served at all (the app's 404) while no token is configured.
 */
export function protectedMetricsHandler(metrics: Metrics, token: string | undefined): RequestHandler {
  const serve = metricsHandler(metrics);
  const authorized = bearerMatches(token);
  return (req, res, next) => {
    if (!token) return next();
    if (!authorized(req)) {
      return next(
        new HttpError(401, 'unauthorized', 'Metrics need Authorization: Bearer <METRICS_TOKEN>.', undefined, { 'WWW-Authenticate': 'Bearer realm="metrics"' }),
      );
    }
    return serve(req, res, next);
  };
}
