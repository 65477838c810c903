import type { Tx } from '@trackway/db';
import { type EventEnvelope, createEvent, formatMoney, newId, planPayoutBatch } from '@trackway/domain';

export type PayoutRow = Awaited<ReturnType<Tx['payout']['findUniqueOrThrow']>>;

export function payoutJson(p: PayoutRow, commissionIds?: string[]) {
  return {
    id: p.id,
    affiliate_id: p.affiliateId,
    currency: p.currency,
    amount: formatMoney(p.amount),
    status: p.status,
    reference: p.reference,
    sent_at: p.sentAt?.toISOString() ?? null,
    created_at: p.createdAt.toISOString(),
    updated_at: p.updatedAt.toISOString(),
    ...(commissionIds ? { commission_ids: commissionIds } : {}),
  };
}

/**
 * Gathers an affiliate's approved, unpaid commissions in one currency into a new payout, or
 * returns null when there are none. The row locks are the guard: a commission already in a
 * payout, or voided by a concurrent reversal, is not among those read, and none of those read
 * can change before this commits. A payout holds at most
 * PAYOUT_AMOUNT_MAX: the oldest commissions that fit go in, and `hasMore` says that others wait
 * for the next payout (planPayoutBatch).
 */
export async function createPayout(
  tx: Tx,
  affiliateId: number,
  currency: string,
  now: Date,
): Promise<{ payout: PayoutRow; commissionIds: string[]; hasMore: boolean } | null> {
  // Locked in id order, as the attribution worker locks the commissions a batch changes: two
  // transactions taking the same commissions never wait for each other in a cycle. Locked, they
  // all stay approved and unpaid until this commits, so the batch's sum is the payout's amount.
  const unpaid = await tx.$queryRaw<{ id: string; amount: string }[]>`
    SELECT id, amount::text AS amount FROM commissions WHERE affiliate_id = ${affiliateId} AND currency = ${currency} AND status = 'approved' AND payout_id IS NULL ORDER BY id FOR UPDATE`;
  if (unpaid.length === 0) return null;
  const batch = planPayoutBatch(unpaid);
  const payout = await tx.payout.create({
    data: { id: newId('payout'), affiliateId, currency, amount: batch.amount.toFixed(), createdAt: now, updatedAt: now },
  });
  await tx.commission.updateMany({ where: { id: { in: batch.ids } }, data: { payoutId: payout.id, updatedAt: now } });
  return { payout, commissionIds: batch.ids, hasMore: batch.remaining > 0 };
}

/** mark-sent on a payout reversals emptied: nothing is owed, so nothing is sent (and no payout.sent emitted). */
export class PayoutEmptyError extends Error {
  constructor(readonly payoutId: string) {
    super(`payout ${payoutId} has no commissions`);
    this.name = 'PayoutEmptyError';
  }
}

/**
 * Marks a pending payout sent and returns the `payout.sent` event, or null if it was not
 * pending; throws PayoutEmptyError when it has no commissions left. The payout row is locked
 * before its commissions are counted: a reversal detaches commissions only after locking the
 * payout (DETACH_FROM_PENDING_PAYOUTS_SQL), so none can leave between the count and the update.
 */
export async function markPayoutSent(
  tx: Tx,
  payoutId: string,
  reference: string,
  now: Date,
): Promise<{ payout: PayoutRow; commissionIds: string[]; event: EventEnvelope } | null> {
  const [locked] = await tx.$queryRaw<{ status: string }[]>`SELECT status::text AS status FROM payouts WHERE id = ${payoutId} FOR UPDATE`;
  if (locked?.status !== 'pending') return null;
  // A statement of its own, after the lock: it sees every detach committed before the lock was granted.
  const commissionIds = (await tx.commission.findMany({ where: { payoutId }, select: { id: true }, orderBy: { id: 'asc' } })).map((c) => c.id);
  if (commissionIds.length === 0) throw new PayoutEmptyError(payoutId);
  const payout = await tx.payout.update({ where: { id: payoutId }, data: { status: 'sent', reference, sentAt: now, updatedAt: now } });
  return { payout, commissionIds, event: createEvent('payout.sent', { payout: payoutJson(payout, commissionIds) }, now) };
}

/**
 * Reversed conversions' commissions leave payouts not yet sent (clawing back a sent payout is
 * out of scope). Each payout row is locked first: a concurrent mark-sent either committed
 * before (the payout is sent and stays as it was) or waits for us. Returns the payouts whose
 * amount must be recomputed. $1: conversion ids; $2: now. Run by writeConversions
 * (conversions.ts), for postbacks and reviews alike.
 */
export const DETACH_FROM_PENDING_PAYOUTS_SQL = `
  WITH c AS (SELECT id, payout_id FROM commissions WHERE conversion_id = ANY($1::varchar[]) AND payout_id IS NOT NULL),
       p AS (SELECT id FROM payouts WHERE id IN (SELECT payout_id FROM c) AND status = 'pending' ORDER BY id FOR UPDATE),
       d AS (UPDATE commissions SET payout_id = NULL, updated_at = $2::timestamptz WHERE id IN (SELECT c.id FROM c JOIN p ON p.id = c.payout_id) RETURNING id)
  SELECT id FROM p`;

/** A payout's amount is the sum of its commissions. $1: payout ids; $2: now. */
export const RECOMPUTE_PAYOUTS_SQL = `
  UPDATE payouts p SET amount = COALESCE((SELECT sum(m.amount) FROM commissions m WHERE m.payout_id = p.id), 0), updated_at = $2::timestamptz
   WHERE p.id = ANY($1::varchar[])`;
