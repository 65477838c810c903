import type { IncomingMessage, ServerResponse } from 'node:http';
import { blockedBeforeLookup, choosePostbackKey, collectKey, decidePostback, effectiveRateLimit, hashPostbackKey, secretsOf } from '@trackway/domain';
import { BODY_LIMITS, HttpError, badRequest, rateLimited, tooManyFailures, unavailable } from '@trackway/http';
import { authFailureGuard, clientAddress, postbackRateLimiter } from '@trackway/runtime';
import { WebhookVerificationError, verifySignature } from '@trackway/webhooks';
import { basePrefixOf } from '@trackway/queues';
import express from 'express';
import typeIs from 'type-is';
import type { IngestContext, Query } from './context';
import { checkBody } from './postback-input';
import { sendJson } from './reply';

const MAX_BODY = BODY_LIMITS.postback;
const JSON_TYPES = ['application/json', 'application/*+json'];
const BODY_TYPES = [...JSON_TYPES, 'application/x-www-form-urlencoded'];
// Signed postbacks' webhook-ids are remembered this long: the ±5 min tolerance on both sides
// and a minute for clocks that differ between replicas; beyond it, the timestamp is refused.
const SIGNED_ID_TTL_MS = 11 * 60_000;
// How long an id is held while its postback is being queued (see below).
const SIGNED_ID_HOLD_MS = 30_000;
const MAX_WEBHOOK_ID = 256;

type RawRequest = IncomingMessage & { rawBody?: Buffer };

/**
 * `/postback` and `/postback/{key}`: a thin shell around decidePostback (packages/domain). It
 * reads the body and the key, refuses an address over AUTH_FAILURE_LIMIT before any lookup,
 * loads the advertiser and checks a signature, lets the decision accept or refuse, then spends
 * the signed webhook-id and the advertiser's rate, and answers 202 once the job is in Redis.
 */
export function createPostbackHandler({ deps, enqueue, trust, reportRedisError, reportLookupError }: IngestContext) {
  const { redis, lookups, metrics } = deps;
  const prefix = deps.frontDoor?.prefix ?? basePrefixOf(deps.queues.postbacks.opts.prefix ?? 'trackway');
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
      reportLookupError({ lookup: 'advertiser' }, error, 'advertiser lookup failed');
      throw unavailable('Postback keys cannot be checked right now; retry later.', 5);
    }
  };

  return async (
    req: IncomingMessage,
    res: ServerResponse,
    rawQuery: string,
    query: Query,
    pathKey: string | undefined,
    ids: { postbackId?: string; secrets?: readonly string[] },
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
        secrets: (ids.secrets = secretsOf(key!, signingSecrets)),
      },
      address,
      addressAllowed: !advertiser?.allows || advertiser.allows(address),
      signature: {
        sent: signatureSent,
        idTooLong,
        verify: () => verifyPostbackSignature(method === 'POST' ? (rawBody ?? '') : rawQuery, req, signingSecrets),
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
    sendJson(res, 202, { postback_id: postbackId, status: 'queued', ignored_params: ignoredNames });
  };
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

/** What checking a signed postback against the live secrets says: its webhook-id, or why not. */
function verifyPostbackSignature(payload: string | Buffer, req: IncomingMessage, secrets: string[]): { id: string } | { error: string } {
  try {
    return { id: verifySignature(payload, req.headers, secrets).id };
  } catch (error) {
    if (error instanceof WebhookVerificationError) return { error: error.message };
    throw error;
  }
}
