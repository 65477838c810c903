import Decimal from 'decimal.js';

/** The largest amount a payout row holds: payouts.amount is numeric(18,4). */
export const PAYOUT_AMOUNT_MAX = new Decimal('99999999999999.9999');

/**
 * How many commissions one transaction of a payout's build takes (and so holds locked, for a few
 * milliseconds): a postback reversing one of them waits for one such transaction at most.
 */
export const PAYOUT_BATCH_SIZE = 1000;

export interface PayoutBatch {
  /** The commissions this batch adds to the payout, in the order given. */
  ids: string[];
  /** Their sum, exact. */
  amount: Decimal;
  /** What the payout holds with them: `held` + `amount`. */
  total: Decimal;
  /** Commissions of this batch left for the next payout because this one is full. */
  remaining: number;
  /** The payout is full: a commission did not fit, so the build stops (has_more). */
  full: boolean;
  /** The build stops after this batch: full, or the walk found less than a whole batch (nothing is left behind it). */
  last: boolean;
}

/**
 * Which of a batch of an affiliate's unpaid commissions (oldest first, at most `batchSize`, the
 * next in the walk) go into a payout that already holds `held`: the longest run from the oldest
 * whose sum, with `held`, a payout can hold. Commissions are never split, so money stays exact and
 * each stays in exactly one payout; the rest wait, in order, for the next payout. Every commission
 * fits an empty payout (commissions.amount has the payout's type), so each payout takes at least one.
 */
export function planPayoutBatch(
  commissions: ReadonlyArray<{ id: string; amount: Decimal.Value }>,
  { held = 0, max = PAYOUT_AMOUNT_MAX, batchSize = PAYOUT_BATCH_SIZE }: { held?: Decimal.Value; max?: Decimal.Value; batchSize?: number } = {},
): PayoutBatch {
  const limit = new Decimal(max);
  const start = new Decimal(held);
  let total = start;
  let taken = 0;
  for (const commission of commissions) {
    const next = total.plus(commission.amount);
    if (next.greaterThan(limit)) break;
    total = next;
    taken += 1;
  }
  if (taken === 0 && commissions.length > 0 && start.isZero()) throw new RangeError(`commission ${commissions[0].id} alone exceeds what a payout can hold`);
  const remaining = commissions.length - taken;
  const full = remaining > 0;
  return {
    ids: commissions.slice(0, taken).map((c) => c.id),
    amount: total.minus(start),
    total,
    remaining,
    full,
    last: full || commissions.length < batchSize,
  };
}
