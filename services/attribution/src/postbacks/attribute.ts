import type { ClickIdCodec } from '@trackway/clickid';
import { type PgClient, type PgPool, RetryTransaction, type Settled, inTransaction, writeIsolated } from '@trackway/db';
import {
  type ConversionState,
  Decimal,
  type EventEnvelope,
  type OfferTerms,
  type PostbackFacts,
  type PostbackOutcome,
  commissionStatusFor,
  conversionKey,
  planBatch,
} from '@trackway/domain';
import { insertEvents } from '@trackway/outbox';
import type { PostbackJob } from '@trackway/queues';
import { UnrecoverableError } from 'bullmq';
import * as sql from './statements';

export type { PostbackOutcome };

export interface AttributionResult {
  outcome: PostbackOutcome;
  /** Events committed with the outcome, to publish after commit. Empty on a replayed job. */
  events: EventEnvelope[];
  /** True when an earlier run of this postback had already committed the outcome. */
  replayed: boolean;
}

export type OfferLookup = (id: number) => Promise<OfferTerms | null>;

export interface AttributeDeps {
  pool: PgPool;
  clickIds: ClickIdCodec;
  offers: OfferLookup;
}

/**
 * Attributes a batch of postbacks in ONE transaction, with the same result as if each ran
 * alone, in order: outcome rows, conversions (unique on advertiser + order_id + event),
 * commissions, fraud flags and outbox events. Idempotent by postback id (a postback whose
 * outcome row exists returns that outcome, replayed) and by the unique index.
 */
export async function attributeBatch(deps: AttributeDeps, jobs: PostbackJob[]): Promise<AttributionResult[]> {
  const facts = jobs.map(toFacts);
  const clicks = new Map(facts.map((p) => [p.postbackId, deps.clickIds.verify(p.clickId)]));
  const offerIds = [...new Set([...clicks.values()].flatMap((c) => (c ? [c.offerId] : [])))];
  const offers = new Map(await Promise.all(offerIds.map(async (id) => [id, await deps.offers(id)] as const)));
  return inTransaction(deps.pool, (client) => attributeIn(client, facts, (p) => clicks.get(p.postbackId) ?? null, (id) => offers.get(id) ?? null));
}

async function attributeIn(
  client: PgClient,
  postbacks: PostbackFacts[],
  click: (p: PostbackFacts) => ReturnType<ClickIdCodec['verify']>,
  offer: (id: number) => OfferTerms | null,
): Promise<AttributionResult[]> {
  const now = new Date();
  // Postbacks already attributed (a job run again after a crash, or retried from Bull Board).
  const done = new Map((await sql.findOutcomes(client, [postbacks.map((p) => p.postbackId)])).map((r) => [r.id, r]));
  // Each postback once: a job handed in twice (a stalled job's second copy) adds nothing.
  const fresh = [...new Map(postbacks.filter((p) => !done.has(p.postbackId)).map((p) => [p.postbackId, p] as const)).values()];

  const keys = [...new Map(fresh.map((p) => [conversionKey(p), p])).values()];
  const locked = await sql.lockConversions(client, [keys.map((k) => k.advertiserId), keys.map((k) => k.orderId), keys.map((k) => k.event)]);
  const existing = new Map(locked.map((row) => [conversionKey({ advertiserId: row.advertiser_id, orderId: row.order_id, event: row.event }), toState(row)]));
  const plan = planBatch({ postbacks: fresh, click, offer: (c) => offer(c.offerId), existing, now });

  if (plan.newConversions.length > 0) {
    const c = plan.newConversions;
    const inserted = await sql.insertConversions(client, [
      c.map((r) => r.id),
      c.map((r) => r.advertiserId),
      c.map((r) => r.offerId),
      c.map((r) => r.affiliateId),
      c.map((r) => r.clickId),
      c.map((r) => r.orderId),
      c.map((r) => r.event),
      c.map((r) => r.status),
      c.map((r) => r.holdReason),
      c.map((r) => String(r.amount)),
      c.map((r) => r.currency),
      c.map((r) => String(r.payout)),
      c.map((r) => r.payoutCurrency),
      c.map((r) => r.clickedAt),
      c.map(() => now),
    ]);
    // Another batch created one of these orders after we looked: look again (it is then
    // locked, and this batch's postbacks for it are repeats of it).
    if (inserted.length < c.length) throw new RetryTransaction('a conversion of this batch was created concurrently');
  }

  const outcomes = plan.plans.map((p, i) => ({ postback: fresh[i], outcome: p.outcome }));
  if (outcomes.length > 0) {
    const inserted = await sql.insertOutcomes(client, [
      outcomes.map((o) => o.postback.postbackId),
      outcomes.map((o) => o.postback.advertiserId),
      outcomes.map((o) => o.outcome.status),
      outcomes.map((o) => o.outcome.reason),
      outcomes.map((o) => o.outcome.conversionId),
      outcomes.map((o) => JSON.stringify(paramsOf(o.postback))),
      outcomes.map((o) => o.postback.receivedAt),
      outcomes.map(() => now),
    ]);
    // Another run of one of these jobs committed first: look again, and its outcome stands.
    if (inserted.length < outcomes.length) throw new RetryTransaction('a postback of this batch was attributed concurrently');
  }

  const changed = plan.changedConversions;
  if (changed.length > 0) {
    await sql.updateConversionStatuses(client, [changed.map((c) => c.id), changed.map((c) => c.status), changed.map((c) => c.updatedAt)]);
    await sql.updateCommissionStatuses(client, [changed.map((c) => c.id), changed.map((c) => commissionStatusFor(c.status)), now]);
  }
  if (plan.newCommissions.length > 0) {
    const m = plan.newCommissions;
    await sql.insertCommissions(client, [m.map((r) => r.id), m.map((r) => r.conversionId), m.map((r) => r.affiliateId), m.map((r) => String(r.amount)), m.map((r) => r.currency), m.map((r) => r.status), m.map(() => now)]);
  }
  if (plan.reversed.length > 0) {
    const payouts = await sql.detachFromPendingPayouts(client, [plan.reversed, now]);
    if (payouts.length > 0) await sql.recomputePayouts(client, [payouts.map((p) => p.id), now]);
  }
  if (plan.fraudFlags.length > 0) {
    const f = plan.fraudFlags;
    await sql.insertFraudFlags(client, [f.map((r) => r.id), f.map((r) => r.postbackId), f.map((r) => r.conversionId), f.map((r) => r.rule), f.map((r) => JSON.stringify(r.details)), f.map((r) => r.createdAt)]);
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

/**
 * `attributeBatch` with a bad row kept from failing its neighbours (writeIsolated): only the
 * postback the database refuses fails, for good; an outage fails the batch, to be retried.
 */
export function attributeIsolated(deps: AttributeDeps, jobs: PostbackJob[]): Promise<Settled<AttributionResult>[]> {
  return writeIsolated(jobs, (list) => attributeBatch(deps, list), (job, error) => new UnrecoverableError(`postback ${job.postbackId} cannot be stored: ${error.message}`));
}

/** One postback, as a batch of one (tests, and the shape of a single job of earlier versions). */
export async function processPostback(deps: AttributeDeps, job: PostbackJob): Promise<AttributionResult> {
  const [result] = await attributeBatch(deps, [job]);
  return result;
}

function toFacts(job: PostbackJob): PostbackFacts {
  return { ...job, receivedAt: new Date(job.receivedAt) };
}

function toState(row: sql.ConversionRecord): ConversionState {
  return {
    id: row.id,
    advertiserId: row.advertiser_id,
    offerId: row.offer_id,
    affiliateId: row.affiliate_id,
    clickId: row.click_id,
    orderId: row.order_id,
    event: row.event,
    status: row.status,
    holdReason: row.hold_reason,
    amount: row.amount,
    currency: row.currency,
    payout: row.payout,
    payoutCurrency: row.payout_currency,
    clickedAt: row.clicked_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    fraudFlags: row.fraud_flags,
  };
}

/** What the advertiser sent, as the outcome row keeps it. */
function paramsOf(p: PostbackFacts) {
  return {
    click_id: p.clickId,
    order_id: p.orderId,
    amount: new Decimal(p.amount).toString(),
    currency: p.currency ?? null,
    status: p.status,
    event: p.event,
  };
}
