import { createHash } from 'node:crypto';
import type { PrismaClient } from '@trackway/db';
import { HttpError, badRequest, errorReply } from '@trackway/http';
import type { Logger } from '@trackway/logger';
import type { Request } from 'express';
import type { AdminClaims } from './auth';
import type { ApiDeps } from './deps';

/*
 * Idempotency-Key on every admin POST, as Stripe does it: the same key and request within
 * IDEMPOTENCY_WINDOW_MS answer the first answer (status and body) without doing anything again;
 * the key with another route or body is 422 idempotency_key_reused; while the first request
 * runs, another with its key is 409 idempotency_key_in_progress (Retry-After: 1). The first
 * request claims the key with one INSERT … ON CONFLICT, so of two concurrent requests only one
 * runs. Answers are stored sealed under SECRETS_KEY (some show a secret once), per caller (the
 * token's subject), and removed once the window is over (pruneIdempotencyKeys).
 */

export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;
export const IDEMPOTENCY_KEY_MAX = 255;
const KEY_PATTERN = new RegExp(`^[\\x20-\\x7e]{1,${IDEMPOTENCY_KEY_MAX}}$`);

/** The request's Idempotency-Key, if it has one; a key that is not 1–255 printable ASCII characters is a 400. */
export function idempotencyKeyOf(req: Request): string | undefined {
  const raw = req.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !KEY_PATTERN.test(raw)) {
    throw badRequest({ 'Idempotency-Key': `must be 1 to ${IDEMPOTENCY_KEY_MAX} printable ASCII characters` }, 'The Idempotency-Key header is not one.');
  }
  return raw;
}

/** JSON with every object's keys sorted: two bodies that differ only in key order are the same request. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export interface IdempotentRequest {
  key: string;
  caller: AdminClaims;
  /** The route's method and path template. */
  route: string;
  params: unknown;
  body: unknown;
}

export interface Answer {
  status: number;
  /** The answer's value, or its JSON text when replayed. */
  body: unknown;
  replayed: boolean;
}

/**
 * Whether an error is the request's final answer (kept for replays, as Stripe keeps even a 500:
 * the request may have done its work before failing), or one that says nothing was done and to
 * retry (not kept): 503 (a store unreachable), 429, and 409 conflict (changed concurrently).
 */
function isFinal(reply: { status: number; body: { error: { code: string } } }): boolean {
  return reply.status !== 503 && reply.status !== 429 && reply.body.error.code !== 'conflict';
}

type Claimed = { created_at: Date };
type Existing = { fingerprint: string; status: number | null; body: string | null };

export async function runIdempotent(
  deps: Pick<ApiDeps, 'prisma' | 'box' | 'logger'>,
  request: IdempotentRequest,
  run: () => Promise<{ status: number; body: unknown }>,
  requestId: () => string | undefined,
): Promise<Answer> {
  const { prisma, box } = deps;
  const scope = typeof request.caller?.sub === 'string' ? sha256(request.caller.sub) : '';
  const fingerprint = sha256(`${request.route}\n${canonical(request.params)}\n${canonical(request.body)}`);
  let claimedAt: Date | undefined;
  for (let attempt = 0; attempt < 3 && claimedAt === undefined; attempt++) {
    const claimed = await prisma.$queryRaw<Claimed[]>`
      INSERT INTO idempotency_keys (scope, key, fingerprint, created_at, expires_at)
      VALUES (${scope}, ${request.key}, ${fingerprint}, now(), now() + ${IDEMPOTENCY_WINDOW_MS}::int * interval '1 millisecond')
      ON CONFLICT (scope, key) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, status = NULL, body = NULL, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at <= now()
      RETURNING created_at`;
    if (claimed.length > 0) {
      claimedAt = claimed[0].created_at;
      break;
    }
    const [existing] = await prisma.$queryRaw<Existing[]>`
      SELECT fingerprint, status, body FROM idempotency_keys WHERE scope = ${scope} AND key = ${request.key} AND expires_at > now()`;
    // Gone between the two statements (expired and pruned): claim it again.
    if (!existing) continue;
    if (existing.fingerprint !== fingerprint) {
      throw new HttpError(
        422,
        'idempotency_key_reused',
        'This Idempotency-Key was used with another route or body in the last 24 hours; use a new key for a new request.',
      );
    }
    // Never taken over, even long after: its action may have committed with its answer unrecorded
    // (the process died, or recording failed), and running it again would do it twice.
    if (existing.status === null || existing.body === null) {
      throw new HttpError(
        409,
        'idempotency_key_in_progress',
        'A request with this Idempotency-Key is being processed, or was interrupted before its answer was recorded; retry shortly, and if this persists, check whether it took effect and use a new key.',
        undefined,
        { 'Retry-After': '1' },
      );
    }
    return { status: existing.status, body: box.open(existing.body), replayed: true };
  }
  if (claimedAt === undefined) throw new Error('the Idempotency-Key could not be claimed');

  const keep = (status: number, body: unknown) =>
    prisma.$executeRaw`
      UPDATE idempotency_keys SET status = ${status}, body = ${box.seal(JSON.stringify(body) ?? 'null')}
       WHERE scope = ${scope} AND key = ${request.key} AND created_at = ${claimedAt} AND status IS NULL`;
  const release = () =>
    prisma.$executeRaw`DELETE FROM idempotency_keys WHERE scope = ${scope} AND key = ${request.key} AND created_at = ${claimedAt} AND status IS NULL`;
  // The work is done (or refused for good) by now: failing to record it must not turn its answer into an error.
  const settle = (write: () => Promise<unknown>) =>
    write().catch((error: unknown) =>
      deps.logger.warn({ err: error }, 'idempotency key not settled; it answers 409 idempotency_key_in_progress until it expires'),
    );

  let answer: { status: number; body: unknown };
  try {
    answer = await run();
  } catch (error) {
    const reply = errorReply(error, requestId());
    await settle(() => (isFinal(reply) ? keep(reply.status, reply.body) : release()));
    throw error;
  }
  await settle(() => keep(answer.status, answer.body));
  return { ...answer, replayed: false };
}

/** Deletes expired keys, at most `batch` rows a statement and `batches` statements a call. Returns how many went. */
export async function pruneIdempotencyKeys(prisma: PrismaClient, batch = 1000, batches = 10): Promise<number> {
  let total = 0;
  for (let i = 0; i < batches; i++) {
    const deleted = await prisma.$executeRaw`
      DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key FROM idempotency_keys WHERE expires_at <= now() LIMIT ${batch})`;
    total += deleted;
    if (deleted < batch) break;
  }
  return total;
}

/** Prunes expired keys every `everyMs` (unref'd: it never keeps the process up). Returns a stop function. */
export function startIdempotencyPruning(prisma: PrismaClient, logger: Logger, everyMs = 10 * 60 * 1000): () => void {
  const timer = setInterval(() => {
    pruneIdempotencyKeys(prisma).then(
      (count) => count > 0 && logger.info({ count }, 'expired idempotency keys removed'),
      (error: unknown) => logger.warn({ err: error }, 'expired idempotency keys not removed; retried at the next interval'),
    );
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
