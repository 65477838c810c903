-- History partitioned by time (docs/operations.md, "History and retention"; the decisions are
-- packages/domain/src/history.ts). clicks by created_at (a week a partition); postbacks,
-- outbox_events and deliveries by id, delivery_attempts by delivery_id (a day a partition: ULIDs
-- carry their time). Retention drops whole partitions; nothing deletes history row by row.
--
-- Converted in place: each table is renamed `<table>_before_<yyyymmdd>` and attached, as it is,
-- as the partition of everything before the cutover (midnight UTC after the migration runs), so
-- no row is copied. What attaching builds: the indexes the table lacks (clicks' time-first key,
-- the attempts' keys with their delivery, the new deliveries indexes) and one scan per table to
-- check its bound. It holds every writer of these tables back while it runs: about 2.6 s per
-- million rows (docs/upgrading.md). Later partitions are made ahead by the services
-- (packages/ledger/src/history.ts ensurePartitions); this migration makes the next 7 days' too.
--
-- The delivery log has no foreign keys: dropping a partition of a table another one references
-- locks (and scans) both. An endpoint's delete removes its deliveries and attempts by statement
-- (packages/ledger/src/endpoints.ts); an event's are dropped with its day.
--
-- Uniqueness across partitions: a delivery's id is derived from its event and endpoint
-- (deliveryIdFor), so the primary key keeps one delivery per pair; an attempt's number and key
-- are unique per delivery, the partition key; a click's key is (created_at, id). The converted
-- deliveries (random ids) keep their own unique (event_id, endpoint_id) index.

-- The time a ULID carries (its first 10 characters), or null.
CREATE FUNCTION pg_temp.ulid_at(id text) RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  ms bigint := 0;
  d int;
BEGIN
  FOR i IN 1..10 LOOP
    d := position(substr(id, i, 1) IN '0123456789ABCDEFGHJKMNPQRSTVWXYZ') - 1;
    IF d < 0 THEN RETURN NULL; END IF;
    ms := ms * 32 + d;
  END LOOP;
  RETURN to_timestamp(ms / 1000.0);
END $$;

CREATE FUNCTION pg_temp.ulid_time(at timestamptz) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  ms bigint := floor(extract(epoch FROM at) * 1000)::bigint;
  out text := '';
BEGIN
  FOR i IN 1..10 LOOP
    out := substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', (ms % 32)::int + 1, 1) || out;
    ms := ms / 32;
  END LOOP;
  RETURN out;
END $$;

-- The bound of a table's partitions at a time: the time, or the id prefix and the ULID's time.
CREATE FUNCTION pg_temp.bound(t text, at timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE t
    WHEN 'clicks' THEN quote_literal(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
    WHEN 'postbacks' THEN quote_literal('pb_' || pg_temp.ulid_time(at))
    WHEN 'outbox_events' THEN quote_literal('evt_' || pg_temp.ulid_time(at))
    ELSE quote_literal('dlv_' || pg_temp.ulid_time(at)) END
$$;

ALTER TABLE "deliveries" DROP CONSTRAINT "deliveries_event_id_fkey";
ALTER TABLE "deliveries" DROP CONSTRAINT "deliveries_endpoint_id_fkey";
ALTER TABLE "delivery_attempts" DROP CONSTRAINT "delivery_attempts_delivery_id_fkey";

-- Rows at or past the cutover (none that Trackway wrote: its ids are ULIDs of their time; a hand-made
-- id such as 'pb_A' sorts past every ULID of our era) are set aside (by index) and written back once
-- the partitions exist: ids past any ULID of this millennium (`<prefix>1` on) to a partition of
-- their own that retention never drops.
DO $$
DECLARE
  cutover timestamptz := (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC';
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['clicks', 'postbacks', 'outbox_events', 'deliveries', 'delivery_attempts'] LOOP
    EXECUTE format('CREATE TEMP TABLE %I (LIKE %I)', 'later_' || t, t);
    EXECUTE format('WITH m AS (DELETE FROM %I WHERE %I >= %s RETURNING *) INSERT INTO %I SELECT * FROM m', t,
      CASE t WHEN 'clicks' THEN 'created_at' WHEN 'delivery_attempts' THEN 'delivery_id' ELSE 'id' END, pg_temp.bound(t, cutover), 'later_' || t);
  END LOOP;
END $$;
-- Replaced by keys that hold the partition key (an attached table may not keep a primary key of its own).
ALTER TABLE "clicks" DROP CONSTRAINT "clicks_pkey";
ALTER TABLE "delivery_attempts" DROP CONSTRAINT "delivery_attempts_pkey";
DROP INDEX "delivery_attempts_attempt_key_key";
DROP INDEX "delivery_attempts_delivery_id_number_key";
-- Served by the primary key (created_at, id) now; the prune's index is no longer read.
DROP INDEX "clicks_created_at_idx";
DROP INDEX "deliveries_created_at_idx";
DROP INDEX "deliveries_endpoint_id_status_idx";

DO $$
DECLARE
  cutover timestamptz := (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC';
  old text;
  t text;
  r record;
BEGIN
  FOREACH t IN ARRAY ARRAY['clicks', 'postbacks', 'outbox_events', 'deliveries', 'delivery_attempts'] LOOP
    old := t || '_before_' || to_char(cutover AT TIME ZONE 'UTC', 'YYYYMMDD');
    EXECUTE format('ALTER TABLE %I RENAME TO %I', t, old);
    -- Its indexes (and the constraints they back) take the partition's name, freeing the table's.
    FOR r IN SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
              WHERE c.relname = old AND c.relnamespace = current_schema()::regnamespace LOOP
      EXECUTE format('ALTER INDEX %I RENAME TO %I', r.relname, left(old || substr(r.relname, length(t) + 1), 63));
    END LOOP;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS) PARTITION BY RANGE (%I)', t, old,
      CASE t WHEN 'clicks' THEN 'created_at' WHEN 'delivery_attempts' THEN 'delivery_id' ELSE 'id' END);
  END LOOP;
END $$;

-- The attempts' id sequence belongs to the new table (it would go with the old one's drop).
ALTER SEQUENCE "delivery_attempts_id_seq" OWNED BY "delivery_attempts"."id";

ALTER TABLE "clicks" ADD CONSTRAINT "clicks_pkey" PRIMARY KEY ("created_at", "id");
CREATE INDEX "clicks_offer_id_created_at_idx" ON "clicks" ("offer_id", "created_at");
CREATE INDEX "clicks_affiliate_id_created_at_idx" ON "clicks" ("affiliate_id", "created_at");
CREATE INDEX "clicks_report_xid_idx" ON "clicks" USING BRIN ("report_xid") WITH (pages_per_range = 32, autosummarize = on);

ALTER TABLE "postbacks" ADD CONSTRAINT "postbacks_pkey" PRIMARY KEY ("id");
CREATE INDEX "postbacks_advertiser_id_received_at_idx" ON "postbacks" ("advertiser_id", "received_at");
CREATE INDEX "postbacks_conversion_id_idx" ON "postbacks" ("conversion_id");

ALTER TABLE "outbox_events" ADD CONSTRAINT "outbox_events_pkey" PRIMARY KEY ("id");
CREATE INDEX "outbox_events_published_at_created_at_idx" ON "outbox_events" ("published_at", "created_at");

ALTER TABLE "deliveries" ADD CONSTRAINT "deliveries_pkey" PRIMARY KEY ("id");
CREATE INDEX "deliveries_event_id_endpoint_id_idx" ON "deliveries" ("event_id", "endpoint_id");
CREATE INDEX "deliveries_endpoint_id_id_idx" ON "deliveries" ("endpoint_id", "id");
CREATE INDEX "deliveries_endpoint_id_status_id_idx" ON "deliveries" ("endpoint_id", "status", "id");
-- The sweeper's walk and retention's "still pending?" read only pending rows: a small index.
CREATE INDEX "deliveries_pending_idx" ON "deliveries" ("endpoint_id", "id") WHERE "status" = 'pending';
-- The console's failed deliveries, newest first: few rows.
CREATE INDEX "deliveries_failed_idx" ON "deliveries" ("id") WHERE "status" = 'failed';

ALTER TABLE "delivery_attempts" ADD CONSTRAINT "delivery_attempts_pkey" PRIMARY KEY ("delivery_id", "id");
CREATE UNIQUE INDEX "delivery_attempts_delivery_id_number_key" ON "delivery_attempts" ("delivery_id", "number");
CREATE UNIQUE INDEX "delivery_attempts_delivery_id_attempt_key_key" ON "delivery_attempts" ("delivery_id", "attempt_key");

DO $$
DECLARE
  cutover timestamptz := (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC';
  suffix text := to_char(cutover AT TIME ZONE 'UTC', 'YYYYMMDD');
  t text;
  day timestamptz;
  next timestamptz;
  horizon timestamptz;
  prefix text;
BEGIN
  FOREACH t IN ARRAY ARRAY['clicks', 'postbacks', 'outbox_events', 'deliveries', 'delivery_attempts'] LOOP
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%s)', t, t || '_before_' || suffix, pg_temp.bound(t, cutover));
    -- The next 7 days (clicks: to the end of the week holding the 7th), as ensurePartitions makes
    -- them, and on to the latest row set aside (a clock ahead), at most 400 days ahead.
    prefix := CASE t WHEN 'postbacks' THEN 'pb_' WHEN 'outbox_events' THEN 'evt_' ELSE 'dlv_' END;
    IF t = 'clicks' THEN
      EXECUTE 'SELECT max(created_at) FROM later_clicks' INTO horizon;
    ELSE
      EXECUTE format('SELECT max(pg_temp.ulid_at(substr(%I, %s))) FROM %I WHERE %I < %L AND %I LIKE %L', CASE t WHEN 'delivery_attempts' THEN 'delivery_id' ELSE 'id' END,
        length(prefix) + 1, 'later_' || t, CASE t WHEN 'delivery_attempts' THEN 'delivery_id' ELSE 'id' END, prefix || '1',
        CASE t WHEN 'delivery_attempts' THEN 'delivery_id' ELSE 'id' END, prefix || '%') INTO horizon;
    END IF;
    horizon := LEAST(GREATEST(cutover + interval '7 days', horizon + interval '1 day'), cutover + interval '400 days');
    day := cutover;
    WHILE day < horizon LOOP
      next := CASE WHEN t = 'clicks'
        THEN (date_trunc('week', day AT TIME ZONE 'UTC') + interval '7 days') AT TIME ZONE 'UTC'
        ELSE day + interval '1 day' END;
      EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', t || '_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'), t);
      EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', t, t || '_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'),
        pg_temp.bound(t, day), pg_temp.bound(t, next));
      day := next;
    END LOOP;
    IF t <> 'clicks' THEN
      EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', t || '_beyond', t);
      EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (MAXVALUE)', t, t || '_beyond',
        CASE t WHEN 'postbacks' THEN 'pb_1' WHEN 'outbox_events' THEN 'evt_1' ELSE 'dlv_1' END);
    END IF;
    EXECUTE format('INSERT INTO %I SELECT * FROM %I', t, 'later_' || t);
  END LOOP;
END $$;
