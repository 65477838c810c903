import { createHash } from 'node:crypto';
import { decodeTime, encodeTime } from 'ulidx';
import { ID_PREFIX } from './ids';

// The history tables are range-partitioned by time (docs/operations.md, "History and retention"):
// clicks by their `created_at`, a week a partition; postbacks, outbox events and deliveries by
// their id (a prefixed ULID carries its time), delivery attempts by their delivery's id, a day a
// partition. Partitions are made ahead and dropped whole once they pass retention: no DELETE of
// history. These are the decisions; packages/ledger/src/history.ts runs them.

const DAY_MS = 86_400_000;

export type HistoryTable = 'clicks' | 'postbacks' | 'outbox_events' | 'deliveries' | 'delivery_attempts';
/** Which retention setting a table's partitions pass: the delivery log is kept or dropped a day at a time, as one. */
export type RetentionClass = 'clicks' | 'postbacks' | 'delivery_log';

export interface HistoryTableSpec {
  table: HistoryTable;
  /** The partition key's column. */
  column: string;
  /** A time key (`timestamptz`), or an id key: the ULID's time after this prefix. */
  key: { kind: 'time' } | { kind: 'id'; prefix: string };
  /** Days a partition spans: 7 (weeks starting on Monday, UTC) or 1 (UTC days). */
  days: 1 | 7;
  retention: RetentionClass;
}

export const HISTORY_TABLES: readonly HistoryTableSpec[] = [
  { table: 'clicks', column: 'created_at', key: { kind: 'time' }, days: 7, retention: 'clicks' },
  { table: 'postbacks', column: 'id', key: { kind: 'id', prefix: `${ID_PREFIX.postback}_` }, days: 1, retention: 'postbacks' },
  { table: 'outbox_events', column: 'id', key: { kind: 'id', prefix: `${ID_PREFIX.event}_` }, days: 1, retention: 'delivery_log' },
  { table: 'deliveries', column: 'id', key: { kind: 'id', prefix: `${ID_PREFIX.delivery}_` }, days: 1, retention: 'delivery_log' },
  { table: 'delivery_attempts', column: 'delivery_id', key: { kind: 'id', prefix: `${ID_PREFIX.delivery}_` }, days: 1, retention: 'delivery_log' },
];

/** A history table's spec. */
export function historyTable(table: HistoryTable): HistoryTableSpec {
  return HISTORY_TABLES.find((t) => t.table === table)!;
}

/** The smallest delivery id of a time: ids of deliveries whose events came at or after it sort at or above it. */
export function deliveryIdFloor(at: Date): string {
  return boundValue(historyTable('deliveries'), at);
}

export interface HistoryRetention {
  clickDays: number;
  postbackDays: number;
  deliveryLogDays: number;
}

/** Days of partitions made ahead of today: a writer never meets a missing one while the hourly upkeep runs. */
export const PARTITIONS_AHEAD_DAYS = 7;

export interface PartitionRange {
  /** `<table>_p<yyyymmdd>`, after the UTC day it starts. */
  name: string;
  start: Date;
  end: Date;
}

/** Midnight UTC of the day holding `at`. */
export function utcDay(at: Date): Date {
  return new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS);
}

/** The start of the period holding `at`: its UTC day, or the Monday of its ISO week. */
export function periodStart(spec: Pick<HistoryTableSpec, 'days'>, at: Date): Date {
  const day = utcDay(at);
  if (spec.days === 1) return day;
  const sinceMonday = (day.getUTCDay() + 6) % 7;
  return new Date(day.getTime() - sinceMonday * DAY_MS);
}

const yyyymmdd = (at: Date) => at.toISOString().slice(0, 10).replaceAll('-', '');

export function partitionName(table: HistoryTable, start: Date): string {
  return `${table}_p${yyyymmdd(start)}`;
}

/**
 * The partitions that cover [from, to): from `from` (the end of what exists, e.g. the converted
 * table's bound, not always a period's start) to the end of the period holding `to`, period by
 * period. A first partition that starts mid-period ends at the period's end.
 */
export function planPartitions(spec: Pick<HistoryTableSpec, 'table' | 'days'>, from: Date, to: Date): PartitionRange[] {
  const ranges: PartitionRange[] = [];
  let start = from;
  while (start.getTime() < to.getTime()) {
    const end = new Date(periodStart(spec, start).getTime() + spec.days * DAY_MS);
    ranges.push({ name: partitionName(spec.table, start), start, end });
    start = end;
  }
  return ranges;
}

/** A partition bound's SQL value: the time itself, or the id prefix and the ULID's 10 time characters (ids of later times sort after it). */
export function boundValue(spec: Pick<HistoryTableSpec, 'key'>, at: Date): string {
  return spec.key.kind === 'time' ? at.toISOString() : `${spec.key.prefix}${encodeTime(at.getTime(), 10)}`;
}

/** The time a prefixed ULID carries, or null for anything that is not one. */
export function idTime(id: string): Date | null {
  const ulid = id.slice(id.indexOf('_') + 1);
  if (!/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/.test(ulid)) return null;
  return new Date(decodeTime(ulid));
}

/**
 * A delivery's id, derived from its event and endpoint: the event's time (so the delivery lands in
 * its event's day, and the day is kept or dropped as one) and 80 bits of SHA-256 of the pair. One
 * pair, one id: the primary key keeps "one delivery per event and endpoint" across partitions. An
 * event id that is not a ULID (none is made so) takes time 0: the oldest partition.
 */
export function deliveryIdFor(eventId: string, endpointId: string): string {
  const time = encodeTime(idTime(eventId)?.getTime() ?? 0, 10);
  const digest = createHash('sha256').update(`${eventId} ${endpointId}`).digest();
  let random = '';
  // 16 Crockford base32 characters = 80 bits: 5 bits of the digest each.
  for (let i = 0; i < 16; i++) {
    const bit = i * 5;
    const word = (digest[bit >> 3] << 8) | digest[(bit >> 3) + 1];
    random += B32[(word >> (11 - (bit & 7))) & 31];
  }
  return `${ID_PREFIX.delivery}_${time}${random}`;
}
const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** The retention of a table's class, in days. */
export function retentionDays(spec: Pick<HistoryTableSpec, 'retention'>, retention: HistoryRetention): number {
  return spec.retention === 'clicks' ? retention.clickDays : spec.retention === 'postbacks' ? retention.postbackDays : retention.deliveryLogDays;
}

/** Whether a partition ending at `end` holds nothing younger than the retention: every row in it is past. */
export function isExpired(end: Date, days: number, now: Date): boolean {
  return end.getTime() <= now.getTime() - days * DAY_MS;
}

/** The time a partition bound stands for (the inverse of boundValue for an id key). */
export function boundTime(spec: Pick<HistoryTableSpec, 'key'>, value: string): Date {
  if (spec.key.kind === 'time') return new Date(value);
  return new Date(decodeTime(value.slice(spec.key.prefix.length).padEnd(26, '0')));
}
