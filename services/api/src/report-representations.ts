import {
  type CountBy,
  REPORT_GROUPS,
  REPORT_JSON_DEFAULT_ROWS,
  REPORT_JSON_MAX_ROWS,
  REPORT_TIME_GROUPS,
  type ReportFilters,
  type ReportGroup,
  type ReportQuery,
  isTimeZone,
  normalizeEvent,
  reportRangeProblem,
  startOfLocalDate,
} from '@trackway/domain';
import { INT_ID_MAX, badRequest, intIdSchema, text } from '@trackway/http';
import { z } from 'zod';

// The report API's shapes (GET /v1/reports, /v1/reports/summary): parsed here, once, into the
// domain's ReportQuery; answered in the shapes below (resources/reports.ts writes both JSON and CSV).

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/** Whether a date or date-time's fields name a real moment (2026-02-30 and 24:00 do not: never rolled over). */
function realCalendar(value: string): boolean {
  const [y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0] = (value.match(/\d+/g) ?? []).map(Number);
  const day = new Date(Date.UTC(y, mo - 1, d));
  return (
    y >= 1970 &&
    y <= 9999 &&
    day.getUTCFullYear() === y &&
    day.getUTCMonth() === mo - 1 &&
    day.getUTCDate() === d &&
    h <= 23 &&
    mi <= 59 &&
    sec <= 59 &&
    (value.endsWith('Z') || DATE.test(value) || (oh <= 23 && om <= 59))
  );
}

const instantInput = (end: 'from' | 'to') =>
  z
    .string()
    .refine((v) => DATE.test(v) || DATE_TIME.test(v), 'must be a date (2026-12-01) or a date-time with a zone (2026-12-01T00:00:00+05:30)')
    .refine((v) => !(DATE.test(v) || DATE_TIME.test(v)) || realCalendar(v), 'is not a real date between 1970 and 9999')
    .meta({
      description:
        end === 'from'
          ? 'Start, inclusive: a date (midnight in `tz`) or an ISO 8601 date-time with a zone, on a quarter hour.'
          : 'End, exclusive: a date (midnight in `tz`, so `to=2026-12-02` includes all of Dec 1) or a date-time with a zone, on a quarter hour. At most 366 days after `from`.',
      example: end === 'from' ? '2026-11-01' : '2026-12-01',
    });

const idList = (what: string) =>
  z
    .string()
    .regex(/^\d{1,10}(,\d{1,10}){0,99}$/, 'must be ids separated by commas (at most 100)')
    .transform((v) => v.split(',').map(Number))
    .refine((ids) => ids.every((id) => id > 0 && id <= INT_ID_MAX), 'is not a list of ids')
    .optional()
    .meta({ description: `Only these ${what} (ids, comma-separated).`, example: '12,15' });

const zone = z.string().max(64).default('UTC').refine(isTimeZone, 'must be an IANA time zone, such as Europe/Berlin or Asia/Kolkata').meta({
  description: 'The zone whose hours, days, weeks (Monday first) and months group the report, and whose midnight a date means.',
  example: 'Europe/Berlin',
});

const countBy = z
  .enum(['conversion', 'click'])
  .default('conversion')
  .meta({ description: "conversion: a conversion counts when it was recorded; click: at its click's time (clicks always at their own)." });

const filters = {
  advertiser_id: idList('advertisers'),
  offer_id: idList('offers'),
  affiliate_id: idList('affiliates'),
  event: text({ min: 1, max: 64 })
    .optional()
    .meta({ description: 'Only conversions of this event (clicks, which have none, are still counted).', example: 'sale' }),
  ...Object.fromEntries(
    (['sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const).map((name) => [
      name,
      text({ max: 255 })
        .optional()
        .meta({ description: `Only clicks and conversions whose ${name} is exactly this.` }),
    ]),
  ),
} as {
  advertiser_id: ReturnType<typeof idList>;
  offer_id: ReturnType<typeof idList>;
  affiliate_id: ReturnType<typeof idList>;
  event: z.ZodOptional<ReturnType<typeof text>>;
  sub1: z.ZodOptional<ReturnType<typeof text>>;
  sub2: z.ZodOptional<ReturnType<typeof text>>;
  sub3: z.ZodOptional<ReturnType<typeof text>>;
  sub4: z.ZodOptional<ReturnType<typeof text>>;
  sub5: z.ZodOptional<ReturnType<typeof text>>;
};

type FilterInput = { [K in keyof typeof filters]?: z.output<(typeof filters)[K]> };

function filtersOf(input: FilterInput): ReportFilters {
  const out: ReportFilters = {};
  for (const [key, value] of Object.entries(input)) if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  // Events are recorded in one form (sale, Sale and SALE are one event): the filter reads the same way.
  if (out.event !== undefined) out.event = normalizeEvent(out.event);
  return out;
}

const groupBy = z
  .string()
  .default('day')
  .transform((v, ctx) => {
    const list = v === '' ? [] : v.split(',');
    const unknown = list.filter((g) => !(REPORT_GROUPS as readonly string[]).includes(g));
    if (unknown.length > 0) ctx.addIssue({ code: 'custom', message: `takes ${REPORT_GROUPS.join(', ')}, not ${unknown.join(', ')}` });
    else if (new Set(list).size !== list.length) ctx.addIssue({ code: 'custom', message: 'names a group twice' });
    else if (list.filter((g) => (REPORT_TIME_GROUPS as readonly string[]).includes(g)).length > 1)
      ctx.addIssue({ code: 'custom', message: 'takes one of hour, day, week and month at most' });
    return list as ReportGroup[];
  })
  .meta({
    description: `Comma-separated, in the order the rows are sorted by: any of ${REPORT_GROUPS.join(', ')} (one time group at most). Empty: one row.`,
    example: 'day,offer_id',
  });

/** A report's cursor: how many rows the pages before it held. */
export const encodeReportCursor = (offset: number) => Buffer.from(JSON.stringify({ o: offset }), 'utf8').toString('base64url');
function decodeReportCursor(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  try {
    const { o } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { o: unknown };
    if (Number.isInteger(o) && (o as number) > 0) return o as number;
  } catch {
    // the 400 below
  }
  throw badRequest({ cursor: 'is not a cursor this API returned' });
}

/** `from` and `to` in the zone, as instants; a 400 naming the field when they are not a report range. */
function rangeOf(input: { from: string; to: string; tz: string }, ctx: z.RefinementCtx): { from: Date; to: Date } | null {
  if (!isTimeZone(input.tz) || typeof input.from !== 'string' || typeof input.to !== 'string') return null; // refused on its own field
  const at = (v: string) => (DATE.test(v) ? startOfLocalDate(v, input.tz) : new Date(v));
  const from = at(input.from);
  const to = at(input.to);
  for (const [field, value] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (Number.isNaN(value.getTime()) || value.getUTCFullYear() < 1970 || value.getUTCFullYear() > 9999) {
      ctx.addIssue({ code: 'custom', path: [field], message: 'is not a date between 1970 and 9999' });
      return null;
    }
  }
  const problem = reportRangeProblem(from, to);
  if (problem) {
    ctx.addIssue({ code: 'custom', path: [problem.field], message: problem.message });
    return null;
  }
  return { from, to };
}

export const ReportParams = z
  .strictObject({
    from: instantInput('from'),
    to: instantInput('to'),
    tz: zone,
    group_by: groupBy,
    count_by: countBy,
    ...filters,
    format: z.enum(['json', 'csv']).default('json').meta({ description: 'json (pages of rows) or csv (every row, streamed, with a header line).' }),
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(REPORT_JSON_MAX_ROWS)
      .optional()
      .meta({
        description: `JSON only: rows in one answer, ${REPORT_JSON_DEFAULT_ROWS} unless given, ${REPORT_JSON_MAX_ROWS} at most; next_cursor gives the rest.`,
      }),
    cursor: z.string().max(200).optional().meta({ description: 'JSON only: next_cursor of the page before.' }),
  })
  .superRefine((input, ctx) => {
    rangeOf(input, ctx);
    // A CSV holds every row: a page's parameters would be ignored, so they are refused.
    for (const name of ['limit', 'cursor'] as const)
      if (input.format === 'csv' && input[name] !== undefined)
        ctx.addIssue({ code: 'custom', path: [name], message: 'is for JSON pages; a CSV holds every row' });
  });

/** Parsed report parameters as the domain's ReportQuery, with the page asked for (a bad cursor is a 400). */
export function reportRequest(input: z.output<typeof ReportParams>) {
  const { from: _f, to: _t, tz, group_by, count_by, format, limit, cursor, ...rest } = input;
  const range = rangeOf(input, { addIssue: () => undefined } as unknown as z.RefinementCtx)!;
  const query: ReportQuery = { ...range, tz, groupBy: group_by, countBy: count_by as CountBy, filters: filtersOf(rest) };
  return { query, format, limit: limit ?? REPORT_JSON_DEFAULT_ROWS, offset: decodeReportCursor(cursor) };
}

export const ReportSummaryParams = z.strictObject({
  tz: zone,
  count_by: countBy,
  advertiser_id: filters.advertiser_id,
  offer_id: filters.offer_id,
  affiliate_id: filters.affiliate_id,
});

export function summaryRequest({ tz, count_by, ...rest }: z.output<typeof ReportSummaryParams>) {
  return { tz, countBy: count_by as CountBy, filters: filtersOf(rest) };
}

// ——— Answers ———

const reportMoney = z
  .record(z.string().regex(/^[A-Z]{3}$/), z.string().regex(/^-?\d+\.\d{2,4}$/))
  .meta({ description: 'By currency: never summed across currencies.', example: { USD: '120.00', EUR: '8.00' } });

// Sums of bigint columns, answered as JSON numbers: exact far beyond any traffic (a quadrillion).
const count = z.number().int().min(0).max(1e15);
const measures = {
  clicks: count,
  conversions: count.meta({ description: 'approved + pending.' }),
  approved: count,
  pending: count,
  rejected: count,
  amount: reportMoney.meta({ description: 'Sales of approved conversions, by currency.' }),
  revenue: reportMoney.meta({ description: 'What the network earns on approved conversions, by currency.' }),
  payout: reportMoney.meta({ description: 'What affiliates earn on approved conversions, by currency.' }),
  profit: reportMoney.meta({ description: 'revenue − payout, by currency.' }),
  pending_payout: reportMoney.meta({ description: 'Payout of pending conversions, by currency.' }),
  cr: z.number().nullable().meta({ description: 'conversions / clicks × 100, to 2 places; null without clicks.' }),
  epc: reportMoney.meta({ description: 'payout / clicks, by currency, to 4 places; {} without clicks.' }),
};

export const ReportMeasures = z.strictObject(measures).meta({ id: 'ReportMeasures' });

const keyString = z.string().nullable();
export const ReportRow = z
  .strictObject({
    hour: z.string().optional().meta({ description: "The hour, as an ISO date-time with the zone's offset.", example: '2026-11-01T05:00:00+05:30' }),
    day: z.string().optional().meta({ example: '2026-11-01' }),
    week: z.string().optional().meta({ description: 'The Monday the week begins.', example: '2026-10-26' }),
    month: z.string().optional().meta({ description: "The month's first day.", example: '2026-11-01' }),
    advertiser_id: intIdSchema.nullable().optional(),
    offer_id: intIdSchema.nullable().optional(),
    affiliate_id: intIdSchema.nullable().optional(),
    event: keyString.optional().meta({ description: 'null on the row of clicks (they have no event).' }),
    sub1: keyString.optional(),
    sub2: keyString.optional(),
    sub3: keyString.optional(),
    sub4: keyString.optional(),
    sub5: keyString.optional(),
    ...measures,
  })
  .meta({ id: 'ReportRow', description: "A group's keys under their group_by names, then its numbers." });

const EXAMPLE_MEASURES = {
  clicks: 1500,
  conversions: 31,
  approved: 30,
  pending: 1,
  rejected: 2,
  amount: { USD: '1497.00' },
  revenue: { USD: '300.00' },
  payout: { USD: '120.00', EUR: '8.00' },
  profit: { EUR: '-8.00', USD: '180.00' },
  pending_payout: { USD: '4.00' },
  cr: 2.07,
  epc: { EUR: '0.0053', USD: '0.0800' },
};

export const Report = z
  .strictObject({
    from: z.string().meta({ description: "The range's start in the zone (ISO 8601 with its offset)." }),
    to: z.string(),
    tz: z.string(),
    count_by: z.enum(['conversion', 'click']),
    group_by: z.array(z.enum(REPORT_GROUPS)),
    rows: z.array(ReportRow),
    totals: ReportMeasures,
    incomplete_results: z.boolean().meta({ description: 'true when this answer does not hold every row: next_cursor gives the rest.' }),
    next_cursor: z.string().nullable(),
  })
  .meta({
    id: 'Report',
    example: {
      from: '2026-11-01T00:00:00+00:00',
      to: '2026-11-02T00:00:00+00:00',
      tz: 'UTC',
      count_by: 'conversion',
      group_by: ['day', 'offer_id'],
      rows: [{ day: '2026-11-01', offer_id: 12, ...EXAMPLE_MEASURES }],
      totals: EXAMPLE_MEASURES,
      incomplete_results: false,
      next_cursor: null,
    },
  });

const SummaryPeriod = z.strictObject({ from: z.string(), to: z.string(), ...measures }).meta({ id: 'ReportSummaryPeriod' });
export const ReportSummary = z
  .strictObject({
    tz: z.string(),
    count_by: z.enum(['conversion', 'click']),
    today: SummaryPeriod,
    yesterday: SummaryPeriod,
    this_month: SummaryPeriod,
    last_month: SummaryPeriod,
  })
  .meta({
    id: 'ReportSummary',
    example: {
      tz: 'UTC',
      count_by: 'conversion',
      today: { from: '2026-12-06T00:00:00+00:00', to: '2026-12-07T00:00:00+00:00', ...EXAMPLE_MEASURES },
      yesterday: { from: '2026-12-05T00:00:00+00:00', to: '2026-12-06T00:00:00+00:00', ...EXAMPLE_MEASURES },
      this_month: { from: '2026-12-01T00:00:00+00:00', to: '2027-01-01T00:00:00+00:00', ...EXAMPLE_MEASURES },
      last_month: { from: '2026-11-01T00:00:00+00:00', to: '2026-12-01T00:00:00+00:00', ...EXAMPLE_MEASURES },
    },
  });
