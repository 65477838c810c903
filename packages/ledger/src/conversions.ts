import type { Tx } from '@trackway/db';
import { type ConversionStatus, type EventEnvelope, commissionStatusFor, conversionJson, createEvent } from '@trackway/domain';
import { detachFromPendingPayout } from './payouts';

/** A concurrent status change won the race: the caller retries and decides again. */
export class ConcurrentUpdateError extends Error {
  override name = 'ConcurrentUpdateError';
}

/**
 * Moves a conversion from one status to another inside the caller's transaction: a
 * compare-and-set on the status (never a lost update), the commission following (a reversal
 * voids it), and the `conversion.<status>` event to write to the outbox.
 */
export async function transitionConversion(
  tx: Tx,
  change: { id: string; from: ConversionStatus; to: 'approved' | 'rejected'; releaseHold?: boolean },
  now: Date,
): Promise<EventEnvelope[]> {
  const { count } = await tx.conversion.updateMany({
    where: { id: change.id, status: change.from },
    data: { status: change.to, updatedAt: now, ...(change.releaseHold ? { holdReason: null } : {}) },
  });
  if (count === 0) throw new ConcurrentUpdateError(`conversion ${change.id} changed concurrently`);
  await tx.commission.updateMany({ where: { conversionId: change.id }, data: { status: commissionStatusFor(change.to), updatedAt: now } });
  if (change.to === 'rejected') await detachFromPendingPayout(tx, change.id, now);
  const updated = await tx.conversion.findUniqueOrThrow({ where: { id: change.id }, include: { fraudFlags: { select: { rule: true } } } });
  return [
    createEvent(
      `conversion.${change.to}`,
      {
        conversion: conversionJson(
          updated,
          updated.fraudFlags.map((f) => f.rule),
        ),
        previous_status: change.from,
      },
      now,
    ),
  ];
}
