import { statement } from '@trackway/db';
import type { PostbackStatus } from '@trackway/domain';

// The outcome rows of the attribution hot path (conversions, commissions and flags are written
// by @trackway/ledger): named (planned once per connection) and multi-row (a batch's rows as one
// JSON parameter, `json_to_recordset` on the server), so a batch of any size is one round trip each.

export const findOutcomes = statement<{ id: string; status: PostbackStatus; reason: string | null; conversion_id: string | null }>(
  'attr-find-outcomes',
  `SELECT id, status::text AS status, reason, conversion_id FROM postbacks WHERE id = ANY($1::varchar[])`,
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

/**
 * The sub IDs of the batch's clicks whose rows are written (rows are never changed: read outside
 * the transaction); $2: each click's time as its ID carries it (whole seconds). clicks is keyed and
 * partitioned by (created_at, id): each click is one probe of its second in one partition
 * (OFFSET 0 keeps the LATERAL a per-click probe, not a join planned over every partition).
 */
export const findClickSubs = statement<{ id: string; sub1: string | null; sub2: string | null; sub3: string | null; sub4: string | null; sub5: string | null }>(
  'attr-find-click-subs',
  `SELECT c.id, c.sub1, c.sub2, c.sub3, c.sub4, c.sub5 FROM unnest($1::varchar[], $2::timestamptz[]) AS k(id, at)
   CROSS JOIN LATERAL (SELECT * FROM clicks c WHERE c.created_at >= k.at AND c.created_at < k.at + interval '1 second' AND c.id = k.id OFFSET 0) c`,
);
