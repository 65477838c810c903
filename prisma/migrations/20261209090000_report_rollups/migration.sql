-- Issue 16, the read path: report rows shaped for what reports ask, and clicks counted off their hot path.
--
-- Day rows per kind of report, each keyed in the order its reports read them (zone, [span,] day,
-- then the dimensions, currencies, kind, event): a report's rows stream out of one index in group
-- order, so its first page is read without summing the rest. report_offer_days and
-- report_affiliate_days also hold blocks of 4, 16 and 64 days (span; a block starts on a day number
-- since 1970-01-01 that its span divides): a range of days is read as the few blocks that tile it.
-- report_affiliate_days (affiliate × sub2, the campaign label) keys the kind first (a report reads two
-- kinds of rows: clicks and one count_by) and holds no event; sub2 is keyed as sub2_key: '' for none,
-- '~' || sub2 otherwise (NULL stays apart from '').
--
-- Clicks: a click row records the transaction that wrote it (report_xid, pg_current_xact_id()); a
-- folder adds the clicks of every transaction that has ended to the report rows, many at once, and
-- moves report_click_folds.xid past them, in one transaction. Reports add the clicks not folded yet
-- (report_xid >= that xid) when they read. Click rows written before this migration have no
-- report_xid: they were counted when written.

ALTER TABLE "clicks" ADD COLUMN "report_xid" BIGINT;
-- BRIN: rows arrive in transaction order; the index is a few pages and costs an insert almost nothing.
CREATE INDEX "clicks_report_xid_idx" ON "clicks" USING BRIN ("report_xid") WITH (pages_per_range = 32, autosummarize = on);

-- CreateTable
CREATE TABLE "report_click_folds" (
    "id" SMALLINT NOT NULL,
    "xid" BIGINT NOT NULL,
    "folded_at" TIMESTAMPTZ(3),

    CONSTRAINT "report_click_folds_pkey" PRIMARY KEY ("id")
);
INSERT INTO "report_click_folds" ("id", "xid") VALUES (1, 0);

-- report_offer_days: blocks of days, and the key in reading order.
ALTER TABLE "report_offer_days" ADD COLUMN "span" SMALLINT NOT NULL DEFAULT 1;
ALTER TABLE "report_offer_days" ALTER COLUMN "span" DROP DEFAULT;
ALTER TABLE "report_offer_days" DROP CONSTRAINT "report_offer_days_pkey";
ALTER TABLE "report_offer_days" ADD CONSTRAINT "report_offer_days_pkey" PRIMARY KEY ("zone", "span", "day", "offer_id", "currency", "payout_currency", "revenue_currency", "kind", "event");

-- CreateTable
CREATE TABLE "report_affiliate_days" (
    "zone" VARCHAR(64) NOT NULL,
    "span" SMALLINT NOT NULL,
    "day" DATE NOT NULL,
    "kind" SMALLINT NOT NULL,
    "affiliate_id" INTEGER NOT NULL,
    "sub2_key" VARCHAR(256) NOT NULL,
    "currency" VARCHAR(3) NOT NULL,
    "payout_currency" VARCHAR(3) NOT NULL,
    "revenue_currency" VARCHAR(3) NOT NULL,
    "sub2" VARCHAR(255),
    "clicks" BIGINT NOT NULL DEFAULT 0,
    "approved" BIGINT NOT NULL DEFAULT 0,
    "pending" BIGINT NOT NULL DEFAULT 0,
    "rejected" BIGINT NOT NULL DEFAULT 0,
    "amount" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "revenue" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "payout" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "pending_payout" DECIMAL(24,4) NOT NULL DEFAULT 0,

    CONSTRAINT "report_affiliate_days_pkey" PRIMARY KEY ("zone", "span", "day", "kind", "affiliate_id", "sub2_key", "currency", "payout_currency", "revenue_currency")
);

-- CreateTable
CREATE TABLE "report_offer_affiliate_days" (
    "zone" VARCHAR(64) NOT NULL,
    "day" DATE NOT NULL,
    "offer_id" INTEGER NOT NULL,
    "affiliate_id" INTEGER NOT NULL,
    "currency" VARCHAR(3) NOT NULL,
    "payout_currency" VARCHAR(3) NOT NULL,
    "revenue_currency" VARCHAR(3) NOT NULL,
    "kind" SMALLINT NOT NULL,
    "event" VARCHAR(64) NOT NULL,
    "advertiser_id" INTEGER NOT NULL,
    "clicks" BIGINT NOT NULL DEFAULT 0,
    "approved" BIGINT NOT NULL DEFAULT 0,
    "pending" BIGINT NOT NULL DEFAULT 0,
    "rejected" BIGINT NOT NULL DEFAULT 0,
    "amount" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "revenue" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "payout" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "pending_payout" DECIMAL(24,4) NOT NULL DEFAULT 0,

    CONSTRAINT "report_offer_affiliate_days_pkey" PRIMARY KEY ("zone", "day", "offer_id", "affiliate_id", "currency", "payout_currency", "revenue_currency", "kind", "event")
);

-- CreateTable
CREATE TABLE "report_totals" (
    "zone" VARCHAR(64) NOT NULL,
    "day" DATE NOT NULL,
    "currency" VARCHAR(3) NOT NULL,
    "payout_currency" VARCHAR(3) NOT NULL,
    "revenue_currency" VARCHAR(3) NOT NULL,
    "kind" SMALLINT NOT NULL,
    "event" VARCHAR(64) NOT NULL,
    "clicks" BIGINT NOT NULL DEFAULT 0,
    "approved" BIGINT NOT NULL DEFAULT 0,
    "pending" BIGINT NOT NULL DEFAULT 0,
    "rejected" BIGINT NOT NULL DEFAULT 0,
    "amount" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "revenue" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "payout" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "pending_payout" DECIMAL(24,4) NOT NULL DEFAULT 0,

    CONSTRAINT "report_totals_pkey" PRIMARY KEY ("zone", "day", "currency", "payout_currency", "revenue_currency", "kind", "event")
);

-- The new rows from the day rows there are (history whose raw rows are gone keeps its numbers).
INSERT INTO "report_affiliate_days" (zone, span, day, kind, affiliate_id, sub2_key, currency, payout_currency, revenue_currency, sub2, clicks, approved, pending, rejected, amount, revenue, payout, pending_payout)
SELECT zone, 1, day, kind, affiliate_id, COALESCE('~' || sub2, ''), currency, payout_currency, revenue_currency, sub2, sum(clicks), sum(approved), sum(pending), sum(rejected), sum(amount), sum(revenue), sum(payout), sum(pending_payout)
  FROM report_days GROUP BY zone, day, kind, affiliate_id, sub2, currency, payout_currency, revenue_currency;
INSERT INTO "report_offer_affiliate_days" (zone, day, offer_id, affiliate_id, currency, payout_currency, revenue_currency, kind, event, advertiser_id, clicks, approved, pending, rejected, amount, revenue, payout, pending_payout)
SELECT zone, day, offer_id, affiliate_id, currency, payout_currency, revenue_currency, kind, event, advertiser_id, sum(clicks), sum(approved), sum(pending), sum(rejected), sum(amount), sum(revenue), sum(payout), sum(pending_payout)
  FROM report_days GROUP BY zone, day, offer_id, affiliate_id, currency, payout_currency, revenue_currency, kind, event, advertiser_id;
INSERT INTO "report_totals" (zone, day, currency, payout_currency, revenue_currency, kind, event, clicks, approved, pending, rejected, amount, revenue, payout, pending_payout)
SELECT zone, day, currency, payout_currency, revenue_currency, kind, event, sum(clicks), sum(approved), sum(pending), sum(rejected), sum(amount), sum(revenue), sum(payout), sum(pending_payout) FROM report_offer_days GROUP BY zone, day, currency, payout_currency, revenue_currency, kind, event;
INSERT INTO "report_offer_days" (zone, span, day, offer_id, currency, payout_currency, revenue_currency, kind, event, advertiser_id, clicks, approved, pending, rejected, amount, revenue, payout, pending_payout)
SELECT zone, s.span, day - (((day - date '1970-01-01') % s.span + s.span) % s.span) AS block, offer_id, currency, payout_currency, revenue_currency, kind, event, advertiser_id, sum(clicks), sum(approved), sum(pending), sum(rejected), sum(amount), sum(revenue), sum(payout), sum(pending_payout)
  FROM report_offer_days CROSS JOIN (VALUES (4), (16), (64)) AS s(span) WHERE report_offer_days.span = 1
 GROUP BY zone, s.span, block, offer_id, currency, payout_currency, revenue_currency, kind, event, advertiser_id;
INSERT INTO "report_affiliate_days" (zone, span, day, kind, affiliate_id, sub2_key, currency, payout_currency, revenue_currency, sub2, clicks, approved, pending, rejected, amount, revenue, payout, pending_payout)
SELECT zone, s.span, day - (((day - date '1970-01-01') % s.span + s.span) % s.span) AS block, kind, affiliate_id, sub2_key, currency, payout_currency, revenue_currency, sub2, sum(clicks), sum(approved), sum(pending), sum(rejected), sum(amount), sum(revenue), sum(payout), sum(pending_payout)
  FROM report_affiliate_days CROSS JOIN (VALUES (4), (16), (64)) AS s(span) WHERE report_affiliate_days.span = 1
 GROUP BY zone, s.span, block, kind, affiliate_id, sub2_key, currency, payout_currency, revenue_currency, sub2;

-- Writers join every tally row with the zones: with statistics, Postgres knows they are a few.
ANALYZE "report_zones";
