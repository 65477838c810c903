import { type Queryable, statement, writeIsolated } from '@trackway/db';
import { deliveryIdFloor, deliveryIdFor, idTime, newId } from '@trackway/domain';
import {
  type EventJob,
  JOB_BATCH,
  LIVE_JOB_STATES,
  type DeliveryQueues,
  addJobs,
  chunk,
  deliveryBatchJobId,
  deliveryJobId,
  deliveryJobOptions,
  deliveryRetryJobOptions,
} from '@trackway/queues';
import { MicroBatcher } from '@trackway/runtime';
import type { EndpointDirectory, LiveEndpoint } from './endpoints';

// Events fanned out in one batch at most (the events of several concurrent jobs).
const FAN_OUT_BATCH = 500;

const insertDeliveries = statement<{ id: string; event_id: string; endpoint_id: string; batch_job_id: string | null }>(
  'deliveries-fan-out',
  `INSERT INTO deliveries (id, event_id, endpoint_id, event_type, missing_macros, batch_job_id, updated_at)
   SELECT id, event_id, endpoint_id, event_type,
          CASE WHEN missing IS NULL THEN '{}'::text[] ELSE ARRAY(SELECT json_array_elements_text(missing::json)) END, batch_job_id, now()
     FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::text[], $6::varchar[]) AS r(id, event_id, endpoint_id, event_type, missing, batch_job_id)
   ON CONFLICT DO NOTHING
   RETURNING id, event_id, endpoint_id, batch_job_id`,
);

// First sends still pending among pairs that existed already (a replay has its own job).
type Pending = {
  id: string;
  event_id: string;
  endpoint_id: string;
  batch_job_id: string | null;
  attempt_count: number;
  next_attempt_at: Date | null;
  created_at: Date;
};
// Per pair, the ids from its event's time to a day after ($3, $4): its delivery's id (derived: the
// event's time), or one written before the table was partitioned (random, made at its fan-out,
// moments after its event). One partition or two per pair, not all of them (LATERAL … OFFSET 0).
const pendingDeliveries = statement<Pending>(
  'deliveries-fan-out-pending',
  `SELECT d.id, d.event_id, d.endpoint_id, d.batch_job_id, d.attempt_count, d.next_attempt_at, d.created_at
     FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[]) AS p(event_id, endpoint_id, low, high)
     CROSS JOIN LATERAL (
       SELECT * FROM deliveries d
        WHERE d.event_id = p.event_id AND d.endpoint_id = p.endpoint_id AND d.id >= p.low AND d.id < p.high AND d.status = 'pending' AND d.replay_count = 0
       OFFSET 0) d`,
);
// A never-attempted row whose batch job is gone (never queued: its fan-out died or Redis refused
// the add) moves to a fresh batch, the fan-out that moves it queues that batch with exactly the
// rows it moved. Only from the batch it was read with: of two fan-outs at once, one moves it.
const rebatchDeliveries = statement<{ id: string; batch_job_id: string }>(
  'deliveries-fan-out-rebatch',
  `UPDATE deliveries d SET batch_job_id = u.next, updated_at = now()
     FROM unnest($1::varchar[], $2::varchar[], $3::varchar[]) AS u(id, previous, next)
    WHERE d.id = u.id AND d.id = ANY($1::varchar[]) AND d.batch_job_id = u.previous
      AND d.status = 'pending' AND d.attempt_count = 0 AND d.replay_count = 0
   RETURNING d.id, d.batch_job_id`,
);
const idRange = (eventId: string) => {
  const at = idTime(eventId) ?? new Date(0);
  return [deliveryIdFloor(at), deliveryIdFloor(new Date(at.getTime() + 86_400_000))];
};

/**
 * Which job carries each new delivery's first attempt: an endpoint's deliveries of one fan-out,
 * in event order, travel JOB_BATCH.deliveries to a batch job (named by a fresh id: delivery ids
 * are derived from their pair, so two fan-outs of overlapping events would otherwise name two
 * different batches alike, and the second's job would be dropped as a duplicate of the first's);
 * a lone one, and every one of a rate-limited endpoint (its limit counts requests one by one), in
 * a job of its own (null).
 */
export function batchJobIds(
  pairs: Array<{ endpoint: Pick<LiveEndpoint, 'id' | 'rateLimitPerSecond'> }>,
  name: (first: number) => string = () => newId('delivery'),
): Array<string | null> {
  const byEndpoint = new Map<string, number[]>();
  pairs.forEach((p, i) => {
    if (p.endpoint.rateLimitPerSecond) return;
    const list = byEndpoint.get(p.endpoint.id);
    if (list) list.push(i);
    else byEndpoint.set(p.endpoint.id, [i]);
  });
  const ids = pairs.map((): string | null => null);
  for (const indexes of byEndpoint.values())
    for (const group of chunk(indexes, JOB_BATCH.deliveries)) {
      if (group.length < 2) continue;
      const id = deliveryBatchJobId(name(group[0]));
      for (const i of group) ids[i] = id;
    }
  return ids;
}

export interface FanOutDeps {
  pool: Queryable;
  endpoints: EndpointDirectory;
  deliveriesQueue: DeliveryQueues;
  schedule: readonly number[];
}

/**
 * One delivery per enabled endpoint subscribed to the event's type, and per partner postback of a
 * conversion's affiliate (partnerTargets; its missing macros kept on the delivery) — a
 * `webhook.test` event goes only to the endpoint it names; the API wrote its row already. The events of all the
 * worker's concurrent jobs are written together: one multi-row insert, one read of the pairs
 * that existed, one addBulk. Rows are unique on (event, endpoint) (the id is derived from the pair) and jobs use the id
 * `<event id>-<endpoint id>`, so fanning out the same event twice delivers once; a pair that
 * existed and is still pending is enqueued again, so a crash between insert and enqueue loses
 * nothing (an existing job is not duplicated: same job id).
 */
export function createFanOut(deps: FanOutDeps) {
  const { pool, endpoints, deliveriesQueue, schedule } = deps;

  /** The endpoints an event goes to: webhooks subscribed to its type, and a conversion's affiliate's partner postbacks. */
  const targetsOf = async (event: EventJob): Promise<LiveEndpoint[]> => {
    if (event.type === 'webhook.test') {
      const endpoint = await endpoints.get(String(event.data.endpoint_id));
      return endpoint ? [endpoint] : [];
    }
    const webhooks = await endpoints.subscribers(event.type);
    const conversion = event.data.conversion as { affiliate_id?: unknown; offer_id?: unknown } | undefined;
    if (!event.type.startsWith('conversion.') || typeof conversion?.affiliate_id !== 'number' || typeof conversion.offer_id !== 'number') return webhooks;
    return [...webhooks, ...(await endpoints.partners(event.type, conversion.affiliate_id, conversion.offer_id))];
  };

  /** Fans out events; returns how many deliveries each one has queued. */
  async function fanOutAll(events: EventJob[]): Promise<number[]> {
    const targets = await Promise.all(events.map(targetsOf));
    const key = (eventId: string, endpointId: string) => `${eventId} ${endpointId}`;
    // One row per pair (an event published twice at once is in the batch twice), sorted by the
    // unique key so that concurrent batches take row locks in one order (no deadlock).
    const pairs = [
      ...new Map(
        events.flatMap((event, i) => targets[i].map((endpoint) => [key(event.id, endpoint.id), { event, endpointId: endpoint.id, endpoint }] as const)),
      ).entries(),
    ]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, pair]) => pair);
    if (pairs.length === 0) return events.map(() => 0);
    // A partner postback's macros without a value are written with its delivery, in the same statement.
    const missing = await Promise.all(
      pairs.map(async (p) => (p.endpoint.partner ? (await endpoints.partnerRequest(p.endpoint.partner, p.event))?.missing : null)),
    );
    // Derived from the pair: the primary key keeps one delivery per event and endpoint across the
    // table's partitions (and the delivery lands in its event's day). ON CONFLICT DO NOTHING has
    // no target: a delivery written before the table was partitioned conflicts on its own
    // partition's unique (event_id, endpoint_id) instead.
    const ids = pairs.map((p) => deliveryIdFor(p.event.id, p.endpointId));
    const batches = batchJobIds(pairs);
    const created = await insertDeliveries(pool, [
      ids,
      pairs.map((p) => p.event.id),
      pairs.map((p) => p.endpointId),
      pairs.map((p) => p.event.type),
      missing.map((list) => (list?.length ? JSON.stringify(list) : null)),
      batches,
    ]);
    const createdKeys = new Set(created.map((d) => key(d.event_id, d.endpoint_id)));
    const existing = pairs.filter((p) => !createdKeys.has(key(p.event.id, p.endpointId)));
    const ranges = existing.map((p) => idRange(p.event.id));
    const found =
      existing.length === 0
        ? []
        : await pendingDeliveries(pool, [existing.map((p) => p.event.id), existing.map((p) => p.endpointId), ranges.map((r) => r[0]), ranges.map((r) => r[1])]);
    // A never-attempted row of a batch: left to the batch while that is queued or running; moved
    // to a fresh batch if its batch is gone (a fan-out that died before queueing it, a Redis that
    // refused or lost it); a job of its own if the batch ran without it. A gone batch is never
    // queued again under its own id: the fan-out that would queue it knows only its own events'
    // rows, and a later fan-out of the other rows would find it live and leave them to a job that
    // does not carry them (they stayed pending, never sent, until the sweeper). Moved, each row
    // names the one job that carries it.
    const batchStates = new Map<string, string>();
    for (const id of new Set(found.filter((d) => d.attempt_count === 0 && d.batch_job_id).map((d) => d.batch_job_id!)))
      batchStates.set(id, await deliveriesQueue.getJobState(id));
    const batchState = (d: Pending) => (d.attempt_count === 0 && d.batch_job_id ? batchStates.get(d.batch_job_id)! : null);
    // Attempted already, never batched, or its batch ran without it (its state is known and not live).
    const own = found.filter((d) => {
      const state = batchState(d);
      return state === null || (state !== 'unknown' && !LIVE_JOB_STATES.has(state));
    });
    const gone = found.filter((d) => batchState(d) === 'unknown').sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const fresh = new Map<string, string>();
    for (const d of gone) if (!fresh.has(d.batch_job_id!)) fresh.set(d.batch_job_id!, deliveryBatchJobId(newId('delivery')));
    const moved =
      gone.length === 0
        ? new Map<string, string>()
        : new Map(
            (await rebatchDeliveries(pool, [gone.map((d) => d.id), gone.map((d) => d.batch_job_id), gone.map((d) => fresh.get(d.batch_job_id!))])).map(
              (row) => [row.id, row.batch_job_id] as const,
            ),
          );
    // A row another fan-out moved first (or that was attempted meanwhile) is that one's to queue.
    const rebatched = gone.flatMap((d) => (moved.has(d.id) ? [{ ...d, batch_job_id: moved.get(d.id)! }] : []));
    const pending = [...own, ...rebatched];
    const byEvent = new Map(events.map((event) => [event.id, event]));
    const single = (d: { id: string; event_id: string; endpoint_id: string; attempt_count?: number; next_attempt_at?: Date | null }) => {
      const prior = d.attempt_count ?? 0;
      const jobId = deliveryJobId(d.event_id, d.endpoint_id);
      return {
        name: byEvent.get(d.event_id)!.type,
        data: { deliveryId: d.id, endpointId: d.endpoint_id, eventId: d.event_id, ...(prior > 0 ? { priorAttempts: prior } : {}) },
        // Attempted already (in a batch): its retry, on what is left of its schedule, when due.
        opts:
          prior > 0
            ? deliveryRetryJobOptions(schedule, jobId, prior, Math.max(0, (d.next_attempt_at?.getTime() ?? 0) - Date.now()))
            : deliveryJobOptions(schedule, jobId),
      };
    };
    // Each delivery's first attempt is queued under the job its row names, whoever queues it: a
    // new row's batch, or its own job; a pending row that existed, the fresh batch it was moved to
    // if it was never attempted, else its own job (its retry's). A job that exists is not
    // duplicated (same id).
    const first = [...created, ...rebatched].filter((d) => d.batch_job_id);
    const grouped = new Map<string, typeof first>();
    for (const d of first) {
      const list = grouped.get(d.batch_job_id!);
      if (list) list.push(d);
      else grouped.set(d.batch_job_id!, [d]);
    }
    const batched = new Set(first.map((d) => d.id));
    await addJobs(deliveriesQueue, [
      ...[...created, ...pending].filter((d) => !batched.has(d.id)).map(single),
      ...[...grouped].map(([jobId, list]) => ({
        name: 'batch',
        data: {
          endpointId: list[0].endpoint_id,
          // In event order (rows come back in no set order).
          deliveries: list.sort((a, b) => (a.event_id < b.event_id ? -1 : 1)).map((d) => ({ deliveryId: d.id, eventId: d.event_id })),
        },
        opts: deliveryJobOptions(schedule, jobId),
      })),
    ]);
    const queued = [...created, ...pending];
    const counts = new Map<string, number>();
    for (const d of queued) counts.set(d.event_id, (counts.get(d.event_id) ?? 0) + 1);
    return events.map((event) => counts.get(event.id) ?? 0);
  }

  const batcher = new MicroBatcher<EventJob, number>((events) => writeIsolated(events, fanOutAll, (_event, error) => error), {
    maxSize: FAN_OUT_BATCH,
    maxWaitMs: 0,
    maxInFlight: 2,
  });

  /** Fans out one job's events; fails (to be retried) if any of them could not be written. */
  return async function fanOut(events: EventJob[]): Promise<{ deliveries: number }> {
    const settled = await Promise.allSettled(events.map((event) => batcher.add(event)));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    return { deliveries: settled.reduce((sum, s) => sum + (s as PromiseFulfilledResult<number>).value, 0) };
  };
}
