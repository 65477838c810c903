import type { PrismaClient } from '@trackway/db';

const DAY_MS = 86_400_000;

/**
 * Deletes the delivery log (deliveries and, by cascade, attempts) and published events older
 * than DELIVERY_LOG_RETENTION_DAYS. Pending deliveries are kept whatever their age.
 */
export async function pruneDeliveryLog(prisma: PrismaClient, retentionDays: number, now = new Date()) {
  const before = new Date(now.getTime() - retentionDays * DAY_MS);
  const deliveries = await prisma.delivery.deleteMany({ where: { createdAt: { lt: before }, status: { not: 'pending' } } });
  const events = await prisma.outboxEvent.deleteMany({ where: { createdAt: { lt: before }, publishedAt: { not: null }, deliveries: { none: {} } } });
  return { deliveries: deliveries.count, events: events.count };
}
