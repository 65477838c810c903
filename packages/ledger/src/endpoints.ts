import type { PrismaClient } from '@trackway/db';
import { type HeaderMap, type SecretBox, sealHeaders } from '@trackway/domain';

/**
 * Seals the custom headers still stored in plaintext (rows from before the
 * 20261201130000_seal_endpoint_headers migration, or written by an older api during a rolling
 * upgrade) and empties the plaintext column. Conditional on the plaintext read, so a concurrent
 * change is never overwritten. Returns how many endpoints it sealed; the api runs it at start-up.
 */
export async function sealPlaintextHeaders(prisma: PrismaClient, box: SecretBox): Promise<number> {
  const rows = await prisma.$queryRaw<{ id: string; headers: HeaderMap }[]>`SELECT id, headers FROM webhook_endpoints WHERE headers <> '{}'::jsonb`;
  let sealed = 0;
  for (const row of rows) {
    sealed += await prisma.$executeRaw`
      UPDATE webhook_endpoints SET sealed_headers = ${JSON.stringify(sealHeaders(box, row.headers))}::jsonb, headers = '{}'::jsonb
       WHERE id = ${row.id} AND headers = ${JSON.stringify(row.headers)}::jsonb`;
  }
  return sealed;
}

/**
 * Deletes an endpoint with its deliveries and their attempts, in one transaction. The delivery log
 * is partitioned and has no foreign keys (docs/operations.md): what a cascade did, statements do.
 * A delivery a fan-out writes meanwhile (its endpoint still cached) is left without an endpoint:
 * the worker fails it, the api answers 404 for it, retention drops it with its day.
 */
export async function deleteEndpoint(prisma: PrismaClient, id: string): Promise<void> {
  await prisma.$transaction([
    // The endpoint first: from then on, its row is locked until the log is gone.
    prisma.webhookEndpoint.delete({ where: { id } }),
    prisma.$executeRaw`DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE endpoint_id = ${id})`,
    prisma.$executeRaw`DELETE FROM deliveries WHERE endpoint_id = ${id}`,
  ]);
}
