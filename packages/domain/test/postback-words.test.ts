import { resolveFormat, statusFor } from '../src/postback-formats';
import { unreplacedPlaceholder } from '../src/placeholders';

describe("statusFor, with Trackway's format (the shared vocabulary)", () => {
  test.each([
    ['approved', 'approved'],
    ['Sale', 'approved'],
    ['CONFIRMED', 'approved'],
    ['paid', 'approved'],
    ['pending', 'pending'],
    ['lead', 'pending'],
    ['hold', 'pending'],
    ['On_Hold', 'pending'],
    ['rejected', 'rejected'],
    ['declined', 'rejected'],
    ['cancelled', 'rejected'],
    ['canceled', 'rejected'],
    ['refunded', 'rejected'],
    ['reversed', 'rejected'],
    ['chargeback', 'rejected'],
    ['fraud', 'rejected'],
    [' sale ', 'approved'],
    ['1', null],
    ['2', null],
    ['5', null],
    ['ok', null],
    ['', null],
    ['approve', null],
  ])('%p → %p', (value, expected) => {
    expect(statusFor(value, resolveFormat(null))).toBe(expected);
  });
});

describe('unreplacedPlaceholder', () => {
  test.each([
    ['{transaction_id}', '{transaction_id}'],
    ['{click_id}', '{click_id}'],
    ['ORD-{sub1}', '{sub1}'],
    ['[CLICK_ID]', '[CLICK_ID]'],
    ['(payout)', '(payout)'],
    ['%payout%', '%payout%'],
    ['##ORDER##', '##ORDER##'],
    ['$sum$', '$sum$'],
    ['REPLACE', 'REPLACE'],
    ['OPTIONAL', 'OPTIONAL'],
    ['optional', 'optional'],
    ['null', 'null'],
    ['undefined', 'undefined'],
    ['ORD-1042', null],
    ['49.90', null],
    ['50%', null],
    ['A (gift)', null],
    ['USD', null],
    ['approved', null],
    ['a$b', null],
    ['AQAAAAEAAAABaw7Ql2MW2hunry2-K_I-iOXPPBomJQ', null],
  ])('%p → %p', (value, expected) => {
    expect(unreplacedPlaceholder(value)).toBe(expected);
  });
});
