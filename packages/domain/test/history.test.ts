import {
  HISTORY_TABLES,
  type HistoryTable,
  boundTime,
  boundValue,
  deliveryIdFloor,
  deliveryIdFor,
  historyTable,
  idTime,
  isExpired,
  newId,
  periodStart,
  planPartitions,
  retentionDays,
  utcDay,
} from '../src';

const at = (iso: string) => new Date(iso);
const spec = (table: string) => historyTable(table as HistoryTable);

describe('planPartitions', () => {
  const cases: Array<[string, string, string, string, Array<[string, string, string]>]> = [
    [
      'days, from midnight',
      'deliveries',
      '2026-12-08T00:00:00Z',
      '2026-12-10T05:00:00Z',
      [
        ['deliveries_p20261208', '2026-12-08T00:00:00.000Z', '2026-12-09T00:00:00.000Z'],
        ['deliveries_p20261209', '2026-12-09T00:00:00.000Z', '2026-12-10T00:00:00.000Z'],
        ['deliveries_p20261210', '2026-12-10T00:00:00.000Z', '2026-12-11T00:00:00.000Z'],
      ],
    ],
    [
      "weeks, from a Tuesday (the converted table's bound): the first ends on Monday",
      'clicks',
      '2026-12-08T00:00:00Z',
      '2026-12-15T00:00:00Z',
      [
        ['clicks_p20261208', '2026-12-08T00:00:00.000Z', '2026-12-14T00:00:00.000Z'],
        ['clicks_p20261214', '2026-12-14T00:00:00.000Z', '2026-12-21T00:00:00.000Z'],
      ],
    ],
    ['nothing when from is not before to', 'postbacks', '2026-12-08T00:00:00Z', '2026-12-08T00:00:00Z', []],
  ];
  it.each(cases)('%s', (_what, table, from, to, expected) => {
    expect(planPartitions(spec(table), at(from), at(to)).map((r) => [r.name, r.start.toISOString(), r.end.toISOString()])).toEqual(expected);
  });

  it('covers [from, to) with no gap and no overlap, for any start', () => {
    for (const table of ['clicks', 'outbox_events']) {
      for (let hour = 0; hour < 24 * 9; hour += 7) {
        const from = utcDay(new Date(Date.UTC(2026, 0, 1) + hour * 3_600_000));
        const to = new Date(from.getTime() + 40 * 86_400_000);
        const ranges = planPartitions(spec(table), from, to);
        expect(ranges[0].start).toEqual(from);
        for (let i = 1; i < ranges.length; i++) expect(ranges[i].start).toEqual(ranges[i - 1].end);
        expect(ranges.at(-1)!.end.getTime()).toBeGreaterThanOrEqual(to.getTime());
        expect(new Set(ranges.map((r) => r.name)).size).toBe(ranges.length);
      }
    }
  });
});

describe('periodStart', () => {
  const cases: Array<[string, string, string]> = [
    ['deliveries', '2026-12-08T23:59:59.999Z', '2026-12-08T00:00:00.000Z'],
    ['clicks', '2026-12-13T12:00:00Z', '2026-12-07T00:00:00.000Z'], // a Sunday: the Monday before
    ['clicks', '2026-12-14T00:00:00Z', '2026-12-14T00:00:00.000Z'], // a Monday: itself
  ];
  it.each(cases)('%s at %s starts %s', (table, time, start) => expect(periodStart(spec(table), at(time)).toISOString()).toBe(start));
});

describe('bounds', () => {
  it('an id bound is the prefix and the ULID time: ids made later sort after it, ids made before sort before it', () => {
    const before = boundValue(spec('postbacks'), new Date(Date.now() - 1));
    const id = newId('postback');
    const after = boundValue(spec('postbacks'), new Date(Date.now() + 2));
    expect(before < id && id < after).toBe(true);
    expect(before).toMatch(/^pb_[0-9A-Z]{10}$/);
  });
  it.each(['postbacks', 'outbox_events', 'deliveries', 'delivery_attempts', 'clicks'])('boundTime reads back boundValue (%s)', (table) => {
    const time = at('2026-12-08T00:00:00Z');
    expect(boundTime(spec(table), boundValue(spec(table), time))).toEqual(time);
  });
});

describe('deliveryIdFor', () => {
  const event = newId('event');
  it("is one id per pair, carrying the event time: its delivery lands in its event's day", () => {
    const id = deliveryIdFor(event, 'ep_A');
    expect(id).toBe(deliveryIdFor(event, 'ep_A'));
    expect(id).not.toBe(deliveryIdFor(event, 'ep_B'));
    expect(id).toMatch(/^dlv_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(idTime(id)).toEqual(idTime(event));
  });
  it('spreads pairs: 10,000 endpoints of one event give 10,000 ids', () => {
    expect(new Set(Array.from({ length: 10_000 }, (_, i) => deliveryIdFor(event, `ep_${i}`))).size).toBe(10_000);
  });
  it("sorts at or above its event time's floor (deliveryIdFloor) and below the next millisecond's: a bound by time finds it", () => {
    const t = idTime(event)!;
    const id = deliveryIdFor(event, 'ep_A');
    expect(deliveryIdFloor(t) <= id && id < deliveryIdFloor(new Date(t.getTime() + 1))).toBe(true);
  });
  it('an event id that is not a ULID takes time 0 (the oldest partition)', () => {
    expect(idTime(deliveryIdFor('evt_test', 'ep_A'))).toEqual(new Date(0));
  });
});

describe('idTime', () => {
  it.each([
    ['evt_test', null],
    ['pb_01ARZ3NDEKTSV4RRFFQ69G5FAV', new Date(1469922850259)],
    ['pb_81ARZ3NDEKTSV4RRFFQ69G5FAV', null],
  ])('%s', (id, time) => expect(idTime(id)).toEqual(time));
});

describe('retention', () => {
  const now = at('2026-12-08T10:00:00Z');
  it.each([
    ['ends exactly at the limit', '2026-11-08T10:00:00Z', 30, true],
    ['ends a millisecond inside it', '2026-11-08T10:00:00.001Z', 30, false],
    ['ends long before', '2026-01-01T00:00:00Z', 30, true],
  ])('a partition that %s: expired = %s', (_what, end, days, expired) => expect(isExpired(at(end), days as number, now)).toBe(expired));
  it('each table passes its own setting; the delivery log as one', () => {
    const r = { clickDays: 366, postbackDays: 90, deliveryLogDays: 30 };
    expect(HISTORY_TABLES.map((t) => [t.table, retentionDays(t, r)])).toEqual([
      ['clicks', 366],
      ['postbacks', 90],
      ['outbox_events', 30],
      ['deliveries', 30],
      ['delivery_attempts', 30],
    ]);
  });
});
