import { Decimal, PAYOUT_AMOUNT_MAX, PAYOUT_BATCH_SIZE, planPayoutBatch } from '../src';

const MAX = '99999999999999.9999';
const c = (...amounts: string[]) => amounts.map((amount, i) => ({ id: `com_${i}`, amount }));

describe('planPayoutBatch', () => {
  const table: Array<[string, ReturnType<typeof c>, string[], string, number]> = [
    ['nothing to pay', c(), [], '0', 0],
    ['everything when it fits', c('5.00', '10.25', '0.0001'), ['com_0', 'com_1', 'com_2'], '15.2501', 0],
    ['one commission of the largest amount', c(MAX), ['com_0'], MAX, 0],
    ['two of the largest amount: one now, one next time', c(MAX, MAX), ['com_0'], MAX, 1],
    ['exactly the maximum in two parts', c('99999999999999.9998', '0.0001'), ['com_0', 'com_1'], MAX, 0],
    ['one ten-thousandth over the maximum', c('99999999999999.9998', '0.0002'), ['com_0'], '99999999999999.9998', 1],
    ['oldest first: a small one after a full batch waits too', c('60000000000000', '50000000000000', '1'), ['com_0'], '60000000000000', 2],
    ['many small ones', c(...Array.from({ length: 1000 }, () => '0.01')), Array.from({ length: 1000 }, (_, i) => `com_${i}`), '10', 0],
  ];

  it.each(table)('%s', (_name, commissions, ids, amount, remaining) => {
    const batch = planPayoutBatch(commissions);
    expect(batch.ids).toEqual(ids);
    expect(batch.amount.equals(new Decimal(amount))).toBe(true);
    expect(batch.remaining).toBe(remaining);
    expect(batch.amount.lessThanOrEqualTo(PAYOUT_AMOUNT_MAX)).toBe(true);
  });

  it('keeps money exact: no binary floating point', () => {
    expect(planPayoutBatch(c('0.1', '0.2')).amount.toString()).toBe('0.3');
  });

  it('pays every commission exactly once over successive batches', () => {
    let left = c(MAX, '1', '2', MAX, '0.5', '0.25');
    const batches: string[][] = [];
    while (left.length > 0) {
      const batch = planPayoutBatch(left);
      batches.push(batch.ids);
      left = left.slice(batch.ids.length);
    }
    expect(batches).toEqual([['com_0'], ['com_1', 'com_2'], ['com_3'], ['com_4', 'com_5']]);
  });

  it('refuses a commission no payout could hold, rather than making no progress', () => {
    expect(() => planPayoutBatch(c('100000000000000'))).toThrow(RangeError);
    expect(() => planPayoutBatch(c('11'), { max: '10' })).toThrow(/com_0/);
  });
});

describe('planPayoutBatch, one batch of a payout being built', () => {
  // [name, commissions, held, batch size, ids taken, batch amount, total, full, last]
  const table: Array<[string, ReturnType<typeof c>, string, number, string[], string, string, boolean, boolean]> = [
    ['a whole batch into an empty payout: the walk goes on', c('1', '2', '3'), '0', 3, ['com_0', 'com_1', 'com_2'], '6', '6', false, false],
    ['a whole batch onto what the payout holds', c('1', '2', '3'), '10.5', 3, ['com_0', 'com_1', 'com_2'], '6', '16.5', false, false],
    ['less than a batch: nothing is left behind it, the build ends', c('1', '2'), '10', 3, ['com_0', 'com_1'], '3', '13', false, true],
    ['an empty batch ends the build, takes nothing', c(), '10', 3, [], '0', '10', false, true],
    ['up to exactly the maximum, then the walk goes on', c('0.0001', '1'), '99999999999998.9998', 2, ['com_0', 'com_1'], '1.0001', MAX, false, false],
    [
      'full in the middle of a batch: the rest waits for the next payout',
      c('1', '2', '3'),
      '99999999999996',
      3,
      ['com_0', 'com_1'],
      '3',
      '99999999999999',
      true,
      true,
    ],
    ['a full payout takes nothing more (no error: it holds something)', c('0.0001'), MAX, 3, [], '0', MAX, true, true],
  ];

  it.each(table)('%s', (_name, commissions, held, batchSize, ids, amount, total, full, last) => {
    const batch = planPayoutBatch(commissions, { held, batchSize });
    expect(batch.ids).toEqual(ids);
    expect([batch.amount.toString(), batch.total.toString()]).toEqual([new Decimal(amount).toString(), new Decimal(total).toString()]);
    expect([batch.full, batch.last, batch.remaining]).toEqual([full, last, commissions.length - ids.length]);
  });

  it('builds, batch by batch, the payout one pass over every commission would make', () => {
    const all = c(...Array.from({ length: 25 }, (_, i) => (i % 7 === 3 ? '40000000000000' : `${i}.01`)));
    const whole = planPayoutBatch(all, { batchSize: all.length + 1 });
    let held = new Decimal(0);
    const taken: string[] = [];
    for (let from = 0; ; from += 4) {
      const batch = planPayoutBatch(all.slice(from, from + 4), { held, batchSize: 4 });
      taken.push(...batch.ids);
      held = batch.total;
      if (batch.last) break;
    }
    expect(taken).toEqual(whole.ids);
    expect(held.equals(whole.amount)).toBe(true);
  });

  it('takes 1,000 commissions per transaction unless told otherwise', () => {
    expect(PAYOUT_BATCH_SIZE).toBe(1000);
    expect(planPayoutBatch(c(...Array.from({ length: 1000 }, () => '1'))).last).toBe(false);
    expect(planPayoutBatch(c(...Array.from({ length: 999 }, () => '1'))).last).toBe(true);
  });
});
