import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import querystring from 'node:querystring';
import type { ClickIdCodec } from '@trackway/clickid';
import { hashPostbackKey } from '@trackway/domain';
import { HttpError, badRequest, errorHandler, errorReply, notFoundHandler, textProblem, unavailable } from '@trackway/http';
import type { Logger } from '@trackway/logger';
import type { TypedQueue } from '@trackway/queues';
import { type HealthState, type Metrics, STATIC_SECURITY_HEADERS, bearerMatches, closeConnectionsWhenDraining, healthRouter, protectedMetricsHandler, securityHeaders } from '@trackway/runtime';
import encodeUrl from 'encodeurl';
import express from 'express';
import parseUrl from 'parseurl';
import proxyAddr from 'proxy-addr';
import typeIs from 'type-is';
import type { Redis } from 'ioredis';
import { createEnqueuers } from './enqueue';
import type { IngestLookups } from './lookups';
import { collectParams, validatePostback } from './postback-input';

export interface IngestDeps {
  queues: { postbacks: TypedQueue<'postbacks'>; clicks: TypedQueue<'clicks'> };
  /** The producer connection the queues use: checked before each enqueue so outages fail fast. */
  redis: Redis;
  lookups: IngestLookups;
  clickIds: ClickIdCodec;
  logger: Logger;
  metrics: Metrics;
  health: HealthState;
  /** METRICS_TOKEN: /metrics (and /readyz's details) need it as a bearer token; unset, no /metrics. */
  metricsToken?: string;
}

export const MAX_BODY = '16kb';
const SUB_KEYS = ['sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
const POSITIVE_INT = /^[1-9]\d{0,9}$/;
const BODY_TYPES = ['application/json', 'application/*+json', 'application/x-www-form-urlencoded'];
// Client IPs (kept with clicks) come from X-Forwarded-For only when a private-network proxy sent it.
const trustProxy = proxyAddr.compile(['loopback', 'linklocal', 'uniquelocal']);

type Query = Record<string, string | string[] | undefined>;

/**
 * The ingest service: `/postback` and `/click`, the hot paths, on plain node:http (Express and
 * its router cost a quarter of the request, pino-http a tenth even when silent), with the
 * same validation, answers and error envelope as everywhere; everything else (health,
 * metrics, 404s) through a small Express app.
 */
export function createApp(deps: IngestDeps): RequestListener {
  const { redis, lookups, clickIds, logger, metrics, health } = deps;
  const enqueue = createEnqueuers(deps);
  const jsonBody = express.json({ limit: MAX_BODY, strict: false, type: ['application/json', 'application/*+json'] });
  const formBody = express.urlencoded({ limit: MAX_BODY, extended: false, parameterLimit: 200 });
  // body-parser's own middlewares work on plain node requests: one of them takes the body.
  const readBody = (req: IncomingMessage, res: ServerResponse) =>
    new Promise<unknown>((resolve, reject) => {
      jsonBody(req as express.Request, res as express.Response, (error?: unknown) => {
        if (error) reject(error);
        else formBody(req as express.Request, res as express.Response, (formError?: unknown) => (formError ? reject(formError) : resolve((req as { body?: unknown }).body)));
      });
    });

  const others = express();
  others.disable('x-powered-by');
  others.use(securityHeaders());
  others.use(closeConnectionsWhenDraining(health));
  others.use(healthRouter(health, { details: bearerMatches(deps.metricsToken) }));
  others.get('/metrics', protectedMetricsHandler(metrics, deps.metricsToken));
  others.use(notFoundHandler);
  others.use(errorHandler({ onServerError: (error) => logger.error({ err: error }, 'unhandled error') }));

  /** One log line and the request metrics, when the answer is sent. */
  const observe = (req: IncomingMessage, res: ServerResponse, route: string, ids: { postbackId?: string }) => {
    const started = performance.now();
    res.once('finish', () => {
      const seconds = (performance.now() - started) / 1000;
      const labels = { method: req.method ?? '', route, status: String(res.statusCode) };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, seconds);
      const level = res.statusCode >= 500 ? 'error' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      const line = { req: { method: req.method, url: redactUrl(req.url) }, res: { statusCode: res.statusCode }, responseTime: Math.round(seconds * 1000), ...(ids.postbackId ? { postback_id: ids.postbackId } : {}) };
      logger[level](line, level === 'error' ? 'request errored' : 'request completed');
    });
  };

  const fail = (res: ServerResponse, error: unknown) => {
    const reply = errorReply(error);
    if (reply.unexpected) logger.error({ err: error }, 'unhandled error');
    send(res, reply.status, reply.body, reply.headers);
  };

  const click = async (req: IncomingMessage, res: ServerResponse, query: Query) => {
    const fields: Record<string, string> = {};
    const offerId = single(query, 'offer_id', fields);
    const affiliateId = single(query, 'affiliate_id', fields);
    if (offerId !== undefined && !POSITIVE_INT.test(offerId)) fields.offer_id = 'must be a positive integer';
    if (affiliateId !== undefined && !POSITIVE_INT.test(affiliateId)) fields.affiliate_id = 'must be a positive integer';
    if (offerId === undefined) fields.offer_id ??= 'is required';
    if (affiliateId === undefined) fields.affiliate_id ??= 'is required';
    const subs: Partial<Record<(typeof SUB_KEYS)[number], string>> = {};
    for (const key of SUB_KEYS) {
      const value = single(query, key, fields);
      const problem = value === undefined ? null : value.length > 255 ? 'must be at most 255 characters' : textProblem(value);
      if (problem) fields[key] = problem;
      else if (value !== undefined) subs[key] = value;
    }
    if (Object.keys(fields).length > 0) throw badRequest(fields);

    const [offer, affiliate] = await Promise.all([lookups.offer.get(offerId!), lookups.affiliate.get(affiliateId!)]).catch((error: unknown) => {
      logger.error({ err: error }, 'offer or affiliate lookup failed');
      throw unavailable('Clicks cannot be resolved right now; retry later.', 5);
    });
    if (!offer || offer.status !== 'active') {
      metrics.clicks.inc({ outcome: 'not_found' });
      throw new HttpError(404, 'offer_not_found', 'No active offer has this offer_id.');
    }
    if (!affiliate || affiliate.status !== 'active') {
      metrics.clicks.inc({ outcome: 'not_found' });
      throw new HttpError(404, 'affiliate_not_found', 'No active affiliate has this affiliate_id.');
    }

    const clickedAt = new Date();
    const clickId = clickIds.issue({ offerId: offer.id, affiliateId: affiliate.id, clickedAt });
    // Recording the click is for reporting only: the click ID is self-verifying, so the
    // redirect never waits on (or fails with) the clicks queue.
    const userAgent = req.headers['user-agent'];
    enqueue
      // proxy-addr finds no address once the client has gone (its socket closed meanwhile).
      .click({ clickId, offerId: offer.id, affiliateId: affiliate.id, clickedAt: clickedAt.toISOString(), subs, ip: (proxyAddr(req, trustProxy) as string | undefined)?.slice(0, 45), userAgent: userAgent?.slice(0, 512) })
      .catch((error: unknown) => {
        metrics.clicks.inc({ outcome: 'enqueue_failed' });
        logger.warn({ err: error, click_id: clickId }, 'click not recorded');
      });
    metrics.clicks.inc({ outcome: 'redirected' });
    const location = encodeUrl(destinationFor(offer.destinationUrl, { click_id: clickId, offer_id: String(offer.id), affiliate_id: String(affiliate.id), ...subs }));
    const body = `Found. Redirecting to ${location}`;
    res.writeHead(302, { ...STATIC_SECURITY_HEADERS, location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const postback = async (req: IncomingMessage, res: ServerResponse, query: Query, ids: { postbackId?: string }) => {
    const sources: Record<string, unknown>[] = [query];
    if (req.method === 'POST') {
      const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
      if (hasBody && !typeIs(req, BODY_TYPES)) throw new HttpError(415, 'unsupported_media_type', 'Send JSON or application/x-www-form-urlencoded.');
      const body = await readBody(req, res);
      if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
        throw badRequest({ _: 'the JSON body must be an object' }, 'The request body must be a JSON object.');
      }
      if (body) sources.push(body as Record<string, unknown>);
    }

    const { values, fields } = collectParams(sources);
    const key = postbackKey(req, values.key, fields);
    if (fields.key) {
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'invalid', reason: 'validation' });
      throw badRequest({ key: fields.key });
    }
    if (key === undefined) {
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'unauthorized', reason: 'missing_key' });
      throw new HttpError(401, 'unauthorized', 'A postback key is required, as `key` or the X-Postback-Key header.');
    }
    const advertiser = key === null ? null : await lookupAdvertiser(key);
    if (!advertiser || advertiser.status !== 'active') {
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'unauthorized', reason: 'unknown_key' });
      throw new HttpError(401, 'unauthorized', 'The postback key is not valid.');
    }
    const input = validatePostback(values, fields);
    if (!input) {
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'invalid', reason: 'validation' });
      throw badRequest(fields);
    }

    let postbackId: string;
    try {
      postbackId = await enqueue.postback({ advertiserId: advertiser.id, receivedAt: new Date().toISOString(), ...input });
    } catch (error) {
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'unavailable', reason: 'queue' });
      logger.error({ err: error }, 'postback not queued');
      throw unavailable('The postback could not be queued; retry later.', 5);
    }
    ids.postbackId = postbackId;
    metrics.postbacks.inc({ stage: 'ingest', outcome: 'queued', reason: '' });
    send(res, 202, { postback_id: postbackId, status: 'queued' });
  };

  const lookupAdvertiser = async (key: string) => {
    try {
      return await lookups.advertiserByKeyHash.get(hashPostbackKey(key));
    } catch (error) {
      logger.error({ err: error }, 'advertiser lookup failed');
      throw unavailable('Postback keys cannot be checked right now; retry later.', 5);
    }
  };

  return (req, res) => {
    // The same URL parsing as Express (parseurl): origin-form and absolute-form alike.
    const url = parseUrl(req);
    const path = normalizePath(url?.pathname ?? '/');
    const route = path === '/postback' || (path === '/click' && (req.method === 'GET' || req.method === 'HEAD')) ? path : null;
    if (!route) {
      others(req, res);
      return;
    }
    if (!health.accepting) res.setHeader('connection', 'close');
    const ids: { postbackId?: string } = {};
    observe(req, res, route, ids);
    const query = querystring.parse(typeof url?.query === 'string' ? url.query : '') as Query;
    let handled: Promise<void>;
    // A client never sends a fragment: a raw "#" is part of a value that was not percent-encoded,
    // and reading the URL up to it would cut that value short.
    if (req.url?.includes('#')) handled = Promise.reject(badRequest({ _: 'the URL contains a raw "#"; percent-encode it as %23' }, 'The URL contains a raw "#".'));
    else if (route === '/click') handled = click(req, res, query);
    // A HEAD must never enqueue anything.
    else if (req.method === 'GET' || req.method === 'POST') handled = postback(req, res, query, ids);
    else handled = Promise.reject(new HttpError(405, 'method_not_allowed', 'Use GET or POST.', undefined, { Allow: 'GET, POST' }));
    handled.catch((error: unknown) => fail(res, error));
  };
}

/** Express matches paths without regard to case or a trailing slash: so do the fast paths. */
function normalizePath(path: string): string {
  const lower = path.toLowerCase();
  return lower.length > 1 && lower.endsWith('/') ? lower.slice(0, -1) : lower;
}

function send(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  // helmet's headers and no-store, computed once (these answers never run Express or helmet).
  res.writeHead(status, { ...STATIC_SECURITY_HEADERS, ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A key from the header or the `key` parameter: undefined when absent, null when malformed. */
function postbackKey(req: IncomingMessage, param: unknown, fields: Record<string, string>): string | null | undefined {
  if (fields.key) return null;
  const header = req.headers['x-postback-key'] || undefined;
  const key = header ?? param;
  if (key === undefined || key === '') return undefined;
  if (typeof key !== 'string' || key.length > 128) return null;
  return key;
}

function single(query: Query, name: string, fields: Record<string, string>): string | undefined {
  const value = query[name];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') {
    fields[name] = 'given more than once';
    return undefined;
  }
  return value;
}

/** Puts the values into `{click_id}`-style macros, or appends `click_id=…` when there is none. */
export function destinationFor(template: string, values: Record<string, string>): string {
  let url = template;
  let hadClickMacro = false;
  url = url.replace(/\{(click_id|offer_id|affiliate_id|sub[1-5])\}/g, (_m, name: string) => {
    if (name === 'click_id') hadClickMacro = true;
    return encodeURIComponent(values[name] ?? '');
  });
  if (hadClickMacro) return url;
  const hashAt = url.indexOf('#');
  const [base, hash] = hashAt === -1 ? [url, ''] : [url.slice(0, hashAt), url.slice(hashAt)];
  const separator = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${separator}click_id=${encodeURIComponent(values.click_id)}${hash}`;
}

/** The request URL for logs, with every parameter whose decoded name is `key` redacted. */
export function redactUrl(url: string | undefined): string | undefined {
  if (!url) return url;
  const at = url.indexOf('?');
  if (at === -1) return url;
  const parts = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const name = pair.split('=')[0];
      let decoded: string;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        decoded = name;
      }
      return decoded.trim().toLowerCase() === 'key' ? 'key=[redacted]' : pair;
    });
  return `${url.slice(0, at)}?${parts.join('&')}`;
}
