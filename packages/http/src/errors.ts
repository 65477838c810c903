import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { FieldErrors } from '@trackway/domain';
import { isUtf8 } from 'node:buffer';
import parseUrl from 'parseurl';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { REQUEST_ID_HEADER, requestIdFor } from './request-id';
import { z } from 'zod';
import { inputErrorMap } from './input-messages';

/** Field name → what is wrong with it (one type with the domain's input rules). */
export type { FieldErrors };

/** An error that becomes `{"error": {"code", "message", "fields"?, "request_id"?}}` with its status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields?: FieldErrors,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (fields: FieldErrors, message = 'The request has invalid fields.') => new HttpError(400, 'invalid_request', message, fields);
export const notFound = (what = 'Resource') => new HttpError(404, 'not_found', `${what} not found.`);
/** 429 rate_limited: over a rate limit, or too many failed authentications; retry after the given seconds. */
export const rateLimited = (message: string, retryAfterSeconds: number) =>
  new HttpError(429, 'rate_limited', message, undefined, { 'Retry-After': String(retryAfterSeconds) });
export const tooManyFailures = (retryAfterSeconds: number) =>
  rateLimited('Too many failed authentications from this address; retry after Retry-After seconds.', retryAfterSeconds);
export const unavailable = (message: string, retryAfterSeconds = 5) =>
  new HttpError(503, 'unavailable', message, undefined, { 'Retry-After': String(retryAfterSeconds) });

/** The error envelope; `requestId` (the answer's X-Request-Id) when the server gave the request one. */
export function envelope(code: string, message: string, fields?: FieldErrors, requestId?: string) {
  const error: { code: string; message: string; fields?: FieldErrors; request_id?: string } = { code, message };
  if (fields && Object.keys(fields).length > 0) error.fields = fields;
  if (requestId !== undefined) error.request_id = requestId;
  return { error };
}

/** Zod issues as `{field: reason}`, one reason per field (the first); an unknown field is named itself. */
export function zodFields(error: z.ZodError): FieldErrors {
  const fields: FieldErrors = {};
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const name of issue.keys) fields[[...issue.path, name].join('.')] ??= 'is not a field this request takes';
      continue;
    }
    const key = issue.path.length > 0 ? issue.path.join('.') : '_';
    fields[key] ??= issue.message;
  }
  return fields;
}

/** Parses input with a schema at the boundary, or throws a 400 naming every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  // zod drops a `__proto__` key of a record without a word: it is refused instead.
  const proto = protoKeyPath(input, 0);
  if (proto !== null) throw badRequest({ [proto]: 'a key named __proto__ is not accepted' });
  const result = schema.safeParse(input, { error: inputErrorMap });
  if (!result.success) throw badRequest(zodFields(result.error));
  return result.data;
}

/** The dotted path of a `__proto__` key in a JSON value (looked for 64 levels deep at most), or null. */
function protoKeyPath(value: unknown, depth: number): string | null {
  if (value === null || typeof value !== 'object' || depth > 64) return null;
  for (const [key, inner] of Object.entries(value)) {
    if (key === '__proto__') return key;
    const below = protoKeyPath(inner, depth + 1);
    if (below !== null) return `${key}.${below}`;
  }
  return null;
}

/** The id requestId() gave this request, if it ran. */
export function requestIdOf(res: { locals?: Record<string, unknown> }): string | undefined {
  const id = res.locals?.requestId;
  return typeof id === 'string' ? id : undefined;
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, 'not_found', `No route for ${req.method} ${req.path}.`));
};

// body-parser's error types, mapped to client errors: nothing a client sends yields a 5xx.
const BODY_ERRORS: Record<string, [number, string, string]> = {
  'entity.too.large': [413, 'payload_too_large', 'The request body is too large.'],
  'entity.parse.failed': [400, 'malformed_body', 'The request body could not be parsed.'],
  'entity.verify.failed': [400, 'malformed_body', 'The request body could not be verified.'],
  'encoding.unsupported': [415, 'unsupported_encoding', 'The content encoding is not supported.'],
  'charset.unsupported': [415, 'unsupported_charset', 'The charset is not supported.'],
  'request.aborted': [400, 'request_aborted', 'The request was aborted.'],
  'request.size.invalid': [400, 'malformed_body', 'The request body size does not match Content-Length.'],
  'stream.encoding.set': [400, 'malformed_body', 'The request body could not be read.'],
  'parameters.too.many': [413, 'payload_too_large', 'Too many parameters.'],
};

/** The answer to an error: status, envelope and headers; `unexpected` marks a 5xx (a bug). */
export interface ErrorReply {
  status: number;
  body: ReturnType<typeof envelope>;
  headers?: Record<string, string>;
  unexpected?: boolean;
}

// Prisma's codes for a database it cannot reach or that stopped answering (P1001 unreachable,
// P1002/P1008 timed out, P1017 connection closed, P2024 no pool connection in time): PostgreSQL's
// alone. (P1000 bad credentials, P1003 no such database, P1010 access denied are not outages.)
const PRISMA_UNREACHABLE = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
// The socket errors a driver passes on as they are: Postgres's or Redis's alike.
const SOCKET_UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** pg-pool's words for a connection it could not make or lost (PostgreSQL's alone). */
const PG_CONNECTION_LOST = /timeout exceeded when trying to connect|Connection terminated/;

const fieldsOf = (error: unknown) => {
  const { code, message } = (error !== null && typeof error === 'object' ? error : {}) as { code?: unknown; message?: unknown };
  return { code: typeof code === 'string' ? code : '', message: typeof message === 'string' ? message : '' };
};

/** Whether an error says a store (Postgres, or Redis) could not be reached: the client may retry. */
export function isStoreUnreachable(error: unknown): boolean {
  const { code, message } = fieldsOf(error);
  return PRISMA_UNREACHABLE.has(code) || SOCKET_UNREACHABLE.has(code) || PG_CONNECTION_LOST.test(message);
}

/**
 * Whether an error says PostgreSQL could not be reached (not Redis, whose socket errors look
 * alike): Prisma's codes and pg-pool's words are PostgreSQL's alone; a socket error counts when
 * it names PostgreSQL's port.
 */
export function isPostgresUnreachable(error: unknown, port: string): boolean {
  const { code, message } = fieldsOf(error);
  if (PRISMA_UNREACHABLE.has(code) || PG_CONNECTION_LOST.test(message)) return true;
  return SOCKET_UNREACHABLE.has(code) && new RegExp(`:${port}(?!\\d)`).test(message);
}

/**
 * What a client sees for an error, on the Express paths and on ingest's plain node:http paths
 * alike; `requestId`, when given, goes into the envelope.
 */
export function errorReply(error: unknown, requestId?: string): ErrorReply {
  const envelope_ = (code: string, message: string, fields?: FieldErrors) => envelope(code, message, fields, requestId);
  if (error instanceof HttpError) return { status: error.status, body: envelope_(error.code, error.message, error.fields), headers: error.headers };
  // An outage, not a bug: 503 with Retry-After like every other outage answer, and no
  // "unhandled error" line for each request while it lasts (readiness names the check).
  if (isStoreUnreachable(error)) return errorReply(unavailable('A store Trackway needs cannot be reached right now; retry later.'), requestId);
  const type = (error as { type?: string })?.type;
  const known = type ? BODY_ERRORS[type] : undefined;
  if (known) return { status: known[0], body: envelope_(known[1], known[2]) };
  if (error instanceof z.ZodError) return { status: 400, body: envelope_('invalid_request', 'The request has invalid fields.', zodFields(error)) };
  // URIError from a malformed percent-encoding in the path is the client's too.
  if (error instanceof URIError) return { status: 400, body: envelope_('malformed_url', 'The URL is not correctly encoded.') };
  // Prisma's "record to update or delete does not exist": a row read a moment ago and deleted
  // by a concurrent request before this one's write (e.g. disable beside DELETE) is gone.
  if ((error as { code?: unknown })?.code === 'P2025' && (error as Error)?.name === 'PrismaClientKnownRequestError') {
    return { status: 404, body: envelope_('not_found', 'The resource was deleted meanwhile.') };
  }
  // Any other error the body parser marks as the client's (e.g. a body that claims gzip but
  // is not) keeps its 4xx.
  const status = (error as { status?: unknown; expose?: unknown })?.status;
  if (typeof status === 'number' && status >= 400 && status < 500 && (error as { expose?: unknown }).expose === true) {
    return { status, body: envelope_('malformed_body', 'The request body could not be read.') };
  }
  return { status: 500, body: envelope_('internal_error', 'Something went wrong on our side.'), unexpected: true };
}

export interface ErrorHandlerOptions {
  onServerError?: (error: unknown, req: Parameters<ErrorRequestHandler>[1]) => void;
}

export function errorHandler(options: ErrorHandlerOptions = {}): ErrorRequestHandler {
  return (error, req, res, next) => {
    if (res.headersSent) return next(error);
    const reply = errorReply(error, requestIdOf(res));
    if (reply.unexpected) options.onServerError?.(error, req);
    if (reply.headers) res.set(reply.headers);
    res.status(reply.status).json(reply.body);
  };
}

/**
 * A request target that Node accepted but no URL parser here can read (`GET http://[::1/`):
 * answered 400 with the envelope before the app sees it. Without this, parseurl throws out of
 * ingest's handler (an uncaught exception) and Express's router falls through to finalhandler's
 * HTML 404.
 */
export function malformedUrl(req: IncomingMessage): boolean {
  try {
    parseUrl(req);
    return false;
  } catch {
    return true;
  }
}

/** Writes the 400 `malformed_url` envelope on a plain node:http response. */
export function answerMalformedUrl(res: ServerResponse, requestId?: string): void {
  const reply = errorReply(new URIError('malformed'), requestId);
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    ...(requestId === undefined ? {} : { [REQUEST_ID_HEADER]: requestId }),
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(text);
}

/** A request listener that answers unparsable targets itself (see malformedUrl). */
export function guardUrl(listener: RequestListener): RequestListener {
  return (req, res) => {
    if (malformedUrl(req)) answerMalformedUrl(res, requestIdFor(req.headers['x-request-id']));
    else listener(req, res);
  };
}

/** body-parser's `verify`: a body whose bytes are not UTF-8 is a 400 (the parser would store U+FFFD in their place). */
export function refuseNonUtf8Body(_req: IncomingMessage, _res: ServerResponse, buf: Buffer): void {
  if (!isUtf8(buf)) throw badRequest({ _: 'the body holds bytes that are not UTF-8' }, 'The request body is not valid UTF-8.');
}
