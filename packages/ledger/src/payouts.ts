import type { Tx } from '@trackway/db';
import { type EventEnvelope, createEvent, formatMoney, newId } from '@trackway/domain';

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
 * returns null when there are none. The conditional UPDATE is the guard: a commission already
 * in a payout, or voided by a concurrent reversal, is never taken.
 */
export async function createPayout(tx: Tx, affiliateId: number, currency: string, now: Date): Promise<PayoutRow | null> {
  const id = newId('payout');
  await tx.payout.create({ data: { id, affiliateId, currency, amount: 0, createdAt: now, updatedAt: now } });
  const { count } = await tx.commission.updateMany({
    where: { affiliateId, currency, status: 'approved', payoutId: null },
    data: { payoutId: id, updatedAt: now },
  });
  if (count === 0) return null;
  return recomputeAmount(tx, id, now);
}

async function recomputeAmount(tx: Tx, payoutId: string, now: Date): Promise<PayoutRow> {
  const { _sum } = await tx.commission.aggregate({ where: { payoutId }, _sum: { amount: true } });
  return tx.payout.update({ where: { id: payoutId }, data: { amount: _sum.amount ?? 0, updatedAt: now } });
}

/** Marks a pending payout sent and returns the `payout.sent` event, or null if it was not pending. */
export async function markPayoutSent(tx: Tx, payoutId: string, reference: string, now: Date): Promise<{ payout: PayoutRow; event: EventEnvelope } | null> {
  const { count } = await tx.payout.updateMany({ where: { id: payoutId, status: 'pending' }, data: { status: 'sent', reference, sentAt: now, updatedAt: now } });
  if (count === 0) return null;
  const payout = await tx.payout.findUniqueOrThrow({ where: { id: payoutId }, include: { commissions: { select: { id: true } } } });
  const commissionIds = payout.commissions.map((c) => c.id);
  return { payout, event: createEvent('payout.sent', { payout: payoutJson(payout, commissionIds) }, now) };
}

/**
 * A reversed conversion's commission cannot stay in a payout that has not been sent: it is
 * taken out and the payout's amount recomputed. (Clawing back a sent payout is out of scope.)
 */
export async function detachFromPendingPayout(tx: Tx, conversionId: string, now: Date): Promise<void> {
  const commission = await tx.commission.findUnique({ where: { conversionId } });
  if (!commission?.payoutId) return;
  // Lock the payout row: a concurrent mark-sent either commits first (we then see "sent" and
  // leave the sent payout as it was) or waits for us.
  const [payout] = await tx.$queryRaw<{ status: string }[]>`SELECT status::text AS status FROM payouts WHERE id = ${commission.payoutId} FOR UPDATE`;
  if (payout?.status !== 'pending') return;
  await tx.commission.update({ where: { id: commission.id }, data: { payoutId: null, updatedAt: now } });
  await recomputeAmount(tx, commission.payoutId, now);
}
