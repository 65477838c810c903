import { INT_ID_MAX } from '@trackway/http';
import { z } from 'zod';
import { ids } from './representations';
import type { PathParams } from './route';

/*
 * A resource's `{id}` in the path. A value that is not an id of its kind names nothing: the
 * route answers 404 `<What> not found.` (route.ts), as for an id that names no row.
 */

/** The path's digits as the integer they are: documented as an integer, read from the path's text. */
const intFromPath = z.preprocess(
  (value) => (typeof value === 'string' && /^[1-9]\d{0,9}$/.test(value) ? Number(value) : value),
  z.int().min(1).max(INT_ID_MAX),
);

/** An integer id (advertisers, affiliates, offers). `what` as the 404 says it: "Offer". */
export function intIdPath(what: string): PathParams<z.ZodObject<{ id: typeof intFromPath }>> {
  return {
    what,
    schema: z.object({ id: intFromPath.meta({ description: `The ${what.toLowerCase()}'s id.`, example: 1, param: { required: true } }) }),
  };
}

/** A prefixed id (ep_…, dlv_…, po_…). */
export function prefixedIdPath<K extends keyof typeof ids>(kind: K, what: string): PathParams<z.ZodObject<{ id: (typeof ids)[K] }>> {
  return { what, schema: z.object({ id: ids[kind].meta({ description: `The ${what.toLowerCase()}'s id.` }) }) };
}
