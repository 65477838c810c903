import type { ClickIdCodec } from '@trackway/clickid';
import { hashPostbackKey, newId } from '@trackway/domain';
import { HttpError, badRequest, errorHandler, notFoundHandler, textProblem, unavailable } from '@trackway/http';
import type { Logger } from '@trackway/logger';
import { type TypedQueue, failFast } from '@trackway/queues';
import type { Redis } from 'ioredis';
import { type HealthState, type Metrics, closeConnectionsWhenDraining, healthRouter, httpMetrics, metricsHandler } from '@trackway/runtime';
import express, { type Express, type Request, type Response } from 'express';
import { pinoHttp } from 'pino-http';
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
}

export const MAX_BODY = '16kb';
const SUB_KEYS = ['sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
const POSITIVE_INT = /^[1-9]\d{0,9}$/;

export function createApp(deps: IngestDeps): Express {
  const { queues, redis, lookups, clickIds, logger, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  // Client IPs (kept with clicks) come from X-Forwarded-For only when a private-network proxy sent it.
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');
  app.use(closeConnectionsWhenDraining(deps.health));
  app.use(httpMetrics(metrics));
  app.use(healthRouter(deps.health));
  app.get('/metrics', metricsHandler(metrics));
  app.use(
    pinoHttp({
      logger,
      autoLogging: { ignore: (req) => req.url === '/metrics' || req.url?.startsWith('/healthz') || req.url?.startsWith('/readyz') || false },
      customProps: (_req, res) => (res.locals?.postbackId ? { postback_id: res.locals.postbackId } : {}),
      serializers: { req: (req) => ({ method: req.method, url: redactUrl(req.url) }) },
    }),
  );

  app.get('/click', async (req, res) => {
    const query = req.query as Record<string, unknown>;
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
    failFast(redis, () =>
      queues.clicks.add(
        'click',
        { clicks: [{
          clickId,
          offerId: offer.id,
          affiliateId: affiliate.id,
          clickedAt: clickedAt.toISOString(),
          subs,
          ip: req.ip?.slice(0, 45),
          userAgent: req.get('user-agent')?.slice(0, 512),
        }] },
        { jobId: clickId },
      ),
    ).catch((error: unknown) => {
        metrics.clicks.inc({ outcome: 'enqueue_failed' });
        logger.warn({ err: error, click_id: clickId }, 'click not recorded');
      });
    metrics.clicks.inc({ outcome: 'redirected' });
    res.set('Cache-Control', 'no-store');
    res.set('Referrer-Policy', 'no-referrer');
    res.redirect(302, destinationFor(offer.destinationUrl, { click_id: clickId, offer_id: String(offer.id), affiliate_id: String(affiliate.id), ...subs }));
  });

  const postbackBody = [
    express.json({ limit: MAX_BODY, strict: false, type: ['application/json', 'application/*+json'] }),
    express.urlencoded({ limit: MAX_BODY, extended: false, parameterLimit: 200 }),
  ];

  const handlePostback = async (req: Request, res: Response) => {
    // Express answers HEAD with the GET handler; a HEAD must never enqueue anything.
    if (req.method === 'HEAD') throw new HttpError(405, 'method_not_allowed', 'Use GET or POST.');
    const sources: Record<string, unknown>[] = [req.query as Record<string, unknown>];
    if (req.method === 'POST') {
      const length = Number(req.get('content-length') ?? 0);
      const hasBody = length > 0 || req.get('transfer-encoding') !== undefined;
      if (hasBody && !req.is(['application/json', 'application/*+json', 'application/x-www-form-urlencoded'])) {
        throw new HttpError(415, 'unsupported_media_type', 'Send JSON or application/x-www-form-urlencoded.');
      }
      if (req.body !== undefined && req.body !== null && (typeof req.body !== 'object' || Array.isArray(req.body))) {
        throw badRequest({ _: 'the JSON body must be an object' }, 'The request body must be a JSON object.');
      }
      if (req.body) sources.push(req.body as Record<string, unknown>);
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

    const postbackId = newId('postback');
    res.locals.postbackId = postbackId;
    try {
      await failFast(redis, () =>
        queues.postbacks.add(
          'postback',
          { postbacks: [{ postbackId, advertiserId: advertiser.id, receivedAt: new Date().toISOString(), ...input }] },
          { jobId: postbackId },
        ),
      );
    } catch (error) {
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'unavailable', reason: 'queue' });
      logger.error({ err: error, postback_id: postbackId }, 'postback not queued');
      throw unavailable('The postback could not be queued; retry later.', 5);
    }
    metrics.postbacks.inc({ stage: 'ingest', outcome: 'queued', reason: '' });
    res.status(202).json({ postback_id: postbackId, status: 'queued' });
  };

  const lookupAdvertiser = async (key: string) => {
    try {
      return await lookups.advertiserByKeyHash.get(hashPostbackKey(key));
    } catch (error) {
      logger.error({ err: error }, 'advertiser lookup failed');
      throw unavailable('Postback keys cannot be checked right now; retry later.', 5);
    }
  };

  app.get('/postback', handlePostback);
  app.post('/postback', postbackBody, handlePostback);
  app.all('/postback', (_req, res) => {
    res.set('Allow', 'GET, POST');
    throw new HttpError(405, 'method_not_allowed', 'Use GET or POST.');
  });

  app.use(notFoundHandler);
  app.use(errorHandler({ onServerError: (error) => logger.error({ err: error }, 'unhandled error') }));
  return app;
}

/** A key from the header or the `key` parameter: undefined when absent, null when malformed. */
function postbackKey(req: Request, param: unknown, fields: Record<string, string>): string | null | undefined {
  if (fields.key) return null;
  const header = req.get('x-postback-key') || undefined;
  const key = header ?? param;
  if (key === undefined || key === '') return undefined;
  if (typeof key !== 'string' || key.length > 128) return null;
  return key;
}

function single(query: Record<string, unknown>, name: string, fields: Record<string, string>): string | undefined {
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
