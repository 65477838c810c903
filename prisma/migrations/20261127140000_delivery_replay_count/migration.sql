-- AlterTable
ALTER TABLE "deliveries" ADD COLUMN     "replay_count" INTEGER NOT NULL DEFAULT 0;
