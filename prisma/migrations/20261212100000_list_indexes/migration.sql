-- The conversions lists the API serves (GET /v1/conversions), each read by an index in its
-- filters' and its order's columns (newest first: id), so a page of a retired affiliate or of a
-- rare status is found without walking the newer rows of others.
-- Built inside the migration's transaction, each holds writes to conversions back while it reads
-- the table (about 1 s per million conversions each). IF NOT EXISTS: on a large database, create
-- them first with CREATE INDEX CONCURRENTLY (the same statements) and this migration only records
-- them (docs/upgrading.md).
CREATE INDEX IF NOT EXISTS "conversions_order_id_id_idx" ON "conversions" ("order_id", "id");
CREATE INDEX IF NOT EXISTS "conversions_advertiser_id_id_idx" ON "conversions" ("advertiser_id", "id");
CREATE INDEX IF NOT EXISTS "conversions_affiliate_id_id_idx" ON "conversions" ("affiliate_id", "id");
CREATE INDEX IF NOT EXISTS "conversions_affiliate_id_status_id_idx" ON "conversions" ("affiliate_id", "status", "id");
CREATE INDEX IF NOT EXISTS "conversions_offer_id_id_idx" ON "conversions" ("offer_id", "id");
CREATE INDEX IF NOT EXISTS "conversions_status_id_idx" ON "conversions" ("status", "id");
-- Served by the indexes above (each starts with the same column).
DROP INDEX IF EXISTS "conversions_affiliate_id_idx";
DROP INDEX IF EXISTS "conversions_offer_id_idx";
DROP INDEX IF EXISTS "conversions_status_idx";
