import Decimal from 'decimal.js';
import { ExactDecimal } from './money';
import type { ConversionRow } from './representations';

const DAY_MS = 86_400_000;

// Reports (docs/reports.md): what a report asks, which rows answer it, how a conversion's change
// moves them, and how summed rows become the answer. Pure: the SQL lives in @trackway/ledger.

export const REPORT_TIME_GROUPS = ['hour', 'day', 'week', 'month'] as const;
export const REPORT_ID_GROUPS = ['advertiser_id', 'offer_id', 'affiliate_id'] as const;
export const REPORT_GROUPS = [...REPORT_TIME_GROUPS, ...REPORT_ID_GROUPS, 'event', 'sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
export type ReportGroup = (typeof REPORT_GROUPS)[number];
export type ReportTimeGroup = (typeof REPORT_TIME_GROUPS)[number];
export type CountBy = 'conversion' | 'click';

/** The widest range one report covers. */
export const REPORT_MAX_DAYS = 366;
/** Rows in one JSON answer (a cursor gives the next), and in one CSV answer. */
export const REPORT_JSON_MAX_ROWS = 10_000;
export const REPORT_CSV_MAX_ROWS = 1_000_000;
/** Report rows are kept per 15 minutes (UTC): every zone's hours, days and months are whole buckets. */
export const REPORT_BUCKET_MS = 15 * 60_000;

export interface ReportFilters {
  advertiser_id?: number[];
  offer_id?: number[];
  affiliate_id?: number[];
  event?: string;
  sub1?: string;
  sub2?: string;
  sub3?: string;
  sub4?: string;
  sub5?: string;
}

export interface ReportQuery {
  from: Date;
  to: Date;
  tz: string;
  groupBy: ReportGroup[];
  filters: ReportFilters;
  countBy: CountBy;
}

/** Rows in one JSON answer unless `limit` says otherwise. */
export const REPORT_JSON_DEFAULT_ROWS = 1_000;

/**
 * Which rows answer a report, cheapest first (docs/reports.md):
 * - `totals`: a zone's days without any dimension but the event (totals, the summary, a chart);
 * - `offer_days`: a zone's days by offer (and advertiser, event);
 * - `affiliate_days`: a zone's days by affiliate and sub2;
 * - `offer_affiliate_days`: a zone's days by offer and affiliate (and advertiser, event);
 * - `days`: a zone's days by every dimension but sub1;
 * - `quarters`: 15-minute rows (any zone, hours, ranges of quarter hours);
 * - `raw`: clicks and conversions themselves — only sub1 (a value per click) is kept nowhere else.
 * Day rows exist for the zones in report_zones, and answer whole local days only.
 */
export type ReportSource = 'totals' | 'offer_days' | 'affiliate_days' | 'offer_affiliate_days' | 'days' | 'quarters' | 'raw';

/** The dimensions (group keys and filters besides time) each kind of day rows holds, cheapest first. */
export const DAY_SOURCES: ReadonlyArray<readonly [ReportSource, readonly string[]]> = [
  ['totals', ['event']],
  ['offer_days', ['advertiser_id', 'offer_id', 'event']],
  ['affiliate_days', ['affiliate_id', 'sub2']],
  ['offer_affiliate_days', ['advertiser_id', 'offer_id', 'affiliate_id', 'event']],
  ['days', ['advertiser_id', 'offer_id', 'affiliate_id', 'event', 'sub2', 'sub3', 'sub4', 'sub5']],
];

/** What a report asks besides its range: its group keys and the filters it sets. */
function reportAsks(query: Pick<ReportQuery, 'groupBy' | 'filters'>): Set<string> {
  return new Set<string>([...query.groupBy, ...Object.keys(query.filters).filter((k) => query.filters[k as keyof ReportFilters] !== undefined)]);
}

export function reportSource(query: ReportQuery, zoneKept: boolean): ReportSource {
  const asks = reportAsks(query);
  if (asks.has('sub1')) return 'raw';
  const wholeDays = zoneKept && !asks.has('hour') && isLocalMidnight(query.from, query.tz) && isLocalMidnight(query.to, query.tz);
  if (!wholeDays) return 'quarters';
  const dims = [...asks].filter((k) => !(REPORT_TIME_GROUPS as readonly string[]).includes(k));
  return DAY_SOURCES.find(([, holds]) => dims.every((d) => holds.includes(d)))![0];
}

/** The rows a report's totals come from: its own source, or the zone's totals when it filters on nothing they lack. */
export function totalsSource(query: ReportQuery, rows: ReportSource): ReportSource {
  const isDayRows = DAY_SOURCES.some(([s]) => s === rows);
  return isDayRows ? reportSource({ ...query, groupBy: [] }, true) : rows;
}

/**
 * Day rows are also kept summed over blocks of days (spans), each block starting on a day number
 * (days since 1970-01-01, in the zone) that is a multiple of its span. A range of days is read as
 * the fewest blocks that tile it: 30 days are about 7 blocks, not 30 rows per group.
 */
export const REPORT_SPANS = [64, 16, 4, 1] as const;

export interface DayBlock {
  span: number;
  /** The block's first day, YYYY-MM-DD. */
  day: string;
}

const dayNumber = (date: string) => Date.parse(`${date}T00:00:00Z`) / DAY_MS;
const dateOf = (n: number) => new Date(n * DAY_MS).toISOString().slice(0, 10);

/** The blocks that tile the days [from, to) (YYYY-MM-DD, `to` exclusive), largest first where they fit. */
export function dayBlocks(from: string, to: string, spans: readonly number[] = REPORT_SPANS): DayBlock[] {
  const blocks: DayBlock[] = [];
  const end = dayNumber(to);
  for (let at = dayNumber(from); at < end; ) {
    const span = spans.find((s) => ((at % s) + s) % s === 0 && at + s <= end) ?? 1;
    blocks.push({ span, day: dateOf(at) });
    at += span;
  }
  return blocks;
}

// ——— Zones ———

const formatters = new Map<string, Intl.DateTimeFormat>();
function partsFormatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    // Names are the client's (before Postgres checks them, e.g. in any case): the cache stays bounded.
    if (formatters.size >= 1_000) formatters.clear();
    formatters.set(tz, f);
  }
  return f;
}

/**
 * An IANA zone name (Europe/Berlin, Asia/Kolkata, UTC) that this runtime's zone database knows
 * (Postgres ships the same database). Offsets such as +05:30 are not zones: Postgres would read
 * them as POSIX zones, with the sign the other way round.
 */
export function isTimeZone(tz: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/.test(tz) || tz.length > 64) return false;
  try {
    partsFormatter(tz);
    return true;
  } catch {
    return false;
  }
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function localParts(instant: Date, tz: string): LocalParts {
  const p = Object.fromEntries(
    partsFormatter(tz)
      .formatToParts(instant)
      .map(({ type, value }) => [type, value]),
  );
  return { year: +p.year, month: +p.month, day: +p.day, hour: +p.hour, minute: +p.minute, second: +p.second };
}

/** The zone's offset from UTC at this instant, in minutes (Asia/Kolkata: 330). */
export function zoneOffsetMinutes(instant: Date, tz: string): number {
  const p = localParts(instant, tz);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return Math.round((asUtc - Math.floor(instant.getTime() / 1000) * 1000) / 60_000);
}

/** The instant a local wall time begins in the zone (a time skipped by DST: the first instant after it). */
export function zonedInstant(year: number, month: number, day: number, tz: string, hour = 0, minute = 0): Date {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  let guess = wall - zoneOffsetMinutes(new Date(wall), tz) * 60_000;
  for (let i = 0; i < 3; i++) {
    const next = wall - zoneOffsetMinutes(new Date(guess), tz) * 60_000;
    if (next === guess) break;
    guess = next;
  }
  // A wall time in a DST gap does not exist: take the earlier offset's instant, which lies after the gap.
  const p = localParts(new Date(guess), tz);
  if (Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute) !== wall) {
    const before = zoneOffsetMinutes(new Date(guess - 86_400_000), tz);
    return new Date(wall - before * 60_000);
  }
  return new Date(guess);
}

/** The local date (YYYY-MM-DD) of an instant in the zone. */
export function localDate(instant: Date, tz: string): string {
  const p = localParts(instant, tz);
  return `${String(p.year).padStart(4, '0')}-${pad(p.month)}-${pad(p.day)}`;
}

export function isLocalMidnight(instant: Date, tz: string): boolean {
  const p = localParts(instant, tz);
  return p.hour === 0 && p.minute === 0 && p.second === 0 && instant.getUTCMilliseconds() === 0;
}

/** The instant a local date (YYYY-MM-DD) begins in the zone. */
export function startOfLocalDate(date: string, tz: string): Date {
  const [y, m, d] = date.split('-').map(Number);
  return zonedInstant(y, m, d, tz);
}

/** An instant as an ISO date-time with the zone's offset: 2026-12-06T05:30:00+05:30. */
export function zonedDateTime(instant: Date, tz: string): string {
  const p = localParts(instant, tz);
  const offset = zoneOffsetMinutes(instant, tz);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  return `${localDate(instant, tz)}T${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** A `from`/`to` that is not a report range, in words; null when it is one. */
export function reportRangeProblem(from: Date, to: Date): { field: 'from' | 'to'; message: string } | null {
  for (const [field, at] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (at.getTime() % REPORT_BUCKET_MS !== 0) return { field, message: 'must fall on a quarter hour (reports count per 15 minutes)' };
  }
  if (to <= from) return { field: 'to', message: 'must be after from' };
  if (to.getTime() - from.getTime() > REPORT_MAX_DAYS * 86_400_000 + 3_600_000)
    return { field: 'to', message: `must be at most ${REPORT_MAX_DAYS} days after from` };
  return null;
}

export interface Period {
  from: Date;
  to: Date;
}

/** Today, yesterday, this month and last month in the zone, as ranges ([from, to)). */
export function summaryPeriods(now: Date, tz: string): Record<'today' | 'yesterday' | 'this_month' | 'last_month', Period> {
  const p = localParts(now, tz);
  const day = (y: number, m: number, d: number) => {
    const at = new Date(Date.UTC(y, m - 1, d));
    return zonedInstant(at.getUTCFullYear(), at.getUTCMonth() + 1, at.getUTCDate(), tz);
  };
  return {
    today: { from: day(p.year, p.month, p.day), to: day(p.year, p.month, p.day + 1) },
    yesterday: { from: day(p.year, p.month, p.day - 1), to: day(p.year, p.month, p.day) },
    this_month: { from: day(p.year, p.month, 1), to: day(p.year, p.month + 1, 1) },
    last_month: { from: day(p.year, p.month - 1, 1), to: day(p.year, p.month, 1) },
  };
}

// ——— How a conversion moves its report rows ———

/** What a conversion adds to its report rows, by its status. */
export interface ReportTally {
  approved: number;
  pending: number;
  rejected: number;
  amount: string;
  revenue: string;
  payout: string;
  pendingPayout: string;
}

/** A change to a conversion's report rows: its keys (which never change) and what moved. */
export interface ReportDelta extends ReportTally {
  createdAt: Date;
  clickedAt: Date;
  advertiserId: number;
  offerId: number;
  affiliateId: number;
  event: string;
  sub2: string | null;
  sub3: string | null;
  sub4: string | null;
  sub5: string | null;
  currency: string;
  payoutCurrency: string;
  revenueCurrency: string;
}

const ZERO: ReportTally = { approved: 0, pending: 0, rejected: 0, amount: '0', revenue: '0', payout: '0', pendingPayout: '0' };

/** Counts by status; money over approved conversions (payout of pending ones as pending_payout). */
export function reportTally(c: Pick<ConversionRow, 'status' | 'amount' | 'revenue' | 'payout'> | null): ReportTally {
  if (!c) return ZERO;
  const money = (v: unknown) => new Decimal(String(v ?? 0)).toString();
  if (c.status === 'approved') return { ...ZERO, approved: 1, amount: money(c.amount), revenue: money(c.revenue), payout: money(c.payout) };
  if (c.status === 'pending') return { ...ZERO, pending: 1, pendingPayout: money(c.payout) };
  return { ...ZERO, rejected: 1 };
}

/** What moves when a conversion goes from `before` (null: it is new) to `after`; null when nothing does. */
export function reportDelta(before: ConversionRow | null, after: ConversionRow): ReportDelta | null {
  const a = reportTally(after);
  const b = reportTally(before);
  const minus = (x: string, y: string) => new Decimal(x).minus(y).toString();
  const tally: ReportTally = {
    approved: a.approved - b.approved,
    pending: a.pending - b.pending,
    rejected: a.rejected - b.rejected,
    amount: minus(a.amount, b.amount),
    revenue: minus(a.revenue, b.revenue),
    payout: minus(a.payout, b.payout),
    pendingPayout: minus(a.pendingPayout, b.pendingPayout),
  };
  const moved =
    tally.approved !== 0 ||
    tally.pending !== 0 ||
    tally.rejected !== 0 ||
    [tally.amount, tally.revenue, tally.payout, tally.pendingPayout].some((v) => !new Decimal(v).isZero());
  if (!moved) return null;
  return {
    ...tally,
    createdAt: after.createdAt,
    clickedAt: after.clickedAt,
    advertiserId: after.advertiserId,
    offerId: after.offerId,
    affiliateId: after.affiliateId,
    event: after.event,
    sub2: after.sub2 ?? null,
    sub3: after.sub3 ?? null,
    sub4: after.sub4 ?? null,
    sub5: after.sub5 ?? null,
    currency: after.currency,
    payoutCurrency: after.payoutCurrency,
    revenueCurrency: after.revenueCurrency ?? '',
  };
}

/** Report rows are kept per quarter hour (date_bin('15 minutes', at, '2000-01-01 00:00:00+00'), which epoch milliseconds align with). */
export const QUARTER_MS = 15 * 60_000;
const quarterOf = (at: Date) => new Date(Math.floor(at.getTime() / QUARTER_MS) * QUARTER_MS);
const MONEY = ['amount', 'revenue', 'payout', 'pendingPayout'] as const;

/** What one kind of report rows moves by: the conversion's time (kind 1) or its click's (kind 2), at a quarter's start. */
export interface ReportMove extends Omit<ReportDelta, 'createdAt' | 'clickedAt'> {
  kind: 1 | 2;
  at: Date;
}

/**
 * A batch's deltas as the moves of each kind of report rows, those that land on the same rows
 * summed into one: the same kind, quarter and dimensions. A conversion counts at its own time
 * (kind 1) and at its click's (kind 2): kind 1 rows of a batch share a quarter or two whatever
 * its clicks' times, so a batch of a few hundred conversions becomes as many rows as it has
 * dimensions (offer, affiliate, event, subs, currencies) for kind 1, and at most one row per
 * conversion for kind 2. Postgres parses and sums those instead of every conversion twice. Sums
 * that move nothing are left out (they can only cancel on rows that exist). Kind 1 first, then in
 * the order first seen.
 */
export function reportMoves(deltas: readonly ReportDelta[]): ReportMove[] {
  const sums = new Map<string, { move: ReportMove; money: Decimal[] }>();
  for (const kind of [1, 2] as const) {
    for (const { createdAt, clickedAt, ...d } of deltas) {
      const at = quarterOf(kind === 1 ? createdAt : clickedAt);
      const key = JSON.stringify([
        kind,
        at.getTime(),
        d.advertiserId,
        d.offerId,
        d.affiliateId,
        d.event,
        d.sub2,
        d.sub3,
        d.sub4,
        d.sub5,
        d.currency,
        d.payoutCurrency,
        d.revenueCurrency,
      ]);
      const sum = sums.get(key);
      if (!sum) {
        sums.set(key, { move: { ...d, kind, at }, money: MONEY.map((m) => new ExactDecimal(d[m])) });
        continue;
      }
      sum.move.approved += d.approved;
      sum.move.pending += d.pending;
      sum.move.rejected += d.rejected;
      MONEY.forEach((m, i) => {
        sum.money[i] = sum.money[i].plus(d[m]);
      });
    }
  }
  return [...sums.values()].flatMap(({ move, money }) => {
    const moved = move.approved !== 0 || move.pending !== 0 || move.rejected !== 0 || money.some((v) => !v.isZero());
    if (!moved) return [];
    MONEY.forEach((m, i) => {
      move[m] = money[i].toFixed();
    });
    return [move];
  });
}

// ——— From summed rows to the answer ———

/** One summed row as the SQL gives it: the group's keys, one currency triple, and the sums. */
export interface SummedRow {
  keys: Record<string, string | number | null>;
  currency: string;
  payout_currency: string;
  revenue_currency: string;
  clicks: string | number;
  approved: string | number;
  pending: string | number;
  rejected: string | number;
  amount: string;
  revenue: string;
  payout: string;
  pending_payout: string;
}

export type MoneyByCurrency = Record<string, string>;

export interface ReportMeasures {
  clicks: number;
  conversions: number;
  approved: number;
  pending: number;
  rejected: number;
  amount: MoneyByCurrency;
  revenue: MoneyByCurrency;
  payout: MoneyByCurrency;
  profit: MoneyByCurrency;
  pending_payout: MoneyByCurrency;
  /** conversions / clicks × 100, to 2 places; null without clicks. */
  cr: number | null;
  /** payout / clicks per currency, to 4 places; {} without clicks. */
  epc: MoneyByCurrency;
}

export const MONEY_FIELDS = ['amount', 'revenue', 'payout', 'profit', 'pending_payout', 'epc'] as const;

/** Sums of one group across its currency triples, before the answer is shaped. */
export class MeasureSum {
  clicks = 0;
  approved = 0;
  pending = 0;
  rejected = 0;
  // In ten-thousandths (money is numeric(…, 4)), as bigints: exact, and far cheaper than decimals
  // for the hundreds of thousands of rows a CSV folds.
  amount = new Map<string, bigint>();
  revenue = new Map<string, bigint>();
  payout = new Map<string, bigint>();
  pendingPayout = new Map<string, bigint>();

  add(row: Omit<SummedRow, 'keys'>): void {
    this.clicks += Number(row.clicks);
    this.approved += Number(row.approved);
    this.pending += Number(row.pending);
    this.rejected += Number(row.rejected);
    addTo(this.amount, row.currency, row.amount);
    addTo(this.revenue, row.revenue_currency, row.revenue);
    addTo(this.payout, row.payout_currency, row.payout);
    addTo(this.pendingPayout, row.payout_currency, row.pending_payout);
  }

  measures(): ReportMeasures {
    const conversions = this.approved + this.pending;
    const profit = new Map<string, bigint>(this.revenue);
    for (const [c, v] of this.payout) profit.set(c, (profit.get(c) ?? 0n) - v);
    const epc: MoneyByCurrency = {};
    if (this.clicks > 0) for (const c of [...this.payout.keys()].sort()) epc[c] = fromE4(divideHalfUp(this.payout.get(c)!, BigInt(this.clicks)), 4);
    return {
      clicks: this.clicks,
      conversions,
      approved: this.approved,
      pending: this.pending,
      rejected: this.rejected,
      amount: money(this.amount),
      revenue: money(this.revenue),
      payout: money(this.payout),
      profit: money(profit),
      pending_payout: money(this.pendingPayout),
      cr: this.clicks > 0 ? Number(divideHalfUp(BigInt(conversions) * 10_000n, BigInt(this.clicks))) / 100 : null,
      epc,
    };
  }
}

/** A decimal string (at most 4 places: money is numeric(…, 4)) in ten-thousandths. */
export function toE4(value: string): bigint {
  const negative = value.startsWith('-');
  const [whole, fraction = ''] = (negative ? value.slice(1) : value).split('.');
  if (fraction.length > 4) throw new Error(`${value} has more than 4 decimal places`);
  const e4 = BigInt(whole || '0') * 10_000n + BigInt(fraction.padEnd(4, '0'));
  return negative ? -e4 : e4;
}

/** Ten-thousandths as a decimal string with at least `places` places (trailing zeros beyond them dropped). */
export function fromE4(e4: bigint, places = 2): string {
  const negative = e4 < 0n;
  const abs = negative ? -e4 : e4;
  let fraction = (abs % 10_000n).toString().padStart(4, '0');
  while (fraction.length > places && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  return `${negative ? '-' : ''}${abs / 10_000n}.${fraction}`;
}

/** a / b rounded half away from zero (b > 0). */
function divideHalfUp(a: bigint, b: bigint): bigint {
  const q = (2n * (a < 0n ? -a : a) + b) / (2n * b);
  return a < 0n ? -q : q;
}

function addTo(map: Map<string, bigint>, currency: string, value: string): void {
  if (!currency) return; // a click row: no money
  // A currency seen with nothing (e.g. only pending) is shown as 0.00 beside the others.
  map.set(currency, (map.get(currency) ?? 0n) + toE4(value));
}

/** Currencies in code order, each as a decimal string (at least 2 places). */
function money(map: Map<string, bigint>): MoneyByCurrency {
  return Object.fromEntries([...map.keys()].sort().map((c) => [c, fromE4(map.get(c)!)]));
}

/** The answer's value of a group key: a day as YYYY-MM-DD, an hour with the zone's offset, ids as numbers. */
export function reportKeyValue(group: ReportGroup, raw: unknown, tz: string): string | number | null {
  if (raw === null || raw === undefined) return null;
  if (group === 'event') return raw === '' ? null : String(raw); // clicks have no event
  if (group === 'hour') return zonedDateTime(raw instanceof Date ? raw : new Date(String(raw)), tz);
  if (group === 'day' || group === 'week' || group === 'month') return raw instanceof Date ? raw.toISOString().slice(0, 10) : String(raw).slice(0, 10);
  if (group === 'advertiser_id' || group === 'offer_id' || group === 'affiliate_id') return Number(raw);
  return String(raw);
}

// ——— CSV ———

export interface CsvCurrencies {
  amount: string[];
  revenue: string[];
  payout: string[];
  profit: string[];
  pending_payout: string[];
  epc: string[];
}

/** The currencies each money column is split into: those of the totals. */
export function csvCurrencies(totals: ReportMeasures): CsvCurrencies {
  const keys = (m: MoneyByCurrency) => Object.keys(m);
  const payout = keys(totals.payout);
  return {
    amount: keys(totals.amount),
    revenue: keys(totals.revenue),
    payout,
    profit: keys(totals.profit),
    pending_payout: keys(totals.pending_payout),
    epc: payout,
  };
}

const COUNTS = ['clicks', 'conversions', 'approved', 'pending', 'rejected'] as const;

export function csvHeader(groupBy: ReportGroup[], currencies: CsvCurrencies): string {
  const money = MONEY_FIELDS.flatMap((field) => currencies[field].map((c) => `${field}_${c.toLowerCase()}`));
  return csvLine([...groupBy, ...COUNTS, 'cr', ...money]);
}

export function csvRow(groupBy: ReportGroup[], row: Record<string, unknown> & ReportMeasures, currencies: CsvCurrencies): string {
  const money = MONEY_FIELDS.flatMap((field) => currencies[field].map((c) => row[field][c] ?? (field !== 'epc' ? '0.00' : row.clicks === 0 ? '' : '0.0000')));
  const keys = groupBy.map((g) => {
    const value = row[g] as string | number | null;
    // A sub ID or event a spreadsheet would run as a formula gets a leading apostrophe (OWASP's CSV injection rule).
    return typeof value === 'string' && /^[=+\-@\t\r]/.test(value) && (g === 'event' || g.startsWith('sub')) ? `'${value}` : value;
  });
  return csvLine([...keys, ...COUNTS.map((c) => row[c]), row.cr, ...money]);
}

/** RFC 4180: a cell with a quote, comma or line break is quoted. */
function csvLine(cells: Array<string | number | null>): string {
  return `${cells.map((cell) => (cell === null || cell === undefined ? '' : /[",\r\n]/.test(String(cell)) ? `"${String(cell).replaceAll('"', '""')}"` : String(cell))).join(',')}\r\n`;
}
