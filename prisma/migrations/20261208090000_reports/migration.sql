-- Issue 16: report rows, moved in the transactions that change what they count.
-- kind 0: clicks (at the click's time); 1: conversions at the time they were recorded; 2: conversions
-- at their click's time (count_by=click). A row's sub2..sub5 are keyed by subs_key, an md5 of
-- json_build_array(sub2, sub3, sub4, sub5) (NULL and '' stay apart; the values stay out of the key).
-- Money is summed over approved conversions; pending_payout over pending ones.

-- CreateTable
CREATE TABLE "report_quarters" (
    "kind" SMALLINT NOT NULL,
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "offer_id" INTEGER NOT NULL,
    "affiliate_id" INTEGER NOT NULL,
    "event" VARCHAR(64) NOT NULL,
    "subs_key" UUID NOT NULL,
    "currency" VARCHAR(3) NOT NULL,
    "payout_currency" VARCHAR(3) NOT NULL,
    "revenue_currency" VARCHAR(3) NOT NULL,
    "advertiser_id" INTEGER NOT NULL,
    "sub2" VARCHAR(255),
    "sub3" VARCHAR(255),
    "sub4" VARCHAR(255),
    "sub5" VARCHAR(255),
    "clicks" BIGINT NOT NULL DEFAULT 0,
    "approved" BIGINT NOT NULL DEFAULT 0,
    "pending" BIGINT NOT NULL DEFAULT 0,
    "rejected" BIGINT NOT NULL DEFAULT 0,
    "amount" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "revenue" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "payout" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "pending_payout" DECIMAL(24,4) NOT NULL DEFAULT 0,

    CONSTRAINT "report_quarters_pkey" PRIMARY KEY ("kind","bucket","offer_id","affiliate_id","event","subs_key","currency","payout_currency","revenue_currency")
);

-- CreateTable
CREATE TABLE "report_days" (
    "zone" VARCHAR(64) NOT NULL,
    "kind" SMALLINT NOT NULL,
    "day" DATE NOT NULL,
    "offer_id" INTEGER NOT NULL,
    "affiliate_id" INTEGER NOT NULL,
    "event" VARCHAR(64) NOT NULL,
    "subs_key" UUID NOT NULL,
    "currency" VARCHAR(3) NOT NULL,
    "payout_currency" VARCHAR(3) NOT NULL,
    "revenue_currency" VARCHAR(3) NOT NULL,
    "advertiser_id" INTEGER NOT NULL,
    "sub2" VARCHAR(255),
    "sub3" VARCHAR(255),
    "sub4" VARCHAR(255),
    "sub5" VARCHAR(255),
    "clicks" BIGINT NOT NULL DEFAULT 0,
    "approved" BIGINT NOT NULL DEFAULT 0,
    "pending" BIGINT NOT NULL DEFAULT 0,
    "rejected" BIGINT NOT NULL DEFAULT 0,
    "amount" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "revenue" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "payout" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "pending_payout" DECIMAL(24,4) NOT NULL DEFAULT 0,

    CONSTRAINT "report_days_pkey" PRIMARY KEY ("zone","kind","day","offer_id","affiliate_id","event","subs_key","currency","payout_currency","revenue_currency")
);

-- CreateTable
CREATE TABLE "report_offer_days" (
    "zone" VARCHAR(64) NOT NULL,
    "kind" SMALLINT NOT NULL,
    "day" DATE NOT NULL,
    "offer_id" INTEGER NOT NULL,
    "event" VARCHAR(64) NOT NULL,
    "currency" VARCHAR(3) NOT NULL,
    "payout_currency" VARCHAR(3) NOT NULL,
    "revenue_currency" VARCHAR(3) NOT NULL,
    "advertiser_id" INTEGER NOT NULL,
    "clicks" BIGINT NOT NULL DEFAULT 0,
    "approved" BIGINT NOT NULL DEFAULT 0,
    "pending" BIGINT NOT NULL DEFAULT 0,
    "rejected" BIGINT NOT NULL DEFAULT 0,
    "amount" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "revenue" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "payout" DECIMAL(24,4) NOT NULL DEFAULT 0,
    "pending_payout" DECIMAL(24,4) NOT NULL DEFAULT 0,

    CONSTRAINT "report_offer_days_pkey" PRIMARY KEY ("zone","kind","day","offer_id","event","currency","payout_currency","revenue_currency")
);

-- CreateTable
CREATE TABLE "report_zones" (
    "zone" VARCHAR(64) NOT NULL,
    "added_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "ready_at" TIMESTAMPTZ(3),

    CONSTRAINT "report_zones_pkey" PRIMARY KEY ("zone")
);

-- CreateIndex
CREATE INDEX "report_days_zone_kind_affiliate_id_day_idx" ON "report_days"("zone", "kind", "affiliate_id", "day");

-- Day rows are kept for the zones listed here (UTC from the start; `pnpm reports:rebuild --zone` adds one).
INSERT INTO "report_zones" ("zone", "ready_at") VALUES ('UTC', CURRENT_TIMESTAMP);

-- Raw rows by time, for reports:rebuild and sub1 reports: BRIN (rows arrive in time order; a few
-- pages of index, nothing per insert beyond a summary range).
CREATE INDEX "clicks_created_at_idx" ON "clicks" USING BRIN ("created_at");
CREATE INDEX "conversions_created_at_idx" ON "conversions" USING BRIN ("created_at");
CREATE INDEX "conversions_clicked_at_idx" ON "conversions" USING BRIN ("clicked_at");
