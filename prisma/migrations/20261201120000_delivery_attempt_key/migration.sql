-- AlterTable
ALTER TABLE "delivery_attempts" ADD COLUMN     "attempt_key" VARCHAR(200);

-- CreateIndex
CREATE UNIQUE INDEX "delivery_attempts_attempt_key_key" ON "delivery_attempts"("attempt_key");
