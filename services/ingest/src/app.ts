import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { ClickIdCodec } from '@trackway/clickid';
import {
  blockedBeforeLookup,
  choosePostbackKey,
  collectKey,
  decidePostback,
  destinationFor,
  effectiveRateLimit,
  hashPostbackKey,
  secretsOf,
} from '@trackway/domain';
import {
  BODY_LIMITS,
  HttpError,
  answerMalformedUrl,
  badRequest,
  errorHandler,
  errorReply,
  notFoundHandler,
  rateLimited,
  textProblem,
  tooManyFailures,
  unavailable,
} from '@trackway/http';
import { type ErrorReporter, type Logger, errorReporter, redactUrl } from '@trackway/logger';
import type { TypedQueue } from '@trackway/queues';
import {
  type HealthState,
  JSON_ANSWER_SECURITY_HEADERS,
  type Metrics,
  STATIC_SECURITY_HEADERS,
  type TrustProxy,
  authFailureGuard,
  bearerMatches,
  clientAddress,
  closeConnectionsWhenDraining,
  compileTrust,
  healthRouter,
  postbackRateLimiter,
  protectedMetricsHandler,
  securityHeaders,
} from '@trackway/runtime';
import { WebhookVerificationError, verifySignature } from '@trackway/webhooks';
import encodeUrl from 'encodeurl';
import express from 'express';
import parseUrl from 'parseurl';
import typeIs from 'type-is';
import type { Redis } from 'ioredis';
import { createEnqueuers } from './enqueue';
import type { IngestLookups } from './lookups';
import { checkBody, parseQuery } from './postback-input';

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
  /** TRUST_PROXY, POSTBACK_RATE_LIMIT, AUTH_FAILURE_LIMIT and the Redis prefix of their counters (defaults: false, 0, 30, the queues' prefix). */
  frontDoor?: { trustProxy?: TrustProxy; postbackRateLimit?: number; authFailureLimit?: number; prefix?: string };
  /** METRICS_TOKEN: /metrics (and /readyz's details) need it as a bearer token; unset, no /metrics. */
  metricsToken?: string;
}

const MAX_BODY = BODY_LIMITS.postback;
const SUB_KEYS = ['sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
const POSITIVE_INT = /^[1-9]\d{0,9}$/;
const JSON_TYPES = ['application/json', 'application/*+json'];
const BODY_TYPES = [...JSON_TYPES, 'application/x-www-form-urlencoded'];
// Signed postbacks' webhook-ids are remembered this long: the ±5 min tolerance on both sides
// and a minute for clocks that differ between replicas; beyond it, the timestamp is refused.
const SIGNED_ID_TTL_MS = 11 * 60_000;
// How long an id is held while its postback is being queued (see the postback handler).
const SIGNED_ID_HOLD_MS = 30_000;
const MAX_WEBHOOK_ID = 256;

type Query = Record<string, string | string[] | undefined>;
type RawRequest = IncomingMessage & { rawBody?: Buffer };

/**
 * The ingest service: `/postback` and `/click`, the hot paths, on plain node:http (Express and
 * its router cost a quarter of the request, pino-http a tenth even when silent), with the
 * same validation, answers and error envelope as everywhere; everything else (health,
 * metrics, 404s) through a small Express app.
 */
export function createApp(deps: IngestDeps): RequestListener {
  const { redis, lookups, clickIds, logger, metrics, health } = deps;
  const enqueue = createEnqueuers(deps);
  const reportRedisError = deps.reportRedisError ?? errorReporter(logger);
  const prefix = deps.frontDoor?.prefix ?? deps.queues.postbacks.opts.prefix ?? 'trackway';
  const trust = compileTrust(deps.frontDoor?.trustProxy ?? false);
  const authFailures = authFailureGuard({ redis, prefix, scope: 'postback', perMinute: deps.frontDoor?.authFailureLimit ?? 30 });
  const postbackRate = postbackRateLimiter({
    redis,
    prefix,
    onError: (error) => reportRedisError({}, error, 'postback rate not synced; limiting per replica'),
  });
  const globalRateLimit = deps.frontDoor?.postbackRateLimit ?? 0;
  // The raw body is kept: a signature is over the bytes as sent.
  const keepRaw = (req: IncomingMessage, _res: ServerResponse, buf: Buffer) => void ((req as RawRequest).rawBody = buf);
  const jsonBody = express.json({ limit: MAX_BODY, strict: false, type: JSON_TYPES, verify: keepRaw });
  const formBody = express.urlencoded({ limit: MAX_BODY, extended: false, parameterLimit: 200, verify: keepRaw });
  // body-parser's own middlewares work on plain node requests: one of them takes the body.
  const readBody = (req: IncomingMessage, res: ServerResponse) =>
    new Promise<unknown>((resolve, reject) => {
      jsonBody(req as express.Request, res as express.Response, (error?: unknown) => {
        if (error) reject(error);
        else
          formBody(req as express.Request, res as express.Response, (formError?: unknown) =>
            formError ? reject(formError) : resolve((req as { body?: unknown }).body),
          );
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
      // A 503 is the designed answer while a dependency is down (the outage has lines of its
      // own, one per interval): at error level it would be one per request.
      const level = res.statusCode >= 500 && res.statusCode !== 503 ? 'error' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      const line = {
        req: { method: req.method, url: redactUrl(route === '/postback/{key}' ? req.url?.replace(/^(\/postback\/)[^/?]+/i, '$1[redacted]') : req.url) },
        res: { statusCode: res.statusCode },
        responseTime: Math.round(seconds * 1000),
        ...(ids.postbackId ? { postback_id: ids.postbackId } : {}),
      };
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
    if (offer?.status !== 'active') {
      metrics.clicks.inc({ outcome: 'not_found' });
      throw new HttpError(404, 'offer_not_found', 'No active offer has this offer_id.');
    }
    if (affiliate?.status !== 'active') {
      metrics.clicks.inc({ outcome: 'not_found' });
      throw new HttpError(404, 'affiliate_not_found', 'No active affiliate has this affiliate_id.');
    }

    const clickedAt = new Date();
    const clickId = clickIds.issue({ offerId: offer.id, affiliateId: affiliate.id, clickedAt });
    const destination = destinationFor(offer.destinationUrl, { click_id: clickId, offer_id: String(offer.id), affiliate_id: String(affiliate.id), ...subs });
    // A template stored before macros in the host were refused: never redirect off its host.
    if (destination === null)
      throw new HttpError(409, 'destination_refused', "The offer's destination would leave its host with these values; its advertiser must fix it.");
    // Recording the click is for reporting only: the click ID is self-verifying, so the
    // redirect never waits on (or fails with) the clicks queue.
    const userAgent = req.headers['user-agent'];
    // A HEAD (a link checker, a preview) is answered like the GET but records no click.
    if (req.method !== 'HEAD')
      enqueue
        // proxy-addr finds no address once the client has gone (its socket closed meanwhile).
        .click({
          clickId,
          offerId: offer.id,
          affiliateId: affiliate.id,
          clickedAt: clickedAt.toISOString(),
          subs,
          ip: clientAddress(req, trust)?.slice(0, 45),
          userAgent: userAgent?.slice(0, 512),
        })
        .catch((error: unknown) => {
          metrics.clicks.inc({ outcome: 'enqueue_failed' });
          reportRedisError({}, error, 'click not recorded');
        });
    metrics.clicks.inc({ outcome: 'redirected' });
    const location = encodeUrl(destination);
    const body = `Found. Redirecting to ${location}`;
    res.writeHead(302, {
      ...STATIC_SECURITY_HEADERS,
      location,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  };

  const postback = async (
    req: IncomingMessage,
    res: ServerResponse,
    rawQuery: string,
    query: Query,
    pathKey: string | undefined,
    ids: { postbackId?: string },
  ) => {
    const method = req.method === 'POST' ? 'POST' : 'GET';
    const { body, rawBody, numberTexts } = method === 'POST' ? await readPostbackBody(req, res) : {};
    const keyFields: Record<string, string> = {};
    const key = postbackKey(req, collectKey(body ? [query, body] : [query], keyFields), pathKey, keyFields);
    if (keyFields.key) {
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'invalid', reason: 'validation' });
      throw badRequest({ key: keyFields.key });
    }
    if (key === undefined) {
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'unauthorized', reason: 'missing_key' });
      throw new HttpError(401, 'unauthorized', 'A postback key is required, as `key`, in the path (/postback/{key}) or as the X-Postback-Key header.');
    }
    // An address over AUTH_FAILURE_LIMIT gets no lookup of a key the cache does not know
    // (answered from memory); a key it knows is served as ever, so an attacker behind the same
    // address (a NAT, a proxy TRUST_PROXY does not name) cannot lock known advertisers out.
    const address = clientAddress(req, trust);
    const blocked = authFailures.blockedFor(address);
    const knownGood = blocked > 0 && key !== null && Boolean(lookups.advertiserByKeyHash.peek(hashPostbackKey(key)));
    const refuseFor = blockedBeforeLookup({ blockedForSeconds: blocked, credentialKnownGood: knownGood });
    if (refuseFor > 0) throw tooManyFailures(refuseFor);

    // Load what the decision needs (the advertiser, its live signing secrets, the signature's
    // check), decide, then enqueue what it accepted.
    const advertiser = key === null ? null : await lookupAdvertiser(key);
    const now = Date.now();
    const signingSecrets = advertiser?.signingSecrets.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => s.secret) ?? [];
    const signatureSent = req.headers['webhook-signature'] !== undefined;
    const webhookId = req.headers['webhook-id'];
    const idTooLong = typeof webhookId === 'string' && webhookId.length > MAX_WEBHOOK_ID;
    const decision = decidePostback({
      method,
      query,
      body,
      numberTexts,
      advertiser: advertiser && {
        id: advertiser.id,
        status: advertiser.status,
        requireSignedPostbacks: advertiser.requireSignedPostbacks,
        hasSigningSecret: signingSecrets.length > 0,
        format: advertiser.format,
        secrets: secretsOf(key!, signingSecrets),
      },
      address,
      addressAllowed: !advertiser?.allows || advertiser.allows(address),
      signature: {
        sent: signatureSent,
        idTooLong,
        verified:
          advertiser?.status === 'active' && signatureSent && signingSecrets.length > 0 && !idTooLong
            ? verifyPostbackSignature(method === 'POST' ? (rawBody ?? '') : rawQuery, req, signingSecrets)
            : undefined,
      },
      receivedAt: new Date(now),
    });
    if (!decision.accepted) {
      const { refusal } = decision;
      metrics.postbacks.inc({ stage: 'ingest', ...refusal.metric });
      const error = refusal.status === 400 ? badRequest(refusal.fields ?? {}, refusal.message) : new HttpError(refusal.status, refusal.code, refusal.message);
      if (refusal.authFailure) await failedAuth(address, error);
      throw error;
    }
    const { postback: accepted, ignoredNames, signedId } = decision;
    const advertiserId = accepted.advertiserId;

    // A signed postback's webhook-id is used once. It is held for 30 s first and remembered for
    // the tolerance window only once the job is in Redis, so an advertiser's retry after a 5xx
    // (same id) is accepted at the latest 30 s later even if the release below cannot reach Redis.
    // A replay counts as a failed authentication, and is refused before it takes any of the
    // advertiser's rate.
    const replayKey = signedId === undefined ? undefined : `${prefix}:signed-postback-ids:${advertiserId}:${signedId}`;
    if (replayKey) {
      const fresh = await redis.set(replayKey, '1', 'PX', SIGNED_ID_HOLD_MS, 'NX').catch((error: unknown) => {
        reportRedisError({}, error, 'webhook-id not checked');
        throw unavailable('The postback could not be queued; retry later.', 5);
      });
      if (fresh === null) {
        metrics.postbacks.inc({ stage: 'ingest', outcome: 'unauthorized', reason: 'replayed' });
        await failedAuth(address, new HttpError(401, 'invalid_signature', 'This webhook-id was already used: a signed postback is accepted once.'));
      }
    }
    const release = () => {
      if (replayKey) redis.del(replayKey).catch(() => undefined);
    };

    const wait = postbackRate.take(advertiserId, effectiveRateLimit(globalRateLimit, advertiser!.postbackRateLimitPerSecond));
    if (wait > 0) {
      release();
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'rate_limited', reason: 'advertiser' });
      throw rateLimited('Too many postbacks for this advertiser; retry after Retry-After seconds.', wait);
    }
    let postbackId: string;
    try {
      postbackId = await enqueue.postback(accepted);
      if (replayKey) redis.pexpire(replayKey, SIGNED_ID_TTL_MS).catch(() => undefined);
    } catch (error) {
      release();
      metrics.postbacks.inc({ stage: 'ingest', outcome: 'unavailable', reason: 'queue' });
      reportRedisError({}, error, 'postback not queued');
      throw unavailable('The postback could not be queued; retry later.', 5);
    }
    ids.postbackId = postbackId;
    metrics.postbacks.inc({ stage: 'ingest', outcome: 'queued', reason: '' });
    send(res, 202, { postback_id: postbackId, status: 'queued', ignored_params: ignoredNames });
  };

  /** A POST's body: parsed (JSON or a form), its bytes (a signature is over them) and its JSON numbers as written. */
  const readPostbackBody = async (req: IncomingMessage, res: ServerResponse) => {
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !typeIs(req, BODY_TYPES)) throw new HttpError(415, 'unsupported_media_type', 'Send JSON or application/x-www-form-urlencoded.');
    const parsed = await readBody(req, res);
    const rawBody = (req as RawRequest).rawBody;
    if (parsed !== undefined && parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw badRequest({ _: 'the JSON body must be an object' }, 'The request body must be a JSON object.');
    }
    const body = (parsed ?? undefined) as Record<string, unknown> | undefined;
    const numberTexts = rawBody ? checkBody(rawBody, body, typeIs(req, JSON_TYPES) !== false) : {};
    return { body, rawBody, numberTexts };
  };

  /** Counts a failed authentication: throws `error`, or a 429 once the address is over its limit. */
  const failedAuth = async (address: string | undefined, error: HttpError): Promise<never> => {
    const blockedFor = await authFailures.fail(address);
    throw blockedFor > 0 ? tooManyFailures(blockedFor) : error;
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
    // The same URL parsing as Express (parseurl): origin-form and absolute-form alike; a target
    // it cannot read (`GET http://[::1/`) is a 400, not an exception out of the handler.
    let url: ReturnType<typeof parseUrl>;
    try {
      url = parseUrl(req);
    } catch {
      answerMalformedUrl(res);
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
    if (!health.accepting) res.setHeader('connection', 'close');
    const ids: { postbackId?: string } = {};
    observe(req, res, route, ids);
    const rawQuery = typeof url?.query === 'string' ? url.query : '';
    let handled: Promise<void>;
    let query: Query = {};
    try {
      query = parseQuery(rawQuery);
    } catch (error) {
      fail(res, error);
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
  // helmet's nosniff, CSP and no-store, computed once (these answers never run Express or helmet).
  res.writeHead(status, {
    ...JSON_ANSWER_SECURITY_HEADERS,
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
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

/** A key from the header, the path or the `key` parameter: undefined when absent, null when malformed. */
function postbackKey(req: IncomingMessage, param: unknown, pathKey: string | undefined, fields: Record<string, string>): string | null | undefined {
  if (fields.key) return null;
  const choice = choosePostbackKey(req.headers['x-postback-key'], param, pathKey);
  if (choice.kind === 'key') return choice.key;
  if (choice.kind === 'missing') return undefined;
  if (choice.problem) fields.key = choice.problem;
  return null;
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

/** What checking a signed postback against the live secrets says: its webhook-id, or why not. */
function verifyPostbackSignature(payload: string | Buffer, req: IncomingMessage, secrets: string[]): { id: string } | { error: string } {
  try {
    return { id: verifySignature(payload, req.headers, secrets).id };
  } catch (error) {
    if (error instanceof WebhookVerificationError) return { error: error.message };
    throw error;
  }
}
