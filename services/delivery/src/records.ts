// The delivery log's hot path on pg named statements: the per-delivery read batched across
// concurrent jobs, and attempt records group-committed (many attempts in one transaction).
import { type PgClient, type PgPool, inTransaction, statement, writeIsolated } from '@trackway/db';
import { type EventEnvelope, createEvent, endpointJson, partnerPostbackJson } from '@trackway/domain';
import type { Logger } from '@trackway/logger';
import { insertEvents, publishOrLeave } from '@trackway/outbox';
import type { TypedQueue } from '@trackway/queues';
import { MicroBatcher } from '@trackway/runtime';
import { type EndpointAttempt, foldFailingSince } from './decide';

const BATCH = 500;

export interface DeliveryRow {
  status: 'pending' | 'succeeded' | 'failed';
  /** Attempts logged so far: a batch sends only deliveries never attempted. */
  attemptCount: number;
  /** The batch job that carries its first attempt (fanout.ts): a batch sends only the rows that name it. */
  batchJobId: string | null;
  /** Replays so far: a replayed delivery is its replay's job's to send. */
  replayCount: number;
  /** When its next attempt is due (a retry's), if one is. */
  nextAttemptAt: Date | null;
  payload: unknown;
}

// One probe per delivery and per event (LATERAL … OFFSET 0 is not flattened into a join): each
// reads one partition of each partitioned table, where a join planned for the batch would weigh
// (and for a large batch hash) every partition.
const readDeliveries = statement<DeliveryRow & { id: string }>(
  'deliveries-read',
  `SELECT d.id, d.status::text AS status, d.attempt_count AS "attemptCount", d.batch_job_id AS "batchJobId", d.replay_count AS "replayCount",
          d.next_attempt_at AS "nextAttemptAt", e.payload
     FROM unnest($1::varchar[]) AS k(id)
     CROSS JOIN LATERAL (SELECT * FROM deliveries d WHERE d.id = k.id OFFSET 0) d
     CROSS JOIN LATERAL (SELECT e.payload FROM outbox_events e WHERE e.id = d.event_id OFFSET 0) e`,
);

/** Reads deliveries (status and event payload) for the worker's concurrent jobs, one statement per batch. */
export function createDeliveryReader(pool: PgPool) {
  const batcher = new MicroBatcher<string, DeliveryRow | null>(
    async (ids) => {
      const rows = new Map((await readDeliveries(pool, [[...new Set(ids)]])).map((row) => [row.id, row]));
      return ids.map((id) => ({ ok: true, value: rows.get(id) ?? null }));
    },
    { maxSize: BATCH, maxWaitMs: 0, maxInFlight: 2 },
  );
  /** The delivery, or null if it is gone (pruned). */
  return (deliveryId: string) => batcher.add(deliveryId);
}

/** One attempt to log, with the delivery's state after it (decideAttempt). */
export interface AttemptRecord extends EndpointAttempt {
  /** Names this HTTP attempt: recording it again writes nothing. */
  key: string;
  deliveryId: string;
  endpointId: string;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseBody: string | null;
  status: 'succeeded' | 'failed' | 'pending';
  nextAttemptAt: Date | null;
}

// Numbers each attempt from the delivery's count, settles the delivery, and logs the attempt —
// once: an attempt whose key is already logged (a retry after a commit whose answer was lost)
// changes nothing.
const ATTEMPTS_SQL = `
  WITH u AS (
    SELECT * FROM unnest($1::varchar[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int[], $6::int[], $7::varchar[], $8::varchar[], $9::varchar[])
      AS u(id, status, next_attempt_at, at, duration_ms, status_code, error, response_body, attempt_key)
  ), fresh AS (
    -- OFFSET 0 keeps the probe a subplan (an index probe per attempt): as an anti-join, a plan
    -- made while the table looked small hashes all of delivery_attempts on every call.
    -- delivery_id first: the partition key (one partition probed) and the unique key's first column.
    SELECT u.* FROM u WHERE NOT EXISTS (SELECT 1 FROM delivery_attempts x WHERE x.delivery_id = u.id AND x.attempt_key = u.attempt_key OFFSET 0)
  ), d AS (
    -- d.id = ANY($1) as well: the partitions of these ids only, pruned when the statement is planned
    -- (the join alone would be planned over every partition of deliveries).
    UPDATE deliveries d SET attempt_count = d.attempt_count + 1, status = u.status::"DeliveryStatus", next_attempt_at = u.next_attempt_at, updated_at = now()
    FROM fresh u WHERE d.id = u.id AND d.id = ANY($1::varchar[]) RETURNING d.id, d.attempt_count, d.endpoint_id
  ), a AS (
    INSERT INTO delivery_attempts (delivery_id, number, at, duration_ms, status_code, error, response_body, attempt_key)
    SELECT d.id, d.attempt_count, u.at, u.duration_ms, u.status_code, u.error, u.response_body, u.attempt_key FROM d JOIN fresh u ON u.id = d.id
    RETURNING attempt_key
  )`;

/** Returns the keys of the attempts it logged (not those logged before). */
const recordAttempts = statement<{ attempt_key: string }>('attempts-record', `${ATTEMPTS_SQL} SELECT attempt_key FROM a`);

// The common case, a group in which no attempt failed: the attempts, the deliveries they settle
// and the failing clocks they stop, in one statement (one round trip, atomic on its own). Only
// the endpoints of attempts logged now: one logged before (a retry after a commit whose answer
// was lost) must not stop a clock a later failure started. Locked in id order, as every group
// commit locks the endpoints it touches.
const recordSuccesses = statement<{ attempt_key: string }>(
  'attempts-record-successes',
  `${ATTEMPTS_SQL}, c AS (
     UPDATE webhook_endpoints SET failing_since = NULL
      WHERE id IN (SELECT id FROM webhook_endpoints WHERE id IN (SELECT endpoint_id FROM d) AND failing_since IS NOT NULL ORDER BY id FOR UPDATE)
     RETURNING 1)
   SELECT attempt_key FROM a`,
);

const lockEndpoints = statement<{ id: string; failing_since: Date | null }>(
  'endpoints-lock-failing',
  `SELECT id, failing_since FROM webhook_endpoints WHERE id = ANY($1::varchar[]) ORDER BY id FOR UPDATE`,
);

const setFailingSince = statement(
  'endpoints-set-failing',
  `UPDATE webhook_endpoints e SET failing_since = u.failing_since FROM unnest($1::varchar[], $2::timestamptz[]) AS u(id, failing_since)
   WHERE e.id = u.id AND e.failing_since IS DISTINCT FROM u.failing_since`,
);

const disableEndpoint = statement<Parameters<typeof endpointJson>[0] & Parameters<typeof partnerPostbackJson>[0] & { kind: 'webhook' | 'partner_postback' }>(
  'endpoints-disable',
  `UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = $3 WHERE id = $1 AND enabled
   RETURNING id, kind::text AS kind, url, description, event_types AS "eventTypes", sealed_headers AS "sealedHeaders", headers AS "plaintextHeaders",
     rate_limit_per_second AS "rateLimitPerSecond", enabled, disabled_reason AS "disabledReason", created_at AS "createdAt", updated_at AS "updatedAt",
     affiliate_id AS "affiliateId", offer_id AS "offerId", method, preset`,
);

export interface RecorderDeps {
  pool: PgPool;
  eventsQueue: TypedQueue<'events'>;
  /** Tells every process caching endpoints that one changed (was disabled). */
  invalidateEndpoint: (id: string) => Promise<void>;
  logger: Logger;
  disableAfterMs: number;
}

/** Splits records so that no delivery appears twice in one statement (a replay beside its first send). */
function rounds(records: AttemptRecord[]): AttemptRecord[][] {
  const out: AttemptRecord[][] = [];
  for (const record of records) {
    const round = out.find((r) => !r.some((other) => other.deliveryId === record.deliveryId));
    if (round) round.push(record);
    else out.push([record]);
  }
  return out;
}

const attemptColumns = (round: AttemptRecord[]) => [
  round.map((r) => r.deliveryId),
  round.map((r) => r.status),
  round.map((r) => r.nextAttemptAt),
  round.map((r) => r.at),
  round.map((r) => r.durationMs),
  round.map((r) => r.statusCode),
  round.map((r) => r.error),
  round.map((r) => r.responseBody),
  round.map((r) => r.key),
];

const byDeliveryId = (a: AttemptRecord, b: AttemptRecord) => (a.deliveryId < b.deliveryId ? -1 : a.deliveryId > b.deliveryId ? 1 : 0);

/** A group with no failed attempt and no delivery twice: one statement, no transaction to open. */
function allSucceeded(records: AttemptRecord[]): boolean {
  return records.every((r) => r.succeeded) && new Set(records.map((r) => r.deliveryId)).size === records.length;
}

async function writeSuccesses(pool: PgPool, records: AttemptRecord[]): Promise<Set<string>> {
  const logged = await recordSuccesses(pool, attemptColumns([...records].sort(byDeliveryId)));
  return new Set(logged.map((row) => row.attempt_key));
}

async function writeAttempts(client: PgClient, records: AttemptRecord[], disableAfterMs: number): Promise<{ logged: Set<string>; events: EventEnvelope[] }> {
  const logged = new Set<string>();
  for (const round of rounds([...records].sort(byDeliveryId)))
    for (const row of await recordAttempts(client, attemptColumns(round))) logged.add(row.attempt_key);

  // Only attempts logged now move a failing clock: one logged before already moved it.
  const byEndpoint = new Map<string, AttemptRecord[]>();
  for (const r of records) {
    if (!logged.has(r.key)) continue;
    const list = byEndpoint.get(r.endpointId);
    if (list) list.push(r);
    else byEndpoint.set(r.endpointId, [r]);
  }
  if (byEndpoint.size === 0) return { logged, events: [] };
  // Every endpoint of the group locked at once, in id order: concurrent group commits (other
  // processes) wait for each other instead of deadlocking. Each clock is folded from its locked
  // value, attempt by attempt, and written where it changed.
  const locked = await lockEndpoints(client, [[...byEndpoint.keys()].sort()]);
  const clocks = locked.map((row) => ({ id: row.id, ...foldFailingSince(row.failing_since, byEndpoint.get(row.id)!, disableAfterMs) }));
  await setFailingSince(client, [clocks.map((c) => c.id), clocks.map((c) => c.failingSince)]);
  const events: EventEnvelope[] = [];
  const now = new Date();
  for (const clock of clocks.filter((c) => c.disableReason)) {
    const [endpoint] = await disableEndpoint(client, [clock.id, clock.disableReason, now]);
    if (endpoint) {
      const shown = endpoint.kind === 'partner_postback' ? partnerPostbackJson(endpoint) : endpointJson(endpoint);
      events.push(createEvent('endpoint.disabled', { endpoint: shown }, now));
    }
  }
  // The disabling and its endpoint.disabled event commit with the attempt that caused them.
  await insertEvents(client, events);
  return { logged, events };
}

/**
 * Group-commits attempt records: the attempts handed in by concurrent jobs are written in one
 * transaction (deliveries updated from unnest, attempts inserted, each endpoint's failing_since
 * folded in order, disablings with their outbox events). Each caller's promise settles once
 * its attempt committed. Events of disabled endpoints are published after commit (the outbox
 * relay covers a failed publish).
 */
export function createAttemptRecorder(deps: RecorderDeps) {
  const { pool, logger } = deps;
  const writeAll = async (records: AttemptRecord[]) => {
    if (allSucceeded(records)) {
      const logged = await writeSuccesses(pool, records);
      return records.map((r) => logged.has(r.key));
    }
    const { logged, events } = await inTransaction(pool, (client) => writeAttempts(client, records, deps.disableAfterMs));
    if (events.length > 0) {
      for (const event of events) {
        const endpointId = (event.data as { endpoint: { id: string } }).endpoint.id;
        logger.warn({ endpoint_id: endpointId, event_id: event.id }, 'endpoint disabled');
        await deps.invalidateEndpoint(endpointId).catch(() => undefined);
      }
      await publishOrLeave(pool, deps.eventsQueue, events, logger);
    }
    return records.map((r) => logged.has(r.key));
  };
  const batcher = new MicroBatcher<AttemptRecord, boolean>((records) => writeIsolated(records, writeAll, (_record, error) => error), {
    maxSize: BATCH,
    maxWaitMs: 0,
  });
  /** Resolves true once the attempt is logged, false if it was logged before (by an earlier try). */
  return (record: AttemptRecord) => batcher.add(record);
}
