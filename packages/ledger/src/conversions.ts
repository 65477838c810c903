import { type PgClient, RetryTransaction, statement } from '@trackway/db';
import type { CommissionState, ConversionState, ConversionStatus, ConversionWrites } from '@trackway/domain';
import { DETACH_FROM_PENDING_PAYOUTS_SQL, RECOMPUTE_PAYOUTS_SQL } from './payouts';
import { moveReportRows } from './reports';

// Conversions and commissions are written here only, for the attribution worker's batches and
// the api's review alike: named, multi-row statements (one round trip each, planned once per
// connection), reading and writing the domain's own shapes (the column aliases are its names).

/** A conversion's columns as ConversionRow names them, and its commission's, flat. */
const CONVERSION_SELECT = `
  SELECT c.id, c.advertiser_id AS "advertiserId", c.offer_id AS "offerId", c.affiliate_id AS "affiliateId", c.click_id AS "clickId",
         c.order_id AS "orderId", c.event, c.status::text AS status, c.hold_reason AS "holdReason", c.amount::text AS amount, c.currency,
         c.payout::text AS payout, c.payout_currency AS "payoutCurrency", c.revenue::text AS revenue,
         c.revenue_currency AS "revenueCurrency", c.sub1, c.sub2, c.sub3, c.sub4, c.sub5, c.clicked_at AS "clickedAt", c.created_at AS "createdAt",
         c.updated_at AS "updatedAt",
         COALESCE((SELECT array_agg(f.rule ORDER BY f.id) FROM fraud_flags f WHERE f.conversion_id = c.id), '{}') AS "fraudFlags",
         m.id AS "commissionId", m.amount::text AS "commissionAmount", m.currency AS "commissionCurrency",
         m.status::text AS "commissionStatus", m.created_at AS "commissionCreatedAt", m.payout_id AS "payoutId",
         COALESCE(p.status = 'sent', false) AS "payoutSent"
    FROM conversions c
    LEFT JOIN commissions m ON m.conversion_id = c.id
    LEFT JOIN payouts p ON p.id = m.payout_id`;

type ConversionRecord = Omit<ConversionState, 'commission' | 'status'> & {
  status: ConversionStatus;
  commissionId: string | null;
  commissionAmount: string | null;
  commissionCurrency: string | null;
  commissionStatus: CommissionState['status'] | null;
  commissionCreatedAt: Date | null;
  payoutId: string | null;
  payoutSent: boolean;
};

/** A record as the domain's state: the commission's columns nested (the one converter from the database). */
function toState(record: ConversionRecord): ConversionState {
  const { commissionId, commissionAmount, commissionCurrency, commissionStatus, commissionCreatedAt, payoutId, payoutSent, ...row } = record;
  return {
    ...row,
    commission:
      commissionId === null
        ? null
        : {
            id: commissionId,
            conversionId: row.id,
            affiliateId: row.affiliateId,
            amount: commissionAmount!,
            currency: commissionCurrency!,
            status: commissionStatus!,
            createdAt: commissionCreatedAt!,
            payoutId,
            payoutSent,
          },
  };
}

const lockByKeys = statement<{ id: string }>(
  'ledger-lock-conversions-by-key',
  `SELECT c.id FROM conversions c
     JOIN json_to_recordset($1::json) AS k("advertiserId" int, "orderId" varchar, event varchar)
       ON c.advertiser_id = k."advertiserId" AND c.order_id = k."orderId" AND c.event = k.event
    ORDER BY c.advertiser_id, c.order_id, c.event
      FOR UPDATE OF c`,
);

const lockById = statement<{ id: string }>('ledger-lock-conversion-by-id', `SELECT id FROM conversions WHERE id = $1 FOR UPDATE`);

// Read in a statement of its own, after the lock: a statement that waited for a conversion's lock
// re-reads only that row, so commissions joined in it would be as they were before the wait (a
// commission another transaction created meanwhile would be missing). Every change to a
// commission holds its conversion's lock, but for createPayout's, which writeConversions checks.
const readByIds = statement<ConversionRecord>('ledger-read-conversions', `${CONVERSION_SELECT} WHERE c.id = ANY($1::varchar[])`);

/**
 * The conversions of these (advertiser, order_id, event) keys, locked in key order (concurrent
 * batches wait for each other instead of deadlocking), then read with their commissions as they
 * stand.
 */
export async function lockConversionsByKey(db: PgClient, keys: Array<{ advertiserId: number; orderId: string; event: string }>): Promise<ConversionState[]> {
  if (keys.length === 0) return [];
  const locked = await lockByKeys(db, [JSON.stringify(keys.map(({ advertiserId, orderId, event }) => ({ advertiserId, orderId, event })))]);
  if (locked.length === 0) return [];
  return (await readByIds(db, [locked.map((row) => row.id)])).map(toState);
}

/** One conversion, locked, then read with its commission; null when there is none. */
export async function lockConversion(db: PgClient, id: string): Promise<ConversionState | null> {
  if ((await lockById(db, [id])).length === 0) return null;
  const [record] = await readByIds(db, [[id]]);
  return toState(record);
}

/** ON CONFLICT DO NOTHING: the unique index decides; a skipped row means another transaction won the race. */
const insertConversions = statement<{ id: string }>(
  'ledger-insert-conversions',
  `INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, hold_reason,
                            amount, currency, payout, payout_currency, revenue, revenue_currency, sub1, sub2, sub3, sub4, sub5,
                            clicked_at, created_at, updated_at)
   SELECT id, "advertiserId", "offerId", "affiliateId", "clickId", "orderId", event, status::"ConversionStatus", "holdReason",
          amount, currency, payout, "payoutCurrency", revenue, "revenueCurrency", sub1, sub2, sub3, sub4, sub5, "clickedAt", "createdAt", "updatedAt"
     FROM json_to_recordset($1::json) AS r(id varchar, "advertiserId" int, "offerId" int, "affiliateId" int, "clickId" varchar, "orderId" varchar,
          event varchar, status text, "holdReason" varchar, amount numeric, currency varchar, payout numeric, "payoutCurrency" varchar,
          revenue numeric, "revenueCurrency" varchar, sub1 varchar, sub2 varchar, sub3 varchar, sub4 varchar, sub5 varchar,
          "clickedAt" timestamptz, "createdAt" timestamptz, "updatedAt" timestamptz)
   ON CONFLICT (advertiser_id, order_id, event) DO NOTHING
   RETURNING id`,
);

const updateConversions = statement(
  'ledger-update-conversions',
  `UPDATE conversions c SET status = r.status::"ConversionStatus", hold_reason = r."holdReason", amount = r.amount, payout = r.payout,
          revenue = r.revenue, updated_at = r."updatedAt"
     FROM json_to_recordset($1::json) AS r(id varchar, status text, "holdReason" varchar, amount numeric, payout numeric, revenue numeric, "updatedAt" timestamptz)
    WHERE c.id = r.id`,
);

const insertCommissions = statement(
  'ledger-insert-commissions',
  `INSERT INTO commissions (id, conversion_id, affiliate_id, amount, currency, status, created_at, updated_at)
   SELECT id, "conversionId", "affiliateId", amount, currency, status::"CommissionStatus", "createdAt", "createdAt"
     FROM json_to_recordset($1::json) AS r(id varchar, "conversionId" varchar, "affiliateId" int, amount numeric, currency varchar, status text, "createdAt" timestamptz)`,
);

const updateCommissions = statement(
  'ledger-update-commissions',
  `UPDATE commissions m SET amount = r.amount, status = r.status::"CommissionStatus", updated_at = $2::timestamptz
     FROM json_to_recordset($1::json) AS r(id varchar, amount numeric, status text)
    WHERE m.id = r.id`,
);

/**
 * Commissions about to change, locked in id order (createPayout locks each batch it gathers in the
 * same order, and passes over those locked here, so the two never wait for each other in a cycle),
 * with the payout each is in.
 */
const lockCommissions = statement<{ id: string; payoutId: string | null }>(
  'ledger-lock-commissions',
  `SELECT id, payout_id AS "payoutId" FROM commissions WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE`,
);

/** Their payouts, locked in id order after them: none can be marked sent before this commits. */
const lockPayouts = statement<{ id: string; sent: boolean }>(
  'ledger-lock-payouts',
  `SELECT id, status = 'sent' AS sent FROM payouts WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE`,
);

const detachFromPendingPayouts = statement<{ id: string }>('ledger-detach-from-pending-payouts', DETACH_FROM_PENDING_PAYOUTS_SQL);
const recomputePayouts = statement('ledger-recompute-payouts', RECOMPUTE_PAYOUTS_SQL);

const insertFraudFlags = statement(
  'ledger-insert-fraud-flags',
  `INSERT INTO fraud_flags (id, postback_id, conversion_id, rule, details, created_at)
   SELECT id, "postbackId", "conversionId", rule, details, "createdAt"
     FROM json_to_recordset($1::json) AS r(id varchar, "postbackId" varchar, "conversionId" varchar, rule varchar, details jsonb, "createdAt" timestamptz)`,
);

// A statement's rows carry its own columns only: a conversion's commission and flags, and a
// commission's payout as read, would be serialized and parsed by Postgres for nothing.
const conversionRows = (list: ConversionState[]) => JSON.stringify(list.map(({ commission: _commission, fraudFlags: _flags, ...row }) => row));
const commissionRows = (list: CommissionState[]) => JSON.stringify(list.map(({ payoutId: _payout, payoutSent: _sent, ...row }) => row));
// The updates read fewer columns still: what can change.
const conversionChanges = (list: ConversionState[]) =>
  JSON.stringify(
    list.map(({ id, status, holdReason, amount, payout, revenue, updatedAt }) => ({ id, status, holdReason, amount, payout, revenue, updatedAt })),
  );
const commissionChanges = (list: CommissionState[]) => JSON.stringify(list.map(({ id, amount, status }) => ({ id, amount, status })));

/**
 * Writes planned conversion changes (conversionWrites) inside the caller's transaction, the
 * conversions locked by it beforehand. The commissions the plan changes are locked, with their
 * payouts, and must still be where the plan read them (a payout created or sent meanwhile would
 * make the plan wrong): if not, the transaction is run again (RetryTransaction), as it is when
 * another transaction created one of the new conversions first. The report rows move with them.
 */
export async function writeConversions(db: PgClient, writes: ConversionWrites, now: Date): Promise<void> {
  if (writes.newConversions.length > 0) {
    const inserted = await insertConversions(db, [conversionRows(writes.newConversions)]);
    if (inserted.length < writes.newConversions.length) throw new RetryTransaction('a conversion of this batch was created concurrently');
  }
  if (writes.commissionsAsRead.length > 0) {
    const locked = new Map((await lockCommissions(db, [writes.commissionsAsRead.map((c) => c.id)])).map((c) => [c.id, c.payoutId]));
    const payoutIds = [...new Set([...locked.values()].filter((id): id is string => id !== null))].sort();
    const sent = new Map(payoutIds.length > 0 ? (await lockPayouts(db, [payoutIds])).map((p) => [p.id, p.sent]) : []);
    const moved = writes.commissionsAsRead.some((read) => {
      const payoutId = locked.get(read.id) ?? null;
      return payoutId !== read.payoutId || (payoutId !== null && sent.get(payoutId) !== read.payoutSent);
    });
    if (moved) throw new RetryTransaction('a commission of this batch joined a payout, or its payout was sent, concurrently');
  }
  if (writes.changedConversions.length > 0) await updateConversions(db, [conversionChanges(writes.changedConversions)]);
  if (writes.newCommissions.length > 0) await insertCommissions(db, [commissionRows(writes.newCommissions)]);
  if (writes.changedCommissions.length > 0) await updateCommissions(db, [commissionChanges(writes.changedCommissions), now]);
  const payouts = new Set(writes.repricedPayouts);
  if (writes.reversed.length > 0) for (const { id } of await detachFromPendingPayouts(db, [writes.reversed, now])) payouts.add(id);
  if (payouts.size > 0) await recomputePayouts(db, [[...payouts].sort(), now]);
  if (writes.fraudFlags.length > 0) await insertFraudFlags(db, [JSON.stringify(writes.fraudFlags)]);
  // Last: the report rows' locks (the busiest rows of all) are held only until the commit.
  await moveReportRows(db, writes.reportMoves);
}
