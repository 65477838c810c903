import type { PrismaClient, Tx } from '@trackway/db';
import type { EventEnvelope } from '@trackway/domain';
import type { TypedQueue } from '@trackway/queues';

/**
 * The transactional outbox. `writeEvents` runs inside the transaction that caused the events;
 * `publishEvents` runs after commit; `relayOutbox` republishes whatever a crash between the two
 * left unpublished. Job id = event id, so a second publish of a live job is a no-op.
 */
export async function writeEvents(tx: Tx, events: EventEnvelope[]): Promise<void> {
  if (events.length === 0) return;
  await tx.outboxEvent.createMany({
    data: events.map((event) => ({
      id: event.id,
      type: event.type,
      payload: event as unknown as object,
      createdAt: new Date(event.timestamp),
    })),
  });
}

export async function publishEvents(prisma: PrismaClient, queue: TypedQueue<'events'>, events: EventEnvelope[]): Promise<void> {
  if (events.length === 0) return;
  await queue.addBulk(events.map((event) => ({ name: event.type, data: event, opts: { jobId: event.id } })));
  await prisma.outboxEvent.updateMany({ where: { id: { in: events.map((e) => e.id) }, publishedAt: null }, data: { publishedAt: new Date() } });
}

export interface RelayOptions {
  /** Rows younger than this are left to the normal after-commit publish. */
  graceMs?: number;
  batchSize?: number;
}

/** Publishes every outbox row left unpublished; returns how many it published. */
export async function relayOutbox(prisma: PrismaClient, queue: TypedQueue<'events'>, options: RelayOptions = {}): Promise<number> {
  const graceMs = options.graceMs ?? 5_000;
  const batchSize = options.batchSize ?? 500;
  let total = 0;
  for (;;) {
    const rows = await prisma.outboxEvent.findMany({
      where: { publishedAt: null, createdAt: { lte: new Date(Date.now() - graceMs) } },
      orderBy: { createdAt: 'asc' },
      take: batchSize,
      select: { payload: true },
    });
    if (rows.length === 0) return total;
    await publishEvents(prisma, queue, rows.map((row) => row.payload as unknown as EventEnvelope));
    total += rows.length;
    if (rows.length < batchSize) return total;
  }
}
