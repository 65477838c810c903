import { BODY_LIMITS, notFound, parseInput, requestIdOf } from '@trackway/http';
import { type Request, type Response, Router } from 'express';
import { z } from 'zod';
import type { AdminClaims } from './auth';
import type { ApiDeps } from './deps';
import { idempotencyKeyOf, runIdempotent } from './idempotency';
import { parseListQuery } from './pagination';

/*
 * One definition per admin route: it registers the route, validates its input (path
 * parameters, query, body) with zod at the boundary, types its answer with the answer's schema
 * (the handler must return that schema's output type: a compile error otherwise) and documents
 * it (openapi.ts builds the document from the same definitions). Each resource is one file in
 * ./resources; docs/api.md says how to add one.
 */

export type Method = 'get' | 'post' | 'patch' | 'delete';
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;
export type SuccessStatus = 200 | 201 | 202 | 204;

/** Path parameters, and what a value that does not parse names: none, so a 404 (`<what> not found.`). */
export interface PathParams<S extends z.ZodObject = z.ZodObject> {
  schema: S;
  /** Capitalised, as in the 404's message: "Offer", "Webhook endpoint". */
  what: string;
}

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  deps: ApiDeps;
  /** The admin token's claims. */
  caller: AdminClaims;
}

export interface RouteDefinition<
  P extends z.ZodObject | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
  R extends z.ZodType | undefined = undefined,
> {
  method: Method;
  /** OpenAPI syntax, whole: /v1/offers/{id}. */
  path: `/v1/${string}`;
  summary: string;
  description: string;
  params?: PathParams<NonNullable<P>>;
  /** A list's query (pagination.ts listQuery): unknown or repeated names are refused. */
  query?: Q;
  body?: B;
  answer: { status: SuccessStatus; description: string; schema?: R };
  /** Errors beyond those every admin route can answer (401, 403, 429, 500), a bad path id's 404 and a body's 400/413/415. */
  errors?: Partial<Record<ErrorStatus, string>>;
  /**
   * Another representation of the same answer, streamed (a report as CSV): chosen when `when`
   * says so for the parsed query, written by `write` on the response itself.
   */
  stream?: {
    contentType: 'text/csv';
    description: string;
    when: (query: Out<Q>) => boolean;
    write: (context: RouteContext<Out<P>, Out<Q>, Out<B>>, res: Response) => Promise<void>;
  };
  /** Its answer must be the answer schema's output type (nothing, for a schema-less 204). */
  handler: (context: RouteContext<Out<P>, Out<Q>, Out<B>>) => Promise<R extends z.ZodType ? z.output<R> : void>;
}

/** A definition with its types erased, as registries hold it. */
export type Route = RouteDefinition<z.ZodObject | undefined, z.ZodObject | undefined, z.ZodType | undefined, z.ZodType | undefined> & { tag: string };

/** Types one route; its resource() gives it its tag. */
export function route<
  P extends z.ZodObject | undefined = undefined,
  Q extends z.ZodObject | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
  R extends z.ZodType | undefined = undefined,
>(definition: RouteDefinition<P, Q, B, R>): Omit<Route, 'tag'> {
  return definition as unknown as Omit<Route, 'tag'>;
}

export interface Resource {
  /** The document's tag for its routes, with what it is. */
  tag: string;
  description: string;
  /** Where its routes live: each route's path starts with it. */
  base: `/v1/${string}`;
  routes: Route[];
}

export function resource(o: { tag: string; description: string; base: `/v1/${string}` }, routes: Omit<Route, 'tag'>[]): Resource {
  for (const r of routes) if (!r.path.startsWith(o.base)) throw new Error(`${r.path} is not under ${o.base}`);
  return { ...o, routes: routes.map((r) => ({ ...r, tag: o.tag })) };
}

// ——— Serving ———

/** Answers every admin route can give, with what each means (the document's descriptions). */
export const ERRORS = {
  400: 'invalid_request (with `fields`), malformed_body, malformed_url or too_many_parameters.',
  401: 'unauthorized: no Bearer token, or one that is invalid or expired.',
  403: 'forbidden: the token lacks the admin scope.',
  413: `payload_too_large: the body is over ${BODY_LIMITS.admin}.`,
  415: 'unsupported_charset or unsupported_encoding.',
  429: 'rate_limited: too many failed authentications from this address; retry after Retry-After seconds.',
  500: 'internal_error: a bug on our side.',
  503: 'unavailable: Redis or Postgres cannot be reached; retry after Retry-After seconds.',
} satisfies Partial<Record<ErrorStatus, string>>;

/** Every error a route can answer, with its description: the common ones, those its inputs imply, its own, and idempotency's. */
export function routeErrors(r: Route): Partial<Record<ErrorStatus, string>> {
  const errors: Partial<Record<ErrorStatus, string>> = { 401: ERRORS[401], 403: ERRORS[403] };
  if (r.query) errors[400] = 'invalid_request: an unknown or repeated parameter, a bad cursor or limit, or a filter that is not one.';
  if (r.body) Object.assign(errors, { 400: ERRORS[400], 413: ERRORS[413], 415: ERRORS[415] });
  if (r.params) errors[404] = `No ${r.params.what.toLowerCase()} has this id.`;
  Object.assign(errors, r.errors);
  if (r.method === 'post') {
    const add = (status: ErrorStatus, text: string) => {
      errors[status] = errors[status] ? `${errors[status]} Or ${text}` : `${text[0].toUpperCase()}${text.slice(1)}`;
    };
    add(400, 'an Idempotency-Key that is not 1 to 255 printable ASCII characters.');
    add(
      409,
      'idempotency_key_in_progress: a request with this Idempotency-Key is being processed, or was interrupted before its answer was recorded; retry after Retry-After seconds.',
    );
    add(422, 'idempotency_key_reused: this Idempotency-Key was used with another route or body within 24 hours.');
  }
  return { ...errors, 429: ERRORS[429], 500: ERRORS[500] };
}

/** Express's syntax for a path below its resource's base: /v1/offers/{id} under /v1/offers → /:id. */
const expressPath = (base: string, path: string) => (path.slice(base.length) || '/').replace(/\{(\w+)\}/g, ':$1');

/** The path parameters, or a 404: a malformed id names nothing that exists. */
function parseParams(params: PathParams, raw: Request['params']): unknown {
  const result = params.schema.safeParse(raw);
  if (!result.success) throw notFound(params.what);
  return result.data;
}

async function serve(r: Route, deps: ApiDeps, req: Request, res: Response): Promise<void> {
  const context: RouteContext<unknown, unknown, unknown> = {
    params: r.params ? parseParams(r.params, req.params) : undefined,
    query: r.query ? parseListQuery(r.query, req.query as Record<string, unknown>) : undefined,
    body: r.body ? parseInput(r.body, req.body) : undefined,
    deps,
    caller: res.locals.admin as AdminClaims,
  };
  if (r.stream?.when(context.query as never)) {
    await r.stream.write(context as never, res);
    return;
  }
  const run = async () => {
    const answer = await (r.handler as (c: typeof context) => Promise<unknown>)(context);
    if (deps.checkAnswers && r.answer.schema) {
      const checked = r.answer.schema.safeParse(answer);
      if (!checked.success) throw new Error(`${r.method.toUpperCase()} ${r.path} answered outside its schema: ${z.prettifyError(checked.error)}`);
    }
    return { status: r.answer.status, body: answer };
  };
  const key = r.method === 'post' ? idempotencyKeyOf(req) : undefined;
  const { status, body, replayed } = key
    ? await runIdempotent(deps, { key, caller: context.caller, route: `${r.method} ${r.path}`, params: req.params, body: req.body }, run, () =>
        requestIdOf(res),
      )
    : { ...(await run()), replayed: false };
  if (replayed) res.setHeader('Idempotent-Replayed', 'true');
  if (status === 204) res.status(204).end();
  else if (typeof body === 'string') res.status(status).type('json').send(body);
  else res.status(status).json(body);
}

/** One router per resource, mounted at its base (so metrics label routes as /v1/offers/:id). */
export function mountResources(v1: Router, resources: readonly Resource[], deps: ApiDeps): void {
  for (const res of resources) {
    const router = Router();
    for (const r of res.routes) {
      router[r.method](expressPath(res.base, r.path), (req, response) => serve(r, deps, req, response));
    }
    v1.use(res.base.slice('/v1'.length), router);
  }
}
