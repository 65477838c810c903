import type { ErrorRequestHandler, RequestHandler } from 'express';
import { z } from 'zod';

export type FieldErrors = Record<string, string>;

/** An error that becomes `{"error": {"code", "message", "fields"?}}` with its status. */
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

export const badRequest = (fields: FieldErrors, message = 'The request has invalid fields.') =>
  new HttpError(400, 'invalid_request', message, fields);
export const notFound = (what = 'Resource') => new HttpError(404, 'not_found', `${what} not found.`);
export const unavailable = (message: string, retryAfterSeconds = 5) =>
  new HttpError(503, 'unavailable', message, undefined, { 'Retry-After': String(retryAfterSeconds) });

export function envelope(code: string, message: string, fields?: FieldErrors) {
  return { error: fields && Object.keys(fields).length > 0 ? { code, message, fields } : { code, message } };
}

/** Zod issues as `{field: reason}`, one reason per field (the first). */
export function zodFields(error: z.ZodError): FieldErrors {
  const fields: FieldErrors = {};
  for (const issue of error.issues) {
    const key = issue.path.length > 0 ? issue.path.join('.') : '_';
    fields[key] ??= issue.message;
  }
  return fields;
}

/** Parses input with a schema at the boundary, or throws a 400 naming every bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw badRequest(zodFields(result.error));
  return result.data;
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

export interface ErrorHandlerOptions {
  onServerError?: (error: unknown, req: Parameters<ErrorRequestHandler>[1]) => void;
}

export function errorHandler(options: ErrorHandlerOptions = {}): ErrorRequestHandler {
  return (error, req, res, next) => {
    if (res.headersSent) return next(error);
    if (error instanceof HttpError) {
      if (error.headers) res.set(error.headers);
      res.status(error.status).json(envelope(error.code, error.message, error.fields));
      return;
    }
    const type = (error as { type?: string })?.type;
    const known = type ? BODY_ERRORS[type] : undefined;
    if (known) {
      res.status(known[0]).json(envelope(known[1], known[2]));
      return;
    }
    if (error instanceof z.ZodError) {
      res.status(400).json(envelope('invalid_request', 'The request has invalid fields.', zodFields(error)));
      return;
    }
    // URIError from a malformed percent-encoding in the path is the client's too.
    if (error instanceof URIError) {
      res.status(400).json(envelope('malformed_url', 'The URL is not correctly encoded.'));
      return;
    }
    // Any other error the body parser marks as the client's (e.g. a body that claims gzip but
    // is not) keeps its 4xx.
    const status = (error as { status?: unknown; expose?: unknown })?.status;
    if (typeof status === 'number' && status >= 400 && status < 500 && (error as { expose?: unknown }).expose === true) {
      res.status(status).json(envelope('malformed_body', 'The request body could not be read.'));
      return;
    }
    options.onServerError?.(error, req);
    res.status(500).json(envelope('internal_error', 'Something went wrong on our side.'));
  };
}
