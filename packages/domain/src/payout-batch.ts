import Decimal from 'decimal.js';

/** The largest amount a payout row holds: payouts.amount is numeric(18,4). */
export const PAYOUT_AMOUNT_MAX = new Decimal('99999999999999.9999');

export interface PayoutBatch {
  /** The commissions this payout takes, in the order given. */
  ids: string[];
  /** Their sum, exact. */
  amount: Decimal;
  /** Commissions left for the next payout because this one is full. */
  remaining: number;
}

/**
 * Which of an affiliate's unpaid commissions (oldest first) go into one payout: the longest run
 * from the oldest whose sum a payout can hold. Commissions are never split, so money stays exact
 * and each stays in exactly one payout; the rest wait, in order, for the next payout. Every
 * commission fits alone (commissions.amount has the payout's type), so each call makes progress.
 */
export function planPayoutBatch(commissions: ReadonlyArray<{ id: string; amount: Decimal.Value }>, max: Decimal.Value = PAYOUT_AMOUNT_MAX): PayoutBatch {
  const limit = new Decimal(max);
  let amount = new Decimal(0);
  let taken = 0;
  for (const commission of commissions) {
    const next = amount.plus(commission.amount);
    if (next.greaterThan(limit)) break;
    amount = next;
    taken += 1;
  }
  if (taken === 0 && commissions.length > 0) throw new RangeError(`commission ${commissions[0].id} alone exceeds what a payout can hold`);
  return { ids: commissions.slice(0, taken).map((c) => c.id), amount, remaining: commissions.length - taken };
}
