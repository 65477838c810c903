import { type PgPool, type Tx, inTransaction, statement } from '@trackway/db';
import { type EventEnvelope, PAYOUT_BATCH_SIZE, createEvent, formatMoney, newId, planPayoutBatch } from '@trackway/domain';

/** A payout's columns: a Prisma row, or one read by a named statement (amount as text). */
export interface PayoutRow {
  id: string;
  affiliateId: number;
  currency: string;
  amount: { toString(): string };
  status: 'pending' | 'sent';
  reference: string | null;
  sentAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

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

// A payout is built in batches, one short transaction each (packages/domain PAYOUT_BATCH_SIZE
// commissions at most), so that a postback reversing one of its commissions waits for one batch,
// not for the whole payout. Each batch walks the affiliate's approved, unpaid commissions in id
// order from where the last one stopped (keyset, on the partial index commissions_payable_idx)
// and locks them in id order, as the attribution worker locks the commissions a batch changes.
// SKIP LOCKED: a commission a postback is changing right now is passed over, never waited for; it
// stays unpaid (or is voided) and the next payout takes it. The `payout_id IS NULL` test is made
// again on each row as it is locked, so two payouts built at once never take the same commission.
const claimCommissions = statement<{ id: string; amount: string }>(
  'ledger-payout-claim-commissions',
  `SELECT id, amount::text AS amount FROM commissions
    WHERE affiliate_id = $1 AND currency = $2 AND status = 'approved' AND payout_id IS NULL AND id > $3
    ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED`,
);

const insertPayout = statement(
  'ledger-payout-insert',
  `INSERT INTO payouts (id, affiliate_id, currency, amount, status, created_at, updated_at) VALUES ($1, $2, $3, 0, 'pending', $4, $4)`,
);

/**
 * The payout, locked after the commissions (the order reversals lock them in): a reversal that
 * detached one of its commissions since the last batch has committed, so `amount` is the sum of
 * what it holds; a payout marked sent meanwhile takes nothing more.
 */
const lockPayout = statement<{ status: string; amount: string }>(
  'ledger-payout-lock',
  `SELECT status::text AS status, amount::text AS amount FROM payouts WHERE id = $1 FOR UPDATE`,
);

/** The batch joins the payout, and the payout's amount grows by their sum, in one statement. */
const takeCommissions = statement(
  'ledger-payout-take-commissions',
  `WITH t AS (UPDATE commissions SET payout_id = $1, updated_at = $3::timestamptz WHERE id = ANY($2::varchar[]) RETURNING amount)
   UPDATE payouts SET amount = amount + (SELECT COALESCE(sum(t.amount), 0) FROM t), updated_at = $3::timestamptz WHERE id = $1`,
);

/** A payout with its commissions' ids, in one statement (one snapshot): the amount is their sum. */
const readPayout = statement<PayoutRow & { commissionIds: string[] }>(
  'ledger-payout-read',
  `SELECT p.id, p.affiliate_id AS "affiliateId", p.currency, p.amount::text AS amount, p.status::text AS status, p.reference,
          p.sent_at AS "sentAt", p.created_at AS "createdAt", p.updated_at AS "updatedAt",
          ARRAY(SELECT m.id FROM commissions m WHERE m.payout_id = p.id ORDER BY m.id) AS "commissionIds"
     FROM payouts p WHERE p.id = $1`,
);

export interface PayoutBuildOptions {
  /** Commissions per transaction (PAYOUT_BATCH_SIZE). */
  batchSize?: number;
  /** After each batch but the last, the build rests this many times as long as the batch took (PAYOUT_NICE_RATIO; 0: none). */
  niceRatio?: number;
  /** Called after each batch has committed (it took `ms`), before the build rests and the next begins (a test holds the build here). */
  afterBatch?: (progress: { payoutId: string; batch: number; taken: number; ms: number }) => Promise<void> | void;
}

/**
 * Gathers an affiliate's approved, unpaid commissions in one currency, oldest first, into a new
 * payout, or returns null when there are none. Built in batches (above): the payout row is
 * created with the first batch and grows with each, so a reader sees at every moment a pending
 * payout whose amount is the sum of the commissions it holds. A payout holds at most
 * PAYOUT_AMOUNT_MAX: `hasMore` says that commissions wait for the next payout because this one
 * is full (or was marked sent before its build ended). The answer is the payout as it stands
 * once built: a reversal during the build may have taken commissions out of it again.
 */
export async function createPayout(
  pool: PgPool,
  affiliateId: number,
  currency: string,
  now: Date,
  { batchSize = PAYOUT_BATCH_SIZE, niceRatio = 0, afterBatch }: PayoutBuildOptions = {},
): Promise<{ payout: PayoutRow; commissionIds: string[]; hasMore: boolean } | null> {
  let payoutId: string | null = null;
  let cursor = '';
  let hasMore = false;
  for (let batch = 1; ; batch++) {
    const started = performance.now();
    // Nothing outside is changed inside the transaction: it may be run again (inTransaction).
    const step = await inTransaction(pool, async (client) => {
      const claimed = await claimCommissions(client, [affiliateId, currency, cursor, batchSize]);
      if (claimed.length === 0) return { payoutId, taken: 0, last: true, full: false };
      let id = payoutId;
      let held = '0';
      if (id === null) {
        // The row is written with the first batch: a payout with nothing to take is never made.
        id = newId('payout');
        await insertPayout(client, [id, affiliateId, currency, now]);
      } else {
        const [payout] = await lockPayout(client, [id]);
        if (payout?.status !== 'pending') return { payoutId: id, taken: 0, last: true, full: true };
        held = payout.amount;
      }
      const plan = planPayoutBatch(claimed, { held, batchSize });
      if (plan.ids.length > 0) await takeCommissions(client, [id, plan.ids, new Date()]);
      return { payoutId: id, taken: plan.ids.length, last: plan.last, full: plan.full, cursor: claimed[claimed.length - 1].id };
    });
    payoutId = step.payoutId;
    cursor = step.cursor ?? cursor;
    hasMore = step.full;
    if (step.last || payoutId === null) break;
    const ms = performance.now() - started;
    await afterBatch?.({ payoutId, batch, taken: step.taken, ms });
    // Resting between batches gives the cores (the database's first) back to attribution: a payout is
    // never urgent to the second, postbacks are.
    if (niceRatio > 0) await new Promise((resolve) => setTimeout(resolve, ms * niceRatio));
  }
  if (payoutId === null) return null;
  const [{ commissionIds, ...payout }] = await readPayout(pool, [payoutId]);
  return { payout, commissionIds, hasMore };
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
