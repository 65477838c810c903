import { type FieldErrors, INT_ID_MAX, badRequest, inputErrorMap, zodFields } from '@trackway/http';
import { z } from 'zod';

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 200;

export const pageQuery = {
  cursor: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIMIT).default(DEFAULT_LIMIT),
};

/** A list's query: the page parameters and its filters, and nothing else (strict). */
export function listQuery<F extends z.ZodRawShape>(filters: F) {
  return z.strictObject({ ...pageQuery, ...filters });
}

/**
 * Parses a list's query, or throws a 400 naming every parameter it cannot take: an unknown
 * name (`order_id[$ne]`, a typo) would otherwise drop that filter without a word, and a
 * parameter given twice would mean one of the two values was ignored.
 */
export function parseListQuery<S extends z.ZodObject>(schema: S, query: Record<string, unknown>): z.infer<S> {
  const result = schema.safeParse(query, { error: inputErrorMap });
  if (result.success) return result.data;
  const known = Object.keys(schema.shape);
  const fields: FieldErrors = {};
  for (const name of known) if (query[name] !== undefined && typeof query[name] !== 'string') fields[name] = 'must be given once, as a single value';
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') for (const name of issue.keys) fields[name] = `is not a parameter of this list (it takes ${known.join(', ')})`;
  }
  const others = result.error.issues.filter((issue) => issue.code !== 'unrecognized_keys');
  Object.assign(fields, { ...zodFields(new z.ZodError(others)), ...fields });
  throw badRequest(fields);
}

// Cursors are opaque to clients: the last id of the page, base64url-encoded.
export function encodeCursor(id: string | number): string {
  return Buffer.from(JSON.stringify({ id }), 'utf8').toString('base64url');
}

export function decodeCursor<T extends string | number>(cursor: string | undefined, kind: 'int' | 'string'): T | undefined {
  if (cursor === undefined) return undefined;
  try {
    const { id } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { id: unknown };
    if (
      kind === 'int'
        ? Number.isInteger(id) && (id as number) > 0 && (id as number) <= INT_ID_MAX
        : typeof id === 'string' && /^[a-z]{2,3}_[0-9A-Z]{26}$/.test(id)
    )
      return id as T;
  } catch {
    // fall through to the 400 below
  }
  throw badRequest({ cursor: 'is not a cursor this API returned' });
}

/**
 * A list's page, newest first: `find` reads the rows with the list's filters and `keyset` (ids
 * below the cursor's, newest first, limit + 1 of them); `toJson` shapes each.
 */
export async function listPage<R extends { id: string | number }, J>(
  query: { cursor?: string; limit: number },
  cursor: 'int' | 'string',
  find: (keyset: { id: { lt: R['id'] } | undefined; orderBy: { id: 'desc' }; take: number }) => Promise<R[]>,
  toJson: (row: R) => J,
) {
  const after = decodeCursor<R['id']>(query.cursor, cursor);
  return page(await find({ id: after === undefined ? undefined : { lt: after }, orderBy: { id: 'desc' }, take: query.limit + 1 }), query.limit, toJson);
}

/** Keyset pagination, newest first: fetch limit + 1 rows to know whether there is a next page. */
export function page<R extends { id: string | number }, J>(rows: R[], limit: number, toJson: (row: R) => J) {
  const more = rows.length > limit;
  const data = (more ? rows.slice(0, limit) : rows).map((row) => toJson(row));
  return { data, next_cursor: more ? encodeCursor(rows[limit - 1].id) : null };
}
