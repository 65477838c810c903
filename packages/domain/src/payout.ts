import Decimal from 'decimal.js';
import { ExactDecimal as Exact } from './money';

// numeric(18,4) × a percent has up to 25 significant digits: computed with room to spare, so the
// only rounding is the final half-up to 4 places.

export type PayoutRule = { type: 'fixed'; amount: Decimal.Value; currency: string } | { type: 'percent'; percent: Decimal.Value };

export interface Payout {
  amount: Decimal;
  currency: string;
}

/**
 * The affiliate's payout for a conversion: a fixed amount in the offer's currency, or a percent
 * of the conversion amount in the conversion's currency, rounded half-up to 4 places.
 */
export function computePayout(rule: PayoutRule, amount: Decimal.Value, currency: string): Payout {
  if (rule.type === 'fixed') {
    return { amount: new Decimal(rule.amount), currency: rule.currency };
  }
  const value = new Exact(amount).times(rule.percent).dividedBy(100).toDecimalPlaces(4, Decimal.ROUND_HALF_UP);
  return { amount: new Decimal(value.toString()), currency };
}
