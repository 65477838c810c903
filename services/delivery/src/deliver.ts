import { setTimeout as sleep } from 'node:timers/promises';
import type { PgPool, PrismaClient } from '@trackway/db';
import type { EventEnvelope } from '@trackway/domain';
import { type Logger, errorReporter } from '@trackway/logger';
import {
  type DeliveryBatchJob,
  type DeliveryJob,
  type DeliveryQueues,
  type TypedQueue,
  addJobs,
  deliveryJobId,
  deliveryRetryJobOptions,
} from '@trackway/queues';
import { type Metrics, jobIds } from '@trackway/runtime';
import { signedHeaders } from '@trackway/webhooks';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { breakerOutcome, decideAttempt, isSuccess } from './decide';
import { type EndpointDirectory, type LiveEndpoint, liveSecrets } from './endpoints';
import type { GatedIsolation } from './gate';
import type { InFlightRequests } from './in-flight';
import { type DeliveryRow, createAttemptRecorder, createDeliveryReader } from './records';
import { outageDelay } from './schedule';
import type { AttemptResult, Sender } from './sender';

export const USER_AGENT = `Trackway-Webhooks/${process.env.npm_package_version ?? '0.1.0'} (+https://github.com/trackway/trackway)`;
/** What a partner postback's request names itself (trackers log it). */
export const PARTNER_USER_AGENT = `Trackway-Postback/${process.env.npm_package_version ?? '0.1.0'} (+https://github.com/trackway/trackway)`;

/**
 * How long a job holding an attempt's result keeps trying to record it (Postgres down) before it
 * is put back carrying the result, to record it on its next run (never to send it again).
 * Long enough for a database failover or restart.
 */
export const RECORD_PATIENCE_MS = 10 * 60_000;

/** A failed attempt with attempts left: BullMQ's backoff strategy reads the delay from it. */
export class DeliveryAttemptFailed extends Error {
  override name = 'DeliveryAttemptFailed';
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
  }
}

export interface DeliverDeps {
  prisma: PrismaClient;
  pool: PgPool;
  endpoints: EndpointDirectory;
  /** Per-endpoint admission: the in-process gate in front of the Redis breaker, slots and rate limit. */
  isolation: GatedIsolation;
  /** The keep-alive HTTP client, SSRF-guarded by the address policy it was made with. */
  sender: Sender;
  /** The process's requests in flight (DELIVERY_MAX_IN_FLIGHT): a job's slot is lent back while its request is out. */
  inFlight: InFlightRequests;
  eventsQueue: TypedQueue<'events'>;
  /** Where a delivery whose first attempt (made in a batch) failed is queued for its retries (its endpoint's shard). */
  deliveriesQueue: DeliveryQueues;
  /** Tells every process caching endpoints that one changed (e.g. was disabled). */
  invalidateEndpoint: (id: string) => Promise<void>;
  logger: Logger;
  metrics: Metrics;
  /** Aborted when the worker starts closing: a job waiting out an outage stops waiting. */
  closing?: AbortSignal;
  /** The worker's lockDuration: a long job (a batch, a record waiting out an outage) extends its own lock by it. */
  lockDurationMs?: number;
  settings: {
    timeoutMs: number;
    schedule: readonly number[];
    disableAfterMs: number;
    /** DELIVERY_RETRY_AFTER_MAX. */
    retryAfterMaxMs: number;
    /** DELIVERY_ENDPOINT_CONCURRENCY: a batch sends on at most this many lanes. */
    endpointConcurrency: number;
  };
}

/** The request body: the envelope, in a fixed key order, identical on every attempt and replay. */
export function bodyOf(payload: unknown): string {
  const event = payload as EventEnvelope;
  return JSON.stringify({ id: event.id, type: event.type, timestamp: event.timestamp, data: event.data });
}

const statusClass = (result: AttemptResult) => (result.statusCode ? `${Math.floor(result.statusCode / 100)}xx` : 'none');

function requestHeaders(endpoint: LiveEndpoint, eventId: string, body: string, at: Date): Record<string, string> {
  return {
    ...endpoint.headers,
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    ...signedHeaders({ id: eventId, timestamp: at, body }, liveSecrets(endpoint, at)),
  };
}

type Unrecorded = NonNullable<DeliveryJob['unrecorded']>;

/** Thrown where Postgres or Redis failed us: the job goes back without spending an attempt. */
class DependencyUnavailable extends Error {
  override name = 'DependencyUnavailable';
  constructor(
    readonly stage: 'endpoint' | 'admission' | 'read' | 'record' | 'queue',
    override readonly cause: unknown,
    /** An attempt made and not recorded: it goes back with the job, to be recorded, not sent again. */
    readonly unrecorded?: Unrecorded,
  ) {
    super(`${stage}: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/** A batch takes one lane per this much of its endpoint's usual time (its deliveries × their typical duration). */
const LANE_WORK_MS = 1_000;

/** BullMQ's default lockDuration. */
const DEFAULT_LOCK_MS = 30_000;

/**
 * One admission of a batch (a turn) sends at most `requests` requests, and none that would end
 * past `ms` at the endpoint's usual pace: short enough that no job, of any process, takes a turn's
 * oldest request for a hanging one (gate.ts: 250 ms at least). A worker killed mid-batch leaves
 * up to two turns per lane sent and not logged, sent again by the job's next run.
 */
export const BATCH_TURN = { ms: 150, requests: 50 } as const;

const isBatch = (job: Job<DeliveryJob | DeliveryBatchJob>): job is Job<DeliveryBatchJob> => 'deliveries' in job.data;

/**
 * Moves an active job to delayed without spending an attempt. If Redis refuses even that, the
 * job's lock lapses and the stalled-job check puts it back in waiting: no attempt spent either.
 */
async function delayJob(job: Job<DeliveryJob | DeliveryBatchJob>, token: string | undefined, until: number, reason: string): Promise<never> {
  await job.moveToDelayed(until, token).catch(() => undefined);
  throw new DelayedError(reason);
}

const during = async <T>(stage: DependencyUnavailable['stage'], work: () => Promise<T>): Promise<T> => {
  try {
    return await work();
  } catch (error) {
    throw new DependencyUnavailable(stage, error);
  }
};

export function createDeliverHandler(deps: DeliverDeps) {
  const { prisma, endpoints, isolation, logger, metrics, settings } = deps;
  const readDelivery = createDeliveryReader(deps.pool);
  const recordAttempt = createAttemptRecorder({
    pool: deps.pool,
    eventsQueue: deps.eventsQueue,
    invalidateEndpoint: deps.invalidateEndpoint,
    logger,
    disableAfterMs: settings.disableAfterMs,
  });
  // During an outage every job says the same: one warning per kind every 10 s (with how many
  // were folded in), each job's own line at debug level.
  const reportOutage = errorReporter(logger, { level: 'warn' });

  // Recent attempt duration per endpoint (EWMA, this process): whether a job may wait for its
  // endpoint in-process, and how long a parked one stays away.
  const typicalMs = new Map<string, number>();
  const observe = (endpointId: string, ms: number) => {
    const previous = typicalMs.get(endpointId);
    if (typicalMs.size > 10_000 && previous === undefined) typicalMs.clear();
    typicalMs.set(endpointId, previous === undefined ? ms : previous * 0.8 + ms * 0.2);
  };

  // Consecutive times each job was put back for an outage (this process): its backoff.
  const deferrals = new Map<string, number>();

  /**
   * Extends this run's lock on its job (BullMQ renews it too, on a timer that a Redis restart can
   * stop); false when the job is no longer this run's: its lock lapsed and another run took it.
   */
  const lockMs = deps.lockDurationMs ?? DEFAULT_LOCK_MS;
  const holdLock = async (job: Job<DeliveryJob | DeliveryBatchJob>, token: string | undefined) => !token || (await job.extendLock(token, lockMs)) === 1;

  /** Puts the job back (delayed, attemptsMade unchanged) until Postgres or Redis answers again. */
  async function putBack(job: Job<DeliveryJob | DeliveryBatchJob>, token: string | undefined, failure: DependencyUnavailable): Promise<never> {
    const n = deferrals.get(job.id!) ?? 0;
    if (deferrals.size > 10_000 && n === 0) deferrals.clear();
    deferrals.set(job.id!, n + 1);
    const delay = outageDelay(n);
    metrics.deliveries.inc({ result: 'deferred', status_class: 'none' });
    reportOutage({ stage: failure.stage }, failure.cause, 'delivery put back: a dependency is unavailable (no attempt spent)');
    logger.debug({ ...jobIds(job), stage: failure.stage, retry_in_ms: delay }, 'delivery put back');
    // Redis is up (the job can be moved): the attempt's result goes with it. If it is not, the
    // job stalls and runs again, sending again: at least once, never lost.
    if (failure.unrecorded && !isBatch(job)) await job.updateData({ ...job.data, unrecorded: failure.unrecorded }).catch(() => undefined);
    return delayJob(job, token, Date.now() + delay, `put back: ${failure.message}`);
  }

  /**
   * Runs `work` until it succeeds, through an outage of what it needs, keeping the job's lock
   * meanwhile (a lapsed lock would let another run send again); throws its last error once
   * RECORD_PATIENCE_MS has passed or the worker closes.
   */
  async function patiently<T>(
    job: Job<DeliveryJob | DeliveryBatchJob>,
    token: string | undefined,
    stage: 'record' | 'queue',
    retrying: string,
    work: () => Promise<T>,
  ): Promise<T> {
    const deadline = Date.now() + RECORD_PATIENCE_MS;
    for (let failures = 0; ; failures++) {
      try {
        return await work();
      } catch (error) {
        if (Date.now() >= deadline || deps.closing?.aborted) throw error;
        const wait = outageDelay(failures);
        if (stage === 'record') metrics.deliveries.inc({ result: 'record_retried', status_class: 'none' });
        reportOutage({ stage }, error, retrying);
        logger.debug({ ...jobIds(job), retry_in_ms: wait }, retrying);
        // The lock is extended at least three times per lockDuration while this waits.
        for (const until = Date.now() + wait; Date.now() < until && !deps.closing?.aborted; ) {
          await holdLock(job, token).catch(() => undefined);
          await sleep(Math.min(until - Date.now(), lockMs / 3), undefined, { signal: deps.closing }).catch(() => undefined);
        }
      }
    }
  }

  /**
   * Records an attempt already made, retrying through an outage (sending again would be a second
   * attempt); past RECORD_PATIENCE_MS, or when the worker closes, the job goes back carrying the
   * result. An attempt an earlier try had logged already (its answer was lost) is not logged again.
   */
  async function record(job: Job<DeliveryJob | DeliveryBatchJob>, attempt: Parameters<typeof recordAttempt>[0], made: Unrecorded, token?: string) {
    try {
      return await patiently(job, token, 'record', 'attempt not recorded yet; retrying', () => recordAttempt(attempt));
    } catch (error) {
      throw new DependencyUnavailable('record', error, made);
    }
  }

  /**
   * What an endpoint is sent for an event: a webhook gets the signed JSON envelope; a partner
   * postback its URL filled in (partnerRequest), a GET or a form POST, unsigned. Null: a partner
   * template that would leave its host.
   */
  async function requestFor(endpoint: LiveEndpoint, eventId: string, payload: unknown) {
    if (!endpoint.partner) {
      const body = bodyOf(payload);
      return { url: endpoint.url, method: 'POST' as const, body, headers: (at: Date) => requestHeaders(endpoint, eventId, body, at) };
    }
    const request = await endpoints.partnerRequest(endpoint.partner, payload as EventEnvelope);
    if (!request) return null;
    const headers = {
      ...endpoint.headers,
      'user-agent': PARTNER_USER_AGENT,
      ...(request.body === null ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
    };
    return { url: request.url, method: request.method, body: request.body, headers: () => headers };
  }

  async function attempt(job: Job<DeliveryJob>, token?: string) {
    // A run before this one made an attempt and could not record it: it is recorded now, before
    // anything else (even if the endpoint was disabled meanwhile: every attempt is logged).
    if (job.data.unrecorded) return settle(job, job.data.unrecorded, true, token);

    const { deliveryId, endpointId, eventId, replay } = job.data;
    const endpoint = await during('endpoint', () => endpoints.get(endpointId));
    if (!endpoint?.enabled) {
      // Invariant 4: retried until 2xx, its schedule ends, or its endpoint is disabled.
      await during('endpoint', () =>
        prisma.delivery.updateMany({ where: { id: deliveryId, status: 'pending' }, data: { status: 'failed', nextAttemptAt: null } }),
      );
      metrics.deliveries.inc({ result: 'endpoint_disabled', status_class: 'none' });
      return { skipped: 'endpoint_disabled' };
    }

    // A parked job comes back as a new start that is not an attempt: starts − attempts − 1 = times parked.
    const timesParked = Math.max(0, (job.attemptsStarted ?? 0) - job.attemptsMade - 1);
    // An endpoint that stopped answering parks its jobs before anything is read for them.
    const stuckUntil = isolation.stuckUntil(endpointId, typicalMs.get(endpointId), timesParked);
    if (stuckUntil !== null) return delayJob(job, token, stuckUntil, 'concurrency');

    // The delivery (its status, the event's payload) is read before the endpoint's turn, so the
    // turn is held only for the request itself: an endpoint's cap bounds its requests in flight,
    // and the faster each turn ends, the more of them the cap allows.
    const delivery = await during('read', () => readDelivery(deliveryId));
    if (!delivery) return { skipped: 'delivery_pruned' };
    if (delivery.status !== 'pending' && !replay) return { skipped: `already_${delivery.status}` };
    const request = await during('read', () => requestFor(endpoint, eventId, delivery.payload));

    // Isolation: a busy or rate-limited endpoint makes this job wait its turn in-process
    // (bounded); a paused one parks it as delayed, without spending an attempt.
    const slotToken = `${job.id}:${token ?? ''}`;
    const admission = await during('admission', () =>
      isolation.admit(endpointId, endpoint.rateLimitPerSecond, slotToken, typicalMs.get(endpointId), timesParked),
    );
    if (!admission.ok) return delayJob(job, token, admission.retryAt, admission.reason);
    // While the request is out, the job's worker slot serves other jobs: a receiver that never
    // answers holds one of DELIVERY_MAX_IN_FLIGHT sockets until the deadline, not a slot.
    // (Waiting for one never fails: every request in flight ends by its deadline.)
    const requestEnded = await deps.inFlight.begin(true, job.queueQualifiedName);
    const at = new Date();
    let result: AttemptResult | undefined;
    try {
      result = request
        ? await deps.sender.send(request.url, request.body, request.headers(at), { timeoutMs: settings.timeoutMs, method: request.method })
        : // A partner template that would leave its host (stored before it was refused): never sent.
          { statusCode: null, error: 'ssrf_blocked', responseBody: null, durationMs: 0, retryAfterMs: null };
      observe(endpointId, result.durationMs);
    } finally {
      requestEnded();
      // The endpoint's slot goes back at once, without holding up the record; a breaker update
      // lost to a Redis outage only costs accuracy.
      isolation
        .finish(endpointId, slotToken, breakerOutcome(result), admission.probe)
        .catch((error: unknown) => logger.warn({ ...jobIds(job), err: error }, 'breaker not updated'));
    }
    // This run of this job (a job added anew under the same id has another timestamp): a record
    // retried after a lost answer, or carried to the next run, is this one attempt.
    return settle(job, { key: `${job.id}:${job.timestamp}:${job.attemptsStarted ?? 0}`, at: at.toISOString(), ...result }, false, token);
  }

  /** An attempt's record, from what it returned and what was decided. */
  const attemptRecord = (deliveryId: string, endpointId: string, made: Unrecorded, decision: ReturnType<typeof decideAttempt>) => ({
    key: made.key,
    deliveryId,
    endpointId,
    at: new Date(made.at),
    durationMs: made.durationMs,
    statusCode: made.statusCode,
    error: made.error,
    responseBody: made.responseBody,
    status: decision.status,
    nextAttemptAt: decision.nextDelayMs === null ? null : new Date(Date.now() + decision.nextDelayMs),
    succeeded: decision.succeeded,
    blocked: decision.blocked,
    gone: decision.gone,
  });

  /** What an attempt returned, from what was carried or made (its error class typed back). */
  const resultOf = (made: Unrecorded): AttemptResult => {
    const { key: _key, at: _at, ...rest } = made;
    return { ...rest, error: rest.error as AttemptResult['error'] };
  };

  /** Decides what an attempt made means, records it, and moves the job on (completes, retries with backoff, or fails for good). */
  async function settle(job: Job<DeliveryJob>, made: Unrecorded, carried: boolean, token?: string) {
    const { deliveryId, endpointId } = job.data;
    const result = resultOf(made);
    // A retry of an attempt made in a batch: its schedule goes on from the attempts made before.
    const prior = job.data.priorAttempts ?? 0;
    const decision = decideAttempt(
      result,
      job.attemptsMade + prior,
      (job.opts.attempts ?? 1) + prior,
      settings.schedule,
      Math.random,
      settings.retryAfterMaxMs,
    );
    // The attempt, the delivery's new state (a dead letter included) and the endpoint's failing
    // clock, with any disabling, commit together before the job moves on. Carried, it may have
    // been logged by the run that carried it (its answer was lost): that run decided the same.
    await record(job, attemptRecord(deliveryId, endpointId, made, decision), made, token);
    // The result travelled with the job: it is recorded now, and the job's next run (a retry)
    // must make a new attempt, not record this one again.
    if (carried) await during('record', () => job.updateData({ ...job.data, unrecorded: undefined }));
    metrics.deliveries.inc({ result: decision.succeeded ? 'succeeded' : decision.final ? 'failed' : 'retry', status_class: statusClass(result) });
    const logLine = {
      ...jobIds(job),
      attempt: job.attemptsMade + prior + 1,
      status_code: result.statusCode,
      error: result.error,
      duration_ms: result.durationMs,
    };
    if (decision.succeeded) {
      logger.info(logLine, 'delivered');
      return { status_code: result.statusCode };
    }
    logger.warn({ ...logLine, next_attempt_in_ms: decision.nextDelayMs }, decision.final ? 'delivery failed for good' : 'delivery attempt failed');
    const reason = result.error ?? `HTTP ${result.statusCode}`;
    if (decision.final) {
      throw new UnrecoverableError(
        decision.gone ? 'endpoint gone (410); endpoint disabled' : decision.blocked ? 'destination blocked (ssrf_blocked)' : `last attempt failed: ${reason}`,
      );
    }
    throw new DeliveryAttemptFailed(reason, decision.nextDelayMs!);
  }

  type Made = { deliveryId: string; eventId: string; made: Unrecorded };

  /**
   * The retry of a delivery a batch attempted: a job of its own (deliveryJobId) on what is left of
   * its schedule after `prior` attempts, due in `delayMs`. One job whoever queues it (the same id).
   */
  const retryOf = (endpointId: string, d: { deliveryId: string; eventId: string }, prior: number, delayMs: number) => ({
    name: 'retry',
    data: { deliveryId: d.deliveryId, endpointId, eventId: d.eventId, priorAttempts: prior },
    opts: deliveryRetryJobOptions(settings.schedule, deliveryJobId(d.eventId, endpointId), prior, delayMs),
  });

  /**
   * Invariant 9: the retries of the deliveries an earlier run of this batch attempted and left
   * pending, queued again. That run queued each once its attempt was logged, unless it died in
   * between (a kill -9; most likely while the records of its turn waited out a Postgres outage),
   * and this run sends only what was never attempted: without this, no job would carry them
   * until the sweeper. A retry that is queued already stays as it is (the same id); a replayed
   * delivery is its replay's. Only on a run after the first (a stall, a put-back, a failure): a
   * first run has no earlier run's retries to owe, and adds nothing.
   */
  async function queueOwedRetries(job: Job<DeliveryBatchJob>, rows: Array<DeliveryRow | null>) {
    if ((job.attemptsStarted ?? 0) <= 1 && !job.stalledCounter) return;
    const { endpointId } = job.data;
    const owed = job.data.deliveries.flatMap((d, i) => {
      const row = rows[i];
      if (row?.status !== 'pending' || row.attemptCount === 0 || row.replayCount > 0 || row.batchJobId !== job.id) return [];
      return [retryOf(endpointId, d, row.attemptCount, Math.max(0, (row.nextAttemptAt?.getTime() ?? 0) - Date.now()))];
    });
    if (owed.length > 0) await during('queue', () => addJobs(deps.deliveriesQueue, owed));
  }

  /**
   * Records first attempts a batch made (a turn's, group-committed with whatever else the
   * process records at that moment), and queues each failed
   * one's retry as a job of its own (priorAttempts 1). Attempts that cannot be recorded within
   * RECORD_PATIENCE_MS go back with the job, to be recorded on its next run, never sent again;
   * so does a retry that cannot be queued, to be queued on that run (queueOwedRetries).
   */
  async function settleBatch(job: Job<DeliveryBatchJob>, list: Made[], token?: string) {
    const { endpointId } = job.data;
    const attempts = settings.schedule.length || 1;
    const decided = list.map((m) => {
      const result = resultOf(m.made);
      return { ...m, result, decision: decideAttempt(result, 0, attempts, settings.schedule, Math.random, settings.retryAfterMaxMs) };
    });
    const recorded = await Promise.allSettled(decided.map((d) => record(job, attemptRecord(d.deliveryId, endpointId, d.made, d.decision), d.made, token)));
    const lost = new Map(decided.filter((_d, i) => recorded[i].status === 'rejected').map((d) => [d.deliveryId, d.made]));
    const done = decided.filter((_d, i) => recorded[i].status === 'fulfilled');
    for (const d of done) {
      metrics.deliveries.inc({ result: d.decision.succeeded ? 'succeeded' : d.decision.final ? 'failed' : 'retry', status_class: statusClass(d.result) });
      const logLine = { job_id: job.id, delivery_id: d.deliveryId, event_id: d.eventId, endpoint_id: endpointId, attempt: 1, status_code: d.result.statusCode };
      if (d.decision.succeeded) logger.info({ ...logLine, duration_ms: d.result.durationMs }, 'delivered');
      else
        logger.warn(
          { ...logLine, error: d.result.error, duration_ms: d.result.durationMs, next_attempt_in_ms: d.decision.nextDelayMs },
          d.decision.final ? 'delivery failed for good' : 'delivery attempt failed',
        );
    }
    // Each recorded failure's retry, on what is left of its schedule, queued through a Redis
    // outage as a record is written through a Postgres one. If it still cannot be, the batch goes
    // back (below); if the process dies first, the batch stalls. Either way the batch's next run
    // queues it (queueOwedRetries), on the same schedule (priorAttempts from its row).
    const unqueued = (
      await Promise.all(
        done
          .filter((d) => !d.decision.final)
          .map((d) =>
            patiently(job, token, 'queue', 'retry not queued yet; retrying', () =>
              addJobs(deps.deliveriesQueue, [retryOf(endpointId, d, 1, d.decision.nextDelayMs!)]),
            ).then(
              () => null,
              (error: unknown) => {
                logger.warn({ delivery_id: d.deliveryId, err: error }, "retry not queued; the batch's next run queues it");
                return { error };
              },
            ),
          ),
      )
    ).find((u) => u !== null);
    // What was carried and is recorded now leaves the job; what could not be recorded goes with
    // it, to be recorded (never sent again) on its next run. Read afresh: another lane may have
    // changed the job's data meanwhile.
    const settled = new Set(done.map((d) => d.deliveryId));
    if (lost.size > 0 || job.data.deliveries.some((d) => d.unrecorded && settled.has(d.deliveryId))) {
      const deliveries = job.data.deliveries.map(({ unrecorded, ...d }) =>
        lost.has(d.deliveryId) ? { ...d, unrecorded: lost.get(d.deliveryId) } : unrecorded && !settled.has(d.deliveryId) ? { ...d, unrecorded } : d,
      );
      await during('record', () => job.updateData({ ...job.data, deliveries }));
    }
    if (lost.size > 0) {
      const failed = recorded.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
      throw failed.reason instanceof DependencyUnavailable ? new DependencyUnavailable('record', failed.reason.cause) : failed.reason;
    }
    if (unqueued) throw new DependencyUnavailable('queue', unqueued.error);
  }

  /**
   * A batch job: the first attempts of several deliveries to one endpoint, sent on lanes (each
   * one request at a time, under an admission per turn: the endpoint's cap counts each lane as a
   * request in flight, the breaker learns each turn's outcome), recorded a turn at a time. Only
   * deliveries still pending and never attempted are sent: a run again skips what an earlier run
   * sent. What a refused admission or a closing worker leaves goes back (delayed, no attempt
   * spent) with the job.
   */
  async function deliverBatch(job: Job<DeliveryBatchJob>, token?: string) {
    const { endpointId } = job.data;
    const carried = job.data.deliveries.flatMap((d) => (d.unrecorded ? [{ deliveryId: d.deliveryId, eventId: d.eventId, made: d.unrecorded }] : []));
    if (carried.length > 0) await settleBatch(job, carried, token);

    const ids = job.data.deliveries.map((d) => d.deliveryId);
    const readRows = () => during('read', () => Promise.all(ids.map((id) => readDelivery(id))));
    const endpoint = await during('endpoint', () => endpoints.get(endpointId));
    if (!endpoint?.enabled) {
      // Invariant 4. A delivery attempted already has a job of its own, which settles it (queued
      // again if the run that attempted it died first).
      await queueOwedRetries(job, await readRows());
      const { count } = await during('endpoint', () =>
        prisma.delivery.updateMany({ where: { id: { in: ids }, status: 'pending', attemptCount: 0 }, data: { status: 'failed', nextAttemptAt: null } }),
      );
      metrics.deliveries.inc({ result: 'endpoint_disabled', status_class: 'none' }, count);
      return { skipped: 'endpoint_disabled' };
    }
    const timesParked = Math.max(0, (job.attemptsStarted ?? 0) - job.attemptsMade - 1);
    const stuckUntil = isolation.stuckUntil(endpointId, typicalMs.get(endpointId), timesParked);
    if (stuckUntil !== null) return delayJob(job, token, stuckUntil, 'concurrency');

    const rows = await readRows();
    await queueOwedRetries(job, rows);
    // A row another batch carries now (moved to it by a fan-out that found this batch not queued
    // yet: fanout.ts) is that batch's to send.
    const rest = job.data.deliveries.flatMap((d, i) =>
      rows[i]?.status === 'pending' && rows[i].attemptCount === 0 && rows[i].batchJobId === job.id ? [{ ...d, payload: rows[i].payload }] : [],
    );
    let attempted = 0;
    let succeededAll = 0;
    let resumeAt: number | null = null;
    let stop = false;
    let lockLost = false;
    // BullMQ took the lock as it handed this run the job.
    let lockHeldAt = Date.now();
    // Requests of this job out now: only one of them lends the job's worker slot (in-flight.ts).
    let out = 0;
    // A rate limit counts requests one by one: one per admission (so is a half-open probe).
    const onePerTurn = endpoint.rateLimitPerSecond !== null;
    /**
     * One lane: one request in flight at a time, under one admission per turn (an in-process
     * permit and a Redis slot, as a single job holds), taking the batch's next delivery until none
     * is left or the worker closes. A turn ends after BATCH_TURN, at a failed attempt (the breaker
     * learns of it before the next admission) or after a probe; its attempts are recorded while
     * the next turn sends, and before the one after it.
     */
    const lane = async (n: number) => {
      const slotToken = `${job.id}:${token ?? ''}:${n}`;
      // The record of the turn before, written while this one sends: an error, or null.
      let previous: Promise<unknown> = Promise.resolve(null);
      let failed: { error: unknown } | undefined;
      try {
        while (rest.length > 0 && !stop && !deps.closing?.aborted) {
          // A turn first makes sure, every third of a lock's duration, that the job is still this
          // run's (extending its lock): a run whose lock lapsed (another run may have the job now)
          // sends nothing more.
          if (Date.now() - lockHeldAt >= lockMs / 3) {
            lockHeldAt = Date.now();
            if (!(await during('admission', () => holdLock(job, token)))) {
              stop = true;
              lockLost = true;
              break;
            }
          }
          const typical = typicalMs.get(endpointId) ?? 0;
          const admission = await during('admission', () =>
            isolation.admit(endpointId, endpoint.rateLimitPerSecond, slotToken, typicalMs.get(endpointId), timesParked),
          );
          if (!admission.ok) {
            resumeAt = Math.min(resumeAt ?? Number.POSITIVE_INFINITY, admission.retryAt);
            break;
          }
          const turnStarted = Date.now();
          const made: Made[] = [];
          let last: AttemptResult | undefined;
          let succeeded = 0;
          let failure: unknown;
          try {
            while (rest.length > 0 && !stop) {
              const item = rest.shift()!;
              let request: Awaited<ReturnType<typeof requestFor>>;
              try {
                request = await during('read', () => requestFor(endpoint, item.eventId, item.payload));
              } catch (error) {
                // What this turn sent is still recorded (below) before the error ends the lane.
                rest.unshift(item);
                failure = error;
                break;
              }
              // The job's worker slot is lent by its first request out, never by two (in-flight.ts).
              const requestEnded = await deps.inFlight.begin(out++ === 0, job.queueQualifiedName);
              const at = new Date();
              try {
                last = request
                  ? await deps.sender.send(request.url, request.body, request.headers(at), { timeoutMs: settings.timeoutMs, method: request.method })
                  : { statusCode: null, error: 'ssrf_blocked', responseBody: null, durationMs: 0, retryAfterMs: null };
              } finally {
                requestEnded();
                out -= 1;
              }
              observe(endpointId, last.durationMs);
              made.push({
                deliveryId: item.deliveryId,
                eventId: item.eventId,
                made: { key: `${job.id}:${job.timestamp}:${job.attemptsStarted ?? 0}:${item.deliveryId}`, at: at.toISOString(), ...last },
              });
              const outcome = breakerOutcome(last);
              // A failure ends the turn: the breaker learns it before the next request, whose
              // admission it may refuse (the batch then waits, parked, without spending attempts).
              if (outcome === 'failed') break;
              if (outcome === 'succeeded') succeeded += 1;
              // The turn ends before its next request would take it past BATCH_TURN.ms at the
              // endpoint's usual pace.
              const full = made.length >= BATCH_TURN.requests || Date.now() - turnStarted + typical >= BATCH_TURN.ms;
              if (admission.probe || onePerTurn || full || deps.closing?.aborted) break;
            }
          } finally {
            // The breaker learns the turn's outcome: a failure if it ended in one (after successes,
            // it counts from one again, as if each had been reported), else a success.
            const outcome = breakerOutcome(last) === 'failed' ? 'failed' : succeeded > 0 ? 'succeeded' : 'neutral';
            isolation
              .finish(endpointId, slotToken, outcome, admission.probe, outcome === 'failed' && succeeded > 0)
              .catch((error: unknown) => logger.warn({ ...jobIds(job), err: error }, 'breaker not updated'));
          }
          attempted += made.length;
          succeededAll += made.filter((m) => isSuccess(m.made)).length;
          // The turn's record is written while the next turn sends; the one before must have been
          // written first (at most two turns per lane unlogged at once: what a killed worker sends
          // again).
          const before = previous;
          previous =
            made.length > 0
              ? settleBatch(job, made, token).then(
                  () => null,
                  (error: unknown) => error ?? new Error('record failed'),
                )
              : Promise.resolve(null);
          const error = await before;
          if (error) throw error;
          if (failure) throw failure;
        }
      } catch (error) {
        failed = { error };
      }
      // Every record this lane started is written (or carried with the job) before it ends.
      const recordError = await previous;
      if (failed) throw failed.error;
      if (recordError) throw recordError;
    };
    // As many lanes as the batch needs to send within about a second at the endpoint's usual pace
    // (as many as the endpoint's cap allows while its pace is not known yet): one for a fast
    // endpoint, where a single job per delivery would have run them side by side.
    const typical = typicalMs.get(endpointId);
    const lanes = Math.max(
      1,
      Math.min(settings.endpointConcurrency, rest.length, typical === undefined ? Number.POSITIVE_INFINITY : Math.ceil((rest.length * typical) / LANE_WORK_MS)),
    );
    const ended = await Promise.allSettled(
      Array.from({ length: lanes }, (_, n) =>
        lane(n).catch((error: unknown) => {
          stop = true;
          throw error;
        }),
      ),
    );
    const failure = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
    if (failure) throw failure.reason;
    logger.debug({ ...jobIds(job), endpoint_id: endpointId, deliveries: ids.length, attempted, succeeded: succeededAll, left: rest.length }, 'batch delivered');
    // Another run has the job now: it sends the rest.
    if (lockLost) throw new DelayedError('lock lost: another run has the job');
    if (rest.length > 0) return delayJob(job, token, resumeAt ?? Date.now(), 'the rest of the batch waits its turn');
    return { attempted, succeeded: succeededAll };
  }

  return async function deliver(job: Job<DeliveryJob | DeliveryBatchJob>, token?: string) {
    try {
      const outcome = isBatch(job) ? await deliverBatch(job, token) : await attempt(job as Job<DeliveryJob>, token);
      deferrals.delete(job.id!);
      return outcome;
    } catch (error) {
      if (error instanceof DependencyUnavailable) return putBack(job, token, error);
      if (!(error instanceof DelayedError)) deferrals.delete(job.id!);
      throw error;
    }
  };
}
