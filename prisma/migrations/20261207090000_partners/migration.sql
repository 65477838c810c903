-- Issue 15: sub IDs on conversions, what the network earns, partner postbacks.

-- CreateEnum
CREATE TYPE "EndpointKind" AS ENUM ('webhook', 'partner_postback');

-- AlterTable
ALTER TABLE "offers" ADD COLUMN "revenue_type" "PayoutType",
ADD COLUMN "revenue_amount" DECIMAL(18,4),
ADD COLUMN "revenue_percent" DECIMAL(7,4),
ADD COLUMN "share_amount_with_partners" BOOLEAN NOT NULL DEFAULT false;

-- AlterTable
ALTER TABLE "conversions" ADD COLUMN "revenue" DECIMAL(18,4),
ADD COLUMN "revenue_currency" CHAR(3),
ADD COLUMN "sub1" VARCHAR(255),
ADD COLUMN "sub2" VARCHAR(255),
ADD COLUMN "sub3" VARCHAR(255),
ADD COLUMN "sub4" VARCHAR(255),
ADD COLUMN "sub5" VARCHAR(255);

-- AlterTable
ALTER TABLE "webhook_endpoints" ADD COLUMN "kind" "EndpointKind" NOT NULL DEFAULT 'webhook',
ADD COLUMN "affiliate_id" INTEGER,
ADD COLUMN "offer_id" INTEGER,
ADD COLUMN "method" VARCHAR(8) NOT NULL DEFAULT 'POST',
ADD COLUMN "preset" VARCHAR(32),
ADD COLUMN "url_sealed" VARCHAR(8192),
ALTER COLUMN "secret_sealed" DROP NOT NULL;

-- AlterTable
ALTER TABLE "deliveries" ADD COLUMN "missing_macros" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- CreateIndex
CREATE INDEX "conversions_sub1_idx" ON "conversions"("sub1");

-- CreateIndex
CREATE INDEX "webhook_endpoints_kind_affiliate_id_idx" ON "webhook_endpoints"("kind", "affiliate_id");

-- Conversions recorded before: their click rows' sub IDs, where the row is still there.
UPDATE "conversions" c
   SET "sub1" = k."sub1", "sub2" = k."sub2", "sub3" = k."sub3", "sub4" = k."sub4", "sub5" = k."sub5"
  FROM "clicks" k
 WHERE k."id" = c."click_id"
   AND (k."sub1" IS NOT NULL OR k."sub2" IS NOT NULL OR k."sub3" IS NOT NULL OR k."sub4" IS NOT NULL OR k."sub5" IS NOT NULL);
