-- CreateEnum
CREATE TYPE "EntityStatus" AS ENUM ('active', 'inactive');

-- CreateEnum
CREATE TYPE "PayoutType" AS ENUM ('fixed', 'percent');

-- CreateEnum
CREATE TYPE "ConversionStatus" AS ENUM ('pending', 'approved', 'rejected');

-- CreateEnum
CREATE TYPE "PostbackStatus" AS ENUM ('accepted', 'duplicate', 'rejected');

-- CreateEnum
CREATE TYPE "CommissionStatus" AS ENUM ('pending', 'approved', 'voided');

-- CreateTable
CREATE TABLE "advertisers" (
    "id" SERIAL NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "postback_key_hash" CHAR(64) NOT NULL,
    "status" "EntityStatus" NOT NULL DEFAULT 'active',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "advertisers_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "affiliates" (
    "id" SERIAL NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "status" "EntityStatus" NOT NULL DEFAULT 'active',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "affiliates_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "offers" (
    "id" SERIAL NOT NULL,
    "advertiser_id" INTEGER NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "destination_url" VARCHAR(2048) NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "payout_type" "PayoutType" NOT NULL,
    "payout_amount" DECIMAL(18,4),
    "payout_percent" DECIMAL(7,4),
    "attribution_window_days" INTEGER NOT NULL DEFAULT 30,
    "min_ctit_seconds" INTEGER NOT NULL DEFAULT 10,
    "amount_cap" DECIMAL(18,4),
    "status" "EntityStatus" NOT NULL DEFAULT 'active',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "offers_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "clicks" (
    "id" VARCHAR(64) NOT NULL,
    "offer_id" INTEGER NOT NULL,
    "affiliate_id" INTEGER NOT NULL,
    "sub1" VARCHAR(255),
    "sub2" VARCHAR(255),
    "sub3" VARCHAR(255),
    "sub4" VARCHAR(255),
    "sub5" VARCHAR(255),
    "ip" VARCHAR(45),
    "user_agent" VARCHAR(512),
    "created_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "clicks_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "postbacks" (
    "id" VARCHAR(40) NOT NULL,
    "advertiser_id" INTEGER NOT NULL,
    "status" "PostbackStatus" NOT NULL,
    "reason" VARCHAR(64),
    "conversion_id" VARCHAR(40),
    "params" JSONB NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL,
    "processed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "postbacks_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "conversions" (
    "id" VARCHAR(40) NOT NULL,
    "advertiser_id" INTEGER NOT NULL,
    "offer_id" INTEGER NOT NULL,
    "affiliate_id" INTEGER NOT NULL,
    "click_id" VARCHAR(64) NOT NULL,
    "order_id" VARCHAR(255) NOT NULL,
    "event" VARCHAR(64) NOT NULL,
    "status" "ConversionStatus" NOT NULL,
    "hold_reason" VARCHAR(64),
    "amount" DECIMAL(18,4) NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "payout" DECIMAL(18,4) NOT NULL,
    "payout_currency" CHAR(3) NOT NULL,
    "clicked_at" TIMESTAMPTZ(3) NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "conversions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "commissions" (
    "id" VARCHAR(40) NOT NULL,
    "conversion_id" VARCHAR(40) NOT NULL,
    "affiliate_id" INTEGER NOT NULL,
    "amount" DECIMAL(18,4) NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "status" "CommissionStatus" NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "commissions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "fraud_flags" (
    "id" VARCHAR(40) NOT NULL,
    "postback_id" VARCHAR(40) NOT NULL,
    "conversion_id" VARCHAR(40),
    "rule" VARCHAR(64) NOT NULL,
    "details" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "fraud_flags_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "outbox_events" (
    "id" VARCHAR(40) NOT NULL,
    "type" VARCHAR(64) NOT NULL,
    "payload" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "published_at" TIMESTAMPTZ(3),

    CONSTRAINT "outbox_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "advertisers_postback_key_hash_key" ON "advertisers"("postback_key_hash");

-- CreateIndex
CREATE INDEX "offers_advertiser_id_idx" ON "offers"("advertiser_id");

-- CreateIndex
CREATE INDEX "clicks_offer_id_created_at_idx" ON "clicks"("offer_id", "created_at");

-- CreateIndex
CREATE INDEX "clicks_affiliate_id_created_at_idx" ON "clicks"("affiliate_id", "created_at");

-- CreateIndex
CREATE INDEX "postbacks_advertiser_id_received_at_idx" ON "postbacks"("advertiser_id", "received_at");

-- CreateIndex
CREATE INDEX "postbacks_conversion_id_idx" ON "postbacks"("conversion_id");

-- CreateIndex
CREATE INDEX "conversions_affiliate_id_idx" ON "conversions"("affiliate_id");

-- CreateIndex
CREATE INDEX "conversions_offer_id_idx" ON "conversions"("offer_id");

-- CreateIndex
CREATE INDEX "conversions_status_idx" ON "conversions"("status");

-- CreateIndex
CREATE UNIQUE INDEX "conversions_advertiser_id_order_id_event_key" ON "conversions"("advertiser_id", "order_id", "event");

-- CreateIndex
CREATE UNIQUE INDEX "commissions_conversion_id_key" ON "commissions"("conversion_id");

-- CreateIndex
CREATE INDEX "commissions_affiliate_id_currency_status_idx" ON "commissions"("affiliate_id", "currency", "status");

-- CreateIndex
CREATE INDEX "fraud_flags_postback_id_idx" ON "fraud_flags"("postback_id");

-- CreateIndex
CREATE INDEX "fraud_flags_conversion_id_idx" ON "fraud_flags"("conversion_id");

-- CreateIndex
CREATE INDEX "outbox_events_published_at_created_at_idx" ON "outbox_events"("published_at", "created_at");

-- AddForeignKey
ALTER TABLE "offers" ADD CONSTRAINT "offers_advertiser_id_fkey" FOREIGN KEY ("advertiser_id") REFERENCES "advertisers"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "commissions" ADD CONSTRAINT "commissions_conversion_id_fkey" FOREIGN KEY ("conversion_id") REFERENCES "conversions"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "fraud_flags" ADD CONSTRAINT "fraud_flags_conversion_id_fkey" FOREIGN KEY ("conversion_id") REFERENCES "conversions"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
