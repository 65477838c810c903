import { INT_ID_MAX, notFound } from '@trackway/http';

/** A numeric id from the path, or a 404 (a malformed id names nothing that exists). */
export function intId(value: unknown, what: string): number {
  if (typeof value !== 'string' || !/^[1-9]\d{0,9}$/.test(value) || Number(value) > INT_ID_MAX) throw notFound(what);
  return Number(value);
}

export function prefixedId(value: unknown, prefix: string, what: string): string {
  if (typeof value !== 'string' || !new RegExp(`^${prefix}_[0-9A-Z]{26}$`).test(value)) throw notFound(what);
  return value;
}
