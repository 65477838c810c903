import { statement } from '@trackway/db';
import type { ConversionStatus } from '@trackway/domain';
import { DETACH_FROM_PENDING_PAYOUTS_SQL, RECOMPUTE_PAYOUTS_SQL } from '@trackway/ledger';

// The attribution hot path's statements: named (planned once per connection) and multi-row (a
// batch's rows as one JSON parameter, `json_to_recordset` on the server, or arrays for `unnest`),
// so a batch of any size is one round trip each.

export const findOutcomes = statement<{ id: string; status: 'accepted' | 'duplicate' | 'rejected'; reason: string | null; conversion_id: string | null }>(
  'attr-find-outcomes',
  `SELECT id, status::text AS status, reason, conversion_id FROM postbacks WHERE id = ANY($1::varchar[])`,
);

export interface ConversionRecord {
  id: string;
  advertiser_id: number;
  offer_id: number;
  affiliate_id: number;
  click_id: string;
  order_id: string;
  event: string;
  // The column's enum: Postgres returns nothing else.
  status: ConversionStatus;
  hold_reason: string | null;
  amount: string;
  currency: string;
  payout: string;
  payout_currency: string;
  clicked_at: Date;
  created_at: Date;
  updated_at: Date;
  fraud_flags: string[];
}

/**
 * The conversions of the batch's (advertiser, order_id, event) keys, locked in key order so
 * that concurrent batches (other processes) wait for each other instead of deadlocking, and a
 * status change is decided on the row as it stands.
 */
export const lockConversions = statement<ConversionRecord>(
  'attr-lock-conversions',
  `SELECT c.id, c.advertiser_id, c.offer_id, c.affiliate_id, c.click_id, c.order_id, c.event, c.status::text AS status, c.hold_reason,
          c.amount::text AS amount, c.currency, c.payout::text AS payout, c.payout_currency, c.clicked_at, c.created_at, c.updated_at,
          COALESCE((SELECT array_agg(f.rule ORDER BY f.id) FROM fraud_flags f WHERE f.conversion_id = c.id), '{}') AS fraud_flags
     FROM conversions c
     JOIN json_to_recordset($1::json) AS k("advertiserId" int, "orderId" varchar, event varchar)
       ON c.advertiser_id = k."advertiserId" AND c.order_id = k."orderId" AND c.event = k.event
    ORDER BY c.advertiser_id, c.order_id, c.event
      FOR UPDATE OF c`,
);

/** ON CONFLICT DO NOTHING: the unique index decides; a skipped row means another batch won the race. */
export const insertConversions = statement<{ id: string }>(
  'attr-insert-conversions',
  `INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, hold_reason,
                            amount, currency, payout, payout_currency, clicked_at, created_at, updated_at)
   SELECT id, "advertiserId", "offerId", "affiliateId", "clickId", "orderId", event, status::"ConversionStatus", "holdReason",
          amount, currency, payout, "payoutCurrency", "clickedAt", "createdAt", "updatedAt"
     FROM json_to_recordset($1::json) AS r(id varchar, "advertiserId" int, "offerId" int, "affiliateId" int, "clickId" varchar, "orderId" varchar,
          event varchar, status text, "holdReason" varchar, amount numeric, currency varchar, payout numeric, "payoutCurrency" varchar,
          "clickedAt" timestamptz, "createdAt" timestamptz, "updatedAt" timestamptz)
   ON CONFLICT (advertiser_id, order_id, event) DO NOTHING
   RETURNING id`,
);

/** The outcome rows: a skipped one means another run of the same job committed first. */
export const insertOutcomes = statement<{ id: string }>(
  'attr-insert-outcomes',
  `INSERT INTO postbacks (id, advertiser_id, status, reason, conversion_id, params, ignored_params, received_at, processed_at)
   SELECT id, advertiser_id, status::"PostbackStatus", reason, conversion_id, params, ignored_params, received_at, processed_at
     FROM json_to_recordset($1::json) AS r(id varchar, advertiser_id int, status text, reason varchar, conversion_id varchar, params jsonb,
          ignored_params jsonb, received_at timestamptz, processed_at timestamptz)
    ORDER BY id
   ON CONFLICT (id) DO NOTHING
   RETURNING id`,
);

export const updateConversionStatuses = statement(
  'attr-update-conversion-statuses',
  `UPDATE conversions c SET status = u.status, updated_at = u.at
     FROM unnest($1::varchar[], $2::"ConversionStatus"[], $3::timestamptz[]) AS u(id, status, at)
    WHERE c.id = u.id`,
);

export const insertCommissions = statement(
  'attr-insert-commissions',
  `INSERT INTO commissions (id, conversion_id, affiliate_id, amount, currency, status, created_at, updated_at)
   SELECT id, "conversionId", "affiliateId", amount, currency, status::"CommissionStatus", "createdAt", "createdAt"
     FROM json_to_recordset($1::json) AS r(id varchar, "conversionId" varchar, "affiliateId" int, amount numeric, currency varchar, status text, "createdAt" timestamptz)`,
);

/**
 * The commissions of the conversions a batch changes, locked in id order: createPayout locks the
 * commissions it gathers in the same order, so the two never wait for each other in a cycle.
 */
export const lockCommissions = statement('attr-lock-commissions', `SELECT id FROM commissions WHERE conversion_id = ANY($1::varchar[]) ORDER BY id FOR UPDATE`);

/** A commission follows its conversion's status (a reversal voids it). */
export const updateCommissionStatuses = statement(
  'attr-update-commission-statuses',
  `UPDATE commissions m SET status = u.status, updated_at = $3::timestamptz
     FROM unnest($1::varchar[], $2::"CommissionStatus"[]) AS u(conversion_id, status)
    WHERE m.conversion_id = u.conversion_id`,
);

/** Reversed conversions' commissions leave payouts not yet sent (see the ledger's rule). */
export const detachFromPendingPayouts = statement<{ id: string }>('attr-detach-from-pending-payouts', DETACH_FROM_PENDING_PAYOUTS_SQL);
export const recomputePayouts = statement('attr-recompute-payouts', RECOMPUTE_PAYOUTS_SQL);

export const insertFraudFlags = statement(
  'attr-insert-fraud-flags',
  `INSERT INTO fraud_flags (id, postback_id, conversion_id, rule, details, created_at)
   SELECT id, "postbackId", "conversionId", rule, details, "createdAt"
     FROM json_to_recordset($1::json) AS r(id varchar, "postbackId" varchar, "conversionId" varchar, rule varchar, details jsonb, "createdAt" timestamptz)`,
);
