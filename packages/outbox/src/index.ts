import { type Queryable, type Tx, statement } from '@trackway/db';
import type { EventEnvelope } from '@trackway/domain';
import { JOB_BATCH, type TypedQueue, addJobs, chunk } from '@trackway/queues';

/**
 * The transactional outbox. Events are written inside the transaction that caused them
 * (`writeEvents` on the admin paths' Prisma transactions, `insertEvents` on the hot paths' pg
 * transactions); `publishEvents` runs after commit; `relayOutbox` republishes whatever a crash
 * between the two left unpublished. Events travel up to JOB_BATCH.events per job: the event id
 * (the receivers' idempotency key) is in the payload, and fanning an event out twice delivers
 * it once (deliveries are unique per event and endpoint), so a second publish is harmless.
 */
// The events as one JSON document: Postgres takes each envelope apart (and keeps it whole as the payload).
const INSERT_OUTBOX_SQL = `
  INSERT INTO outbox_events (id, type, payload, created_at)
  SELECT e->>'id', e->>'type', e, (e->>'timestamp')::timestamptz FROM jsonb_array_elements($1::jsonb) AS e`;

export async function writeEvents(tx: Tx, events: EventEnvelope[]): Promise<void> {
  if (events.length > 0) await tx.$executeRawUnsafe(INSERT_OUTBOX_SQL, JSON.stringify(events));
}

const insertOutbox = statement('outbox-insert', INSERT_OUTBOX_SQL);

/** `writeEvents` for a pg transaction: one statement for any number of events. */
export async function insertEvents(db: Queryable, events: EventEnvelope[]): Promise<void> {
  if (events.length === 0) return;
  await insertOutbox(db, [JSON.stringify(events)]);
}

const mark = statement('outbox-mark-published', `UPDATE outbox_events SET published_at = now() WHERE id = ANY($1::varchar[]) AND published_at IS NULL`);

/** Enqueues committed events: one queue call, JOB_BATCH.events per job. */
export async function enqueueEvents(queue: TypedQueue<'events'>, events: EventEnvelope[]): Promise<void> {
  if (events.length === 0) return;
  await addJobs(
    queue,
    chunk(events, JOB_BATCH.events).map((list) => ({ name: list.length === 1 ? list[0].type : 'events', data: { events: list } })),
  );
}

/**
 * Marks enqueued events published, so the relay leaves them alone. It only saves the relay
 * work: an event enqueued and not marked (a crash in between) is enqueued again by the relay,
 * and fanning it out again delivers nothing twice.
 */
export async function markPublished(db: Queryable, ids: string[]): Promise<void> {
  if (ids.length > 0) await mark(db, [ids]);
}

/** Enqueues committed events and marks them published. */
export async function publishEvents(db: Queryable, queue: TypedQueue<'events'>, events: EventEnvelope[]): Promise<void> {
  await enqueueEvents(queue, events);
  await markPublished(
    db,
    events.map((e) => e.id),
  );
}

/**
 * After a commit: publishes its events, or, when they cannot be enqueued now (Redis down), leaves
 * them to the relay, which enqueues every committed event not marked published. Never throws.
 */
export function publishOrLeave(
  db: Queryable,
  queue: TypedQueue<'events'>,
  events: EventEnvelope[],
  logger: { warn(fields: object, message: string): void },
  what = 'events',
): Promise<void> {
  return publishEvents(db, queue, events).catch((err: unknown) => logger.warn({ err }, `${what} left for the outbox relay`));
}

export interface RelayOptions {
  /** Rows younger than this are left to the normal after-commit publish. */
  graceMs?: number;
  batchSize?: number;
}

const unpublished = statement<{ payload: EventEnvelope }>(
  'outbox-unpublished',
  `SELECT payload FROM outbox_events WHERE published_at IS NULL AND created_at <= $1::timestamptz ORDER BY created_at LIMIT $2::int`,
);

/** Publishes every outbox row left unpublished; returns how many it published. */
export async function relayOutbox(db: Queryable, queue: TypedQueue<'events'>, options: RelayOptions = {}): Promise<number> {
  const graceMs = options.graceMs ?? 5_000;
  const batchSize = options.batchSize ?? 500;
  let total = 0;
  for (;;) {
    const rows = await unpublished(db, [new Date(Date.now() - graceMs).toISOString(), batchSize]);
    if (rows.length === 0) return total;
    await publishEvents(
      db,
      queue,
      rows.map((row) => row.payload),
    );
    total += rows.length;
    if (rows.length < batchSize) return total;
  }
}
