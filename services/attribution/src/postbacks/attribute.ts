import type { ClickIdCodec } from '@trackway/clickid';
import { type PgClient, type PgPool, RetryTransaction, type Settled, inTransaction, writeIsolated } from '@trackway/db';
import {
  type AffiliateStanding,
  CLICK_ROW_WAIT_MS,
  type ClickClaims,
  Decimal,
  type EventEnvelope,
  type OfferTerms,
  type PostbackFacts,
  type PostbackOutcome,
  conversionKey,
  normalizeEvent,
  planBatch,
  redactSecretShapes,
  sentOrderId,
  waitsForClickRow,
} from '@trackway/domain';
import { lockConversionsByKey, writeConversions } from '@trackway/ledger';
import { insertEvents } from '@trackway/outbox';
import type { PostbackJob } from '@trackway/queues';
import { UnrecoverableError } from 'bullmq';
import * as sql from './statements';

export type { PostbackOutcome };

export interface AttributionResult {
  /**
   * True when the postback was not decided: its click row (its sub IDs) may still land
   * (waitsForClickRow). Its job is put back and runs again shortly; nothing was written for it.
   */
  deferred?: true;
  outcome: PostbackOutcome;
  /** Events committed with the outcome, to publish after commit. Empty on a replayed job. */
  events: EventEnvelope[];
  /** True when an earlier run of this postback had already committed the outcome. */
  replayed: boolean;
}

/** What a look at the clicks queue saw: when its oldest job was queued (Unix ms; null: none is), and when the look was taken. */
export interface ClickQueueLook {
  oldest: number | null;
  seenAt: number;
}

export type OfferLookup = (id: number) => Promise<OfferTerms | null>;
export type AffiliateLookup = (id: number) => Promise<AffiliateStanding>;

export interface AttributeDeps {
  pool: PgPool;
  clickIds: ClickIdCodec;
  offers: OfferLookup;
  affiliates: AffiliateLookup;
  /** A look at the clicks queue (clickQueueLook); absent: never waits for a click row. */
  clickQueue?: () => Promise<ClickQueueLook>;
  /** CLICK_ROW_WAIT_MS, unless a test says otherwise. */
  clickRowWaitMs?: number;
  /**
   * Postbacks this process put back to wait for their click row, by conversion key (postback id →
   * until when): a later postback of the same order waits behind them (decided in queue order).
   */
  waiting?: Map<string, Map<string, number>>;
  /** false only for the benchmark's baseline: report rows are not moved. */
  reportUpkeep?: boolean;
}

/**
 * Attributes a batch of postbacks in ONE transaction, with the same result as if each ran
 * alone, in order: outcome rows, conversions (unique on advertiser + order_id + event),
 * commissions, fraud flags and outbox events. Idempotent by postback id (a postback whose
 * outcome row exists returns that outcome, replayed) and by the unique index.
 */
export async function attributeBatch(deps: AttributeDeps, jobs: PostbackJob[], after?: Promise<void>): Promise<AttributionResult[]> {
  const all = jobs.map(toFacts);
  const verified = new Map(all.map((p) => [p.postbackId, deps.clickIds.verify(p.clickId)]));
  const claims = [...verified.values()].filter((c) => c !== null);
  const load = async <T>(ids: number[], lookup: (id: number) => Promise<T>) =>
    new Map(await Promise.all([...new Set(ids)].map(async (id) => [id, await lookup(id)] as const)));
  // The click rows (sub IDs) are read beside the offers and affiliates, not after them.
  const [{ clicks, deferred }, offers, affiliates] = await Promise.all([
    withSubs(deps, all, verified),
    load(
      claims.map((c) => c.offerId),
      deps.offers,
    ),
    load(
      claims.map((c) => c.affiliateId),
      deps.affiliates,
    ),
  ]);
  const facts = all.filter((p) => !deferred.has(p.postbackId));
  const decided = await inTransaction(deps.pool, (client) =>
    attributeIn(
      client,
      facts,
      {
        click: (p) => clicks.get(p.postbackId) ?? null,
        offer: (c) => offers.get(c.offerId) ?? null,
        affiliate: (c) => affiliates.get(c.affiliateId) ?? null,
      },
      after,
      deps.reportUpkeep ?? true,
    ),
  );
  // Results by position: a postback id in the batch twice gets its events on its first copy only.
  let next = 0;
  return all.map((p) =>
    deferred.has(p.postbackId)
      ? { deferred: true, outcome: { status: 'accepted', reason: null, conversionId: null }, events: [], replayed: false }
      : decided[next++],
  );
}

/**
 * The batch's verified clicks with the sub IDs of their rows, and the postbacks put back to wait
 * for a row that may still land (waitsForClickRow), with every later postback of the same order
 * while an earlier one (a smaller postback id: ingest's ids follow arrival) of this process
 * waits: an order's postbacks are decided in queue order.
 */
async function withSubs(deps: AttributeDeps, postbacks: Array<PostbackFacts & { clickWaitSince?: Date }>, verified: Map<string, ClickClaims | null>) {
  const clickedAt = new Map(postbacks.filter((p) => verified.get(p.postbackId)).map((p) => [p.clickId, verified.get(p.postbackId)!.clickedAt]));
  const ids = [...clickedAt.keys()];
  const findSubs = (list: string[]) => sql.findClickSubs(deps.pool, [list, list.map((id) => clickedAt.get(id)!)]);
  const readAt = Date.now();
  const rows = new Map(ids.length === 0 ? [] : (await findSubs(ids)).map(({ id, ...subs }) => [id, subs]));
  const unwritten = ids.filter((id) => !rows.has(id));
  let oldestQueued: number | null = null;
  if (unwritten.length > 0 && deps.clickQueue) {
    const look = await deps.clickQueue().catch(() => ({ oldest: Date.now(), seenAt: Date.now() }));
    oldestQueued = look.oldest;
    // A click job completes only after its rows commit: a row missing from a read made after the
    // look was written by no job the look missed. A look taken after the read reads the rows again.
    if (look.seenAt > readAt) for (const { id, ...subs } of await findSubs(unwritten)) rows.set(id, subs);
  }
  const clicks = new Map<string, ClickClaims | null>();
  const deferred = new Set<string>();
  const now = new Date();
  const limitMs = deps.clickRowWaitMs ?? CLICK_ROW_WAIT_MS;
  const waiting = deps.waiting ?? new Map<string, Map<string, number>>();
  for (const [key, list] of waiting) {
    for (const [id, until] of list) if (until <= now.getTime()) list.delete(id);
    if (list.size === 0) waiting.delete(key);
  }
  for (const p of postbacks) {
    const claims = verified.get(p.postbackId) ?? null;
    const subs = rows.get(p.clickId);
    clicks.set(p.postbackId, claims && { ...claims, subs });
    if (!claims) continue;
    const key = conversionKey(p);
    const behind = [...(waiting.get(key)?.keys() ?? [])].some((id) => id < p.postbackId);
    const waits =
      behind ||
      (!subs &&
        deps.clickQueue !== undefined &&
        waitsForClickRow({ receivedAt: p.receivedAt, oldestClickQueuedAt: oldestQueued, waitingSince: p.clickWaitSince ?? now, now, limitMs }));
    const list = waiting.get(key) ?? new Map<string, number>();
    if (waits) {
      deferred.add(p.postbackId);
      waiting.set(key, list.set(p.postbackId, now.getTime() + limitMs + 5_000));
    } else if (list.delete(p.postbackId) && list.size === 0) waiting.delete(key);
  }
  return { clicks, deferred };
}

interface Loaded {
  click(p: PostbackFacts): ClickClaims | null;
  offer(c: ClickClaims): OfferTerms | null;
  affiliate(c: ClickClaims): AffiliateStanding;
}

async function attributeIn(
  client: PgClient,
  postbacks: PostbackFacts[],
  loaded: Loaded,
  after: Promise<void> | undefined,
  reportUpkeep: boolean,
): Promise<AttributionResult[]> {
  const now = new Date();
  // Postbacks already attributed (a job run again after a crash, or retried from Bull Board).
  const done = new Map((await sql.findOutcomes(client, [postbacks.map((p) => p.postbackId)])).map((r) => [r.id, r]));
  // Each postback once: a job handed in twice (a stalled job's second copy) adds nothing.
  const fresh = [...new Map(postbacks.filter((p) => !done.has(p.postbackId)).map((p) => [p.postbackId, p] as const)).values()];

  const keys = [...new Map(fresh.map((p) => [conversionKey(p), p])).values()];
  // The batch before this one (of this process) has committed: its orders are decided.
  await after;
  const locked = await lockConversionsByKey(client, keys);
  const existing = new Map(locked.map((row) => [conversionKey(row), row]));
  const plan = planBatch({ postbacks: fresh, ...loaded, existing, now });
  // Another batch created one of these orders after we looked, or a payout took one of the
  // commissions: the writer throws RetryTransaction and we look again (then locked).
  await writeConversions(client, reportUpkeep ? plan : { ...plan, reportMoves: [] }, now);

  if (fresh.length > 0) {
    const rows = plan.plans.map(({ outcome }, i) => {
      const p = fresh[i];
      return {
        id: p.postbackId,
        advertiser_id: p.advertiserId,
        status: outcome.status,
        reason: outcome.reason,
        conversion_id: outcome.conversionId,
        params: paramsOf(p),
        ignored_params: p.ignoredParams ?? null,
        received_at: p.receivedAt,
        processed_at: now,
      };
    });
    const inserted = await sql.insertOutcomes(client, [JSON.stringify(rows)]);
    // Another run of one of these jobs committed first: look again, and its outcome stands.
    if (inserted.length < rows.length) throw new RetryTransaction('a postback of this batch was attributed concurrently');
  }

  await insertEvents(client, plan.events);

  const planned = new Map(plan.plans.map((p, i) => [fresh[i].postbackId, p]));
  const handed = new Set<string>();
  return postbacks.map((p) => {
    const own = planned.get(p.postbackId);
    // The first occurrence of a postback id in the batch carries its events; a second is a replay.
    if (own && !handed.has(p.postbackId)) {
      handed.add(p.postbackId);
      return { outcome: own.outcome, events: own.events, replayed: false };
    }
    const row = done.get(p.postbackId);
    const outcome = row ? { status: row.status, reason: row.reason, conversionId: row.conversion_id } : { ...own!.outcome };
    return { outcome, events: [], replayed: true };
  });
}

/** A place in line: batches of one process take their locks in the order they were formed. */
export interface Turn {
  ready: Promise<void>;
  release: () => void;
}

/** Hands out turns in order; a turn is ready once the one before it was released. */
export function turns(): () => Turn {
  let last = Promise.resolve();
  return () => {
    const ready = last;
    let release!: () => void;
    last = new Promise<void>((resolve) => (release = resolve));
    return { ready, release };
  };
}

/**
 * `attributeBatch` with a bad row kept from failing its neighbours (writeIsolated): only the
 * postback the database refuses fails, for good; an outage fails the batch, to be retried.
 * With a turn, the batch reads and decides only once the batch before it has committed (or
 * failed for good), however its transaction went (a retry after a deadlock or a lost race
 * included): two batches in flight overlap everything but their decisions, which stay in the
 * order the batches were formed, as if each postback ran alone, in queue order.
 */
export async function attributeIsolated(deps: AttributeDeps, jobs: PostbackJob[], turn?: Turn): Promise<Settled<AttributionResult>[]> {
  try {
    return await writeIsolated(
      jobs,
      (list) => attributeBatch(deps, list, turn?.ready),
      (job, error) => new UnrecoverableError(`postback ${job.postbackId} cannot be stored: ${error.message}`),
    );
  } finally {
    turn?.release();
  }
}

/**
 * A job as the planner reads it. One from an earlier version (no `v`) may hold an event in
 * another case, an amount of 0 that ingest filled in for none (so 0 there changes no amount), and
 * secrets among its unread parameters (redacted by their shape).
 */
function toFacts(job: PostbackJob): PostbackFacts & { clickWaitSince?: Date } {
  const earlier = job.v === undefined;
  const { v: _version, ...fields } = job;
  return {
    ...fields,
    ...(earlier && job.amount !== undefined && new Decimal(job.amount).isZero() ? { amount: undefined } : {}),
    ...(earlier && job.ignoredParams ? { ignoredParams: redactSecretShapes(job.ignoredParams) } : {}),
    event: normalizeEvent(job.event),
    receivedAt: new Date(job.receivedAt),
    clickWaitSince: job.clickWaitSince === undefined ? undefined : new Date(job.clickWaitSince),
  };
}

/** What the advertiser sent, as the outcome row keeps it: no amount is null, the event as it was sent. */
function paramsOf(p: PostbackFacts & Pick<PostbackJob, 'eventAsSent'>) {
  return {
    click_id: p.clickId,
    order_id: sentOrderId(p.orderId),
    amount: p.amount === undefined ? null : new Decimal(p.amount).toString(),
    currency: p.currency ?? null,
    status: p.status,
    event: p.eventAsSent ?? p.event,
  };
}
