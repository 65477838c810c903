import querystring from 'node:querystring';
import { z } from 'zod';
import { textProblem } from '@trackway/domain';
import { HttpError } from './errors';

export { textProblem };

/**
 * Client text: trimmed if asked, bounded, and storable (see textProblem). A value that is there
 * but empty, or only spaces once trimmed, is not "required": it is said to be empty or blank.
 */
export function text(options: { max: number; min?: number; trim?: boolean }) {
  const min = options.min ?? 0;
  let base = z.string();
  if (min > 0) base = base.refine((value) => value.length > 0, { message: 'must not be empty', abort: true });
  if (options.trim) base = base.trim();
  const short = min === 1 ? (options.trim ? 'must not be blank (only spaces)' : 'must not be empty') : `must be at least ${min} characters`;
  return base
    .min(min, min > 0 ? short : undefined)
    .max(options.max, `must be at most ${options.max} characters`)
    .superRefine((value, ctx) => {
      const problem = textProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
}

// The WHATWG URL parser removes every tab, CR and LF, and spaces and C0 controls at either end,
// so `new URL()` would hide them: a URL is checked as the raw string it arrived as.
const URL_STRIPPED = /[\t\n\r]|^[\u0000-\u0020]|[\u0000-\u0020]$/;

/** A URL as client text (see text), refused when a URL parser would silently change it. */
export function urlText(options: { max: number }) {
  return text(options).refine((value) => !URL_STRIPPED.test(value), 'must not contain tabs or line breaks, or begin or end with a space');
}

/** Postgres `integer` ids: positive and at most 2^31 − 1. */
export const INT_ID_MAX = 2_147_483_647;
export const intIdSchema = z.number().int().positive().max(INT_ID_MAX, 'is not an id');
export const intIdQuery = z.coerce.number().int().positive().max(INT_ID_MAX, 'is not an id');

// What both Postgres timestamptz and a JS Date hold, and a client can mean: Postgres has no
// year 0 and JS Dates end in year 275760, so the ends are the epoch and the last of year 9999.
const DATE_TIME_MIN = new Date('1970-01-01T00:00:00.000Z');
const DATE_TIME_MAX = new Date('9999-12-31T23:59:59.999Z');

/**
 * Every date-time the admin API accepts: ISO 8601 with a time zone (Z or ±hh:mm), a real
 * calendar day, within DATE_TIME_MIN…DATE_TIME_MAX once in UTC. Parsed to a Date.
 */
export const dateTimeInput = z.iso
  .datetime({ offset: true, error: 'must be an ISO 8601 date-time with a time zone, such as 2026-12-01T09:30:00Z' })
  .transform((value) => new Date(value))
  .refine(
    (date) => date >= DATE_TIME_MIN && date <= DATE_TIME_MAX,
    `must be between ${DATE_TIME_MIN.toISOString().replace('.000', '')} and ${DATE_TIME_MAX.toISOString()}`,
  );

export const MAX_QUERY_PARAMETERS = 1000;

/**
 * Express's `query parser`: what its "simple" setting does (node:querystring), except that a
 * query string with more than MAX_QUERY_PARAMETERS parameters is a 400 rather than cut short
 * (node:querystring silently drops every parameter past its maxKeys, 1000).
 */
export function parseQueryString(query: string | undefined): querystring.ParsedUrlQuery {
  if (!query) return {};
  // More than the maximum of non-empty pairs needs at least twice as many characters: shorter
  // strings (nearly every one) are not counted.
  let count = 0;
  if (query.length > 2 * MAX_QUERY_PARAMETERS) for (const pair of query.split('&')) if (pair !== '') count += 1;
  if (count > MAX_QUERY_PARAMETERS) throw new HttpError(400, 'too_many_parameters', `The query string has more than ${MAX_QUERY_PARAMETERS} parameters.`);
  return querystring.parse(query, '&', '=', { maxKeys: 0 });
}

/** The largest request bodies: the admin API's JSON, and a postback's (one place: the apps and the OpenAPI document read them). */
export const BODY_LIMITS = { admin: '100kb', postback: '16kb' } as const;
