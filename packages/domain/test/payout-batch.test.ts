import { Decimal, PAYOUT_AMOUNT_MAX, planPayoutBatch } from '../src';

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
    expect(() => planPayoutBatch(c('11'), '10')).toThrow(/com_0/);
  });
});
