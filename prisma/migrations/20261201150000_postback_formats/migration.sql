-- AlterTable
ALTER TABLE "advertisers" ADD COLUMN     "postback_format" JSONB;

-- AlterTable
ALTER TABLE "postbacks" ADD COLUMN     "ignored_params" JSONB;
