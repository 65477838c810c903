-- A payout is built in batches (packages/ledger/src/payouts.ts createPayout): each walks an
-- affiliate's approved, unpaid commissions in one currency in id order from where the last batch
-- stopped. This index holds exactly those commissions, in that order: a batch reads its next
-- 1,000 without sorting, and without passing over the affiliate's commissions already paid (the
-- index on (affiliate_id, currency, status) would sort every unpaid one for every batch). A
-- commission leaves it when a payout takes it or it is voided.
-- Built inside the migration's transaction, it holds writes to commissions back while it reads the
-- table. IF NOT EXISTS: on a large database, create it first with CREATE INDEX CONCURRENTLY (the
-- same statement) and this migration only records it.
CREATE INDEX IF NOT EXISTS "commissions_payable_idx" ON "commissions" ("affiliate_id", "currency", "id") WHERE "status" = 'approved' AND "payout_id" IS NULL;
