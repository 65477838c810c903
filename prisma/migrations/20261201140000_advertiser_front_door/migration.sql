-- AlterTable
ALTER TABLE "advertisers" ADD COLUMN     "signing_secret_sealed" VARCHAR(255),
ADD COLUMN     "previous_signing_secret_sealed" VARCHAR(255),
ADD COLUMN     "previous_signing_secret_expires_at" TIMESTAMPTZ(3),
ADD COLUMN     "require_signed_postbacks" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "allowed_ips" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "postback_rate_limit_per_second" INTEGER;
