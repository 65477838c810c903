import { type ReportGroup, type ReportQuery, isTimeZone, localDate } from '@trackway/domain';
import { type FieldErrors, badRequest } from '@trackway/http';
import { parseListQuery } from '../pagination';
import { ReportParams, reportRequest } from '../report-representations';

// A console page's query string: the report API's own parameters (ReportParams), parsed by the
// same schema, so a range the page takes is a range GET /v1/reports takes, and the other way round.

/** What a page's form may carry, besides its own keys: GET /v1/reports's range and filters. */
export const RANGE_KEYS = ['from', 'to', 'tz', 'count_by'] as const;
export const FILTER_KEYS = ['advertiser_id', 'offer_id', 'affiliate_id', 'event', 'sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
/** Keys every page takes that are not the report's: the message after a form was posted. */
const MESSAGE_KEYS = ['flash', 'error', 'id'] as const;

export const DEFAULT_DAYS = 30;

export type FormValues = Partial<Record<(typeof RANGE_KEYS)[number] | (typeof FILTER_KEYS)[number], string>>;

export interface ConsoleQuery {
  query: ReportQuery;
  /** The values as given (or defaulted), to fill the form and build links with. */
  form: FormValues;
}

/** The date `days` after a YYYY-MM-DD date. */
export function addDays(date: string, days: number): string {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

/** The form's values: what the query string gives, the last 30 days (today included) in the zone when it gives no range. */
export function formValues(raw: Record<string, unknown>, now = new Date()): FormValues {
  const form: FormValues = {};
  for (const key of [...RANGE_KEYS, ...FILTER_KEYS]) if (typeof raw[key] === 'string') form[key] = raw[key] as string;
  if (form.from === undefined && form.to === undefined) {
    const today = localDate(now, form.tz && isTimeZone(form.tz) ? form.tz : 'UTC');
    form.from = addDays(today, 1 - DEFAULT_DAYS);
    form.to = addDays(today, 1);
  }
  return form;
}

/**
 * A page's report query, grouped by `groupBy`, or a 400 naming each parameter it cannot take (a
 * parameter of the API the page does not offer, such as group_by or cursor, is refused, not dropped).
 */
export function consoleQuery(raw: Record<string, unknown>, groupBy: ReportGroup[], pageKeys: readonly string[] = [], now = new Date()): ConsoleQuery {
  const allowed = [...RANGE_KEYS, ...FILTER_KEYS, ...MESSAGE_KEYS, ...pageKeys];
  const fields: FieldErrors = {};
  for (const key of Object.keys(raw)) if (!allowed.includes(key)) fields[key] = `is not a parameter of this page (it takes ${allowed.join(', ')})`;
  if (Object.keys(fields).length > 0) throw badRequest(fields);
  const form = formValues(raw, now);
  const given = Object.fromEntries([...RANGE_KEYS, ...FILTER_KEYS].filter((key) => raw[key] !== undefined).map((key) => [key, raw[key]]));
  const parsed = parseListQuery(ReportParams, { ...given, from: raw.from ?? form.from, to: raw.to ?? form.to, group_by: groupBy.join(',') });
  return { query: reportRequest(parsed).query, form };
}

/** A console URL with the form's values (empty ones left out) and `extra`. */
export function linkTo(path: string, form: FormValues, extra: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...form, ...extra })) if (value !== undefined && value !== '') params.set(key, value);
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}
