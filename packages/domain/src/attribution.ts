import type Decimal from 'decimal.js';
import { type EventEnvelope, createEvent } from './events';
import { type RuleHit, evaluateFraud } from './fraud';
import { newId } from './ids';
import { computePayout } from './payout';
import { type CommissionRow, type ConversionRow, type FraudFlagRow, commissionJson, conversionJson, fraudFlagJson } from './representations';
import { type ConversionStatus, commissionStatusFor, decideRepeat } from './status';

// What a postback causes, decided without I/O: the attribution worker loads the click's offer
// and the existing conversions of a batch, calls planBatch, and writes what it returns.

/** A postback as ingest accepted it. */
export interface PostbackFacts {
  postbackId: string;
  advertiserId: number;
  /** When Trackway received it: the attribution window and CTIT are measured here, not at processing. */
  receivedAt: Date;
  clickId: string;
  orderId: string;
  event: string;
  amount: string;
  currency?: string;
  status: ConversionStatus;
  /** Parameters Trackway does not read, as sent: kept on the outcome row. */
  ignoredParams?: Record<string, unknown>;
}

/** The claims of a click ID whose signature verified. */
export interface ClickClaims {
  offerId: number;
  affiliateId: number;
  clickedAt: Date;
}

export interface OfferTerms {
  id: number;
  advertiserId: number;
  currency: string;
  payoutType: 'fixed' | 'percent';
  payoutAmount: Decimal.Value | null;
  payoutPercent: Decimal.Value | null;
  attributionWindowDays: number;
  minCtitSeconds: number;
  amountCap: Decimal.Value | null;
}

/** A conversion as it stands, with the rules of its fraud flags (shown in its JSON). */
export interface ConversionState extends ConversionRow {
  fraudFlags: string[];
}

export interface PostbackOutcome {
  status: 'accepted' | 'duplicate' | 'rejected';
  reason: string | null;
  conversionId: string | null;
  /** Set when the conversion entered a status (created or changed): for metrics. */
  conversionStatus?: ConversionStatus;
}

export interface ConversionPlan {
  outcome: PostbackOutcome;
  /** Events to write with the outcome, in the order they happened. */
  events: EventEnvelope[];
  fraudFlags: FraudFlagRow[];
  /** A new conversion (and its commission, when it earns one). */
  created?: { conversion: ConversionState; commission: CommissionRow | null };
  /** A status change of an existing conversion. */
  transition?: { conversionId: string; from: ConversionStatus; to: ConversionStatus };
  /** The conversion of this postback's (advertiser, order_id, event) after it, or null if there is none. */
  after: ConversionState | null;
}

export interface PlanInput {
  postback: PostbackFacts;
  /** The verified click, or null when its signature did not verify. */
  click: ClickClaims | null;
  /** The click's offer, or null when it does not exist. */
  offer: OfferTerms | null;
  /** The conversion this postback's (advertiser, order_id, event) already has, if any. */
  existing: ConversionState | null;
  now: Date;
}

/**
 * What one postback causes. A new order creates a conversion judged by the creation rules
 * (unknown click, window, CTIT, cap); a repeat of an existing one is a duplicate, a status
 * change or an invalid transition (decideRepeat), whatever the creation rules would say now —
 * except an unknown click, which is never attributed to anything.
 */
export function planConversion({ postback, click, offer, existing, now }: PlanInput): ConversionPlan {
  const verdict = evaluateFraud({ click, offer, advertiserId: postback.advertiserId, receivedAt: postback.receivedAt, amount: postback.amount });
  // A status update (a late approval, a refund) for an order converted inside the window still
  // counts after the window has closed: only a new conversion is refused as click_expired.
  if (existing && (!verdict.rejection || verdict.rejection.rule === 'click_expired')) return planRepeat(postback, existing, now);
  if (verdict.rejection || !click || !offer) {
    const fraudFlags = flagRows(verdict.hits, postback.postbackId, null, now);
    return {
      outcome: { status: 'rejected', reason: verdict.rejection?.rule ?? 'unknown_click', conversionId: null },
      events: flagEvents(fraudFlags, now),
      fraudFlags,
      after: existing,
    };
  }

  const currency = postback.currency ?? offer.currency;
  const payout = computePayout(
    offer.payoutType === 'fixed'
      ? { type: 'fixed', amount: offer.payoutAmount ?? 0, currency: offer.currency }
      : { type: 'percent', percent: offer.payoutPercent ?? 0 },
    postback.amount,
    currency,
  );
  const held = verdict.hold !== null && postback.status !== 'rejected';
  const status: ConversionStatus = held ? 'pending' : postback.status;
  const conversionId = newId('conversion');
  const fraudFlags = flagRows(verdict.hits, postback.postbackId, conversionId, now);
  const conversion: ConversionState = {
    id: conversionId,
    advertiserId: postback.advertiserId,
    offerId: offer.id,
    affiliateId: click.affiliateId,
    clickId: postback.clickId,
    orderId: postback.orderId,
    event: postback.event,
    status,
    holdReason: held ? verdict.hold!.rule : null,
    amount: postback.amount,
    currency,
    payout: payout.amount.toString(),
    payoutCurrency: payout.currency,
    clickedAt: click.clickedAt,
    createdAt: now,
    updatedAt: now,
    fraudFlags: fraudFlags.map((f) => f.rule),
  };
  const json = conversionJson(conversion, conversion.fraudFlags);
  const events: EventEnvelope[] = [createEvent('conversion.created', { conversion: json }, now), ...flagEvents(fraudFlags, now)];
  if (status !== 'pending') events.push(createEvent(`conversion.${status}`, { conversion: json, previous_status: null }, now));
  let commission: CommissionRow | null = null;
  if (payout.amount.gt(0) && status !== 'rejected') {
    commission = {
      id: newId('commission'),
      conversionId,
      affiliateId: click.affiliateId,
      amount: payout.amount.toString(),
      currency: payout.currency,
      status: commissionStatusFor(status),
      createdAt: now,
    };
    events.push(createEvent('commission.created', { commission: commissionJson(commission) }, now));
  }
  return {
    outcome: { status: 'accepted', reason: null, conversionId, conversionStatus: status },
    events,
    fraudFlags,
    created: { conversion, commission },
    after: conversion,
  };
}

function planRepeat(postback: PostbackFacts, current: ConversionState, now: Date): ConversionPlan {
  const decision = decideRepeat(current.status as ConversionStatus, postback.status, current.holdReason);
  const unchanged = { events: [], fraudFlags: [], after: current };
  if (decision.kind === 'duplicate') return { outcome: { status: 'duplicate', reason: null, conversionId: current.id }, ...unchanged };
  if (decision.kind === 'invalid_transition') return { outcome: { status: 'rejected', reason: 'invalid_transition', conversionId: current.id }, ...unchanged };
  // decideRepeat only moves a conversion forward: to approved or rejected, never back to pending.
  const to = decision.to as 'approved' | 'rejected';
  const after: ConversionState = { ...current, status: to, updatedAt: now };
  return {
    outcome: { status: 'accepted', reason: null, conversionId: current.id, conversionStatus: to },
    events: [createEvent(`conversion.${to}`, { conversion: conversionJson(after, after.fraudFlags), previous_status: decision.from }, now)],
    fraudFlags: [],
    transition: { conversionId: current.id, from: decision.from, to },
    after,
  };
}

function flagRows(hits: RuleHit[], postbackId: string, conversionId: string | null, now: Date): FraudFlagRow[] {
  return hits.map((hit) => ({ id: newId('fraudFlag'), postbackId, conversionId, rule: hit.rule, details: hit.details, createdAt: now }));
}

const flagEvents = (rows: FraudFlagRow[], now: Date) => rows.map((row) => createEvent('fraud.flagged', { fraud_flag: fraudFlagJson(row) }, now));

/** The dedupe key of a conversion: (advertiser, order_id, event). */
export const conversionKey = (p: { advertiserId: number; orderId: string; event: string }) => `${p.advertiserId}\u0000${p.orderId}\u0000${p.event}`;

export interface BatchInput {
  /** In queue order: postbacks of one order are decided in the order they were queued. */
  postbacks: PostbackFacts[];
  click(postback: PostbackFacts): ClickClaims | null;
  offer(click: ClickClaims): OfferTerms | null;
  /** The existing conversions of the batch's keys (conversionKey), as loaded (and locked). */
  existing: ReadonlyMap<string, ConversionState>;
  now: Date;
}

/** Everything a batch writes, folded so that each row is written once, in its final state. */
export interface BatchPlan {
  /** One plan per postback, in input order. */
  plans: ConversionPlan[];
  /** New conversions in their state at the end of the batch, sorted by key. */
  newConversions: ConversionState[];
  /** New commissions, their status following their conversion's final status. */
  newCommissions: CommissionRow[];
  /** Existing conversions whose status changed: their final status, sorted by id. */
  changedConversions: Array<{ id: string; status: ConversionStatus; updatedAt: Date }>;
  /** Existing conversions reversed to rejected: their commission leaves a payout not yet sent. */
  reversed: string[];
  fraudFlags: FraudFlagRow[];
  events: EventEnvelope[];
}

/**
 * Plans a batch as if each postback ran alone, in order: a postback sees what the ones before
 * it in the batch did to its order (a creation, then an approval, then a reversal).
 */
export function planBatch({ postbacks, click, offer, existing, now }: BatchInput): BatchPlan {
  const state = new Map<string, ConversionState | null>();
  const createdHere = new Map<string, { conversion: ConversionState; commission: CommissionRow | null }>();
  const plans = postbacks.map((postback) => {
    const key = conversionKey(postback);
    const claims = click(postback);
    const plan = planConversion({
      postback,
      click: claims,
      offer: claims ? offer(claims) : null,
      existing: state.has(key) ? state.get(key)! : (existing.get(key) ?? null),
      now,
    });
    state.set(key, plan.after);
    if (plan.created) createdHere.set(key, plan.created);
    return plan;
  });

  const newConversions: ConversionState[] = [];
  const newCommissions: CommissionRow[] = [];
  const createdIds = new Set<string>();
  for (const [key, { conversion, commission }] of [...createdHere].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const final = state.get(key)!;
    createdIds.add(conversion.id);
    newConversions.push(final);
    if (commission) newCommissions.push({ ...commission, status: commissionStatusFor(final.status as ConversionStatus) });
  }
  // Changes to conversions created in this batch are already in their inserted state.
  const changed = new Map<string, { id: string; status: ConversionStatus; updatedAt: Date }>();
  const reversed = new Set<string>();
  for (const { transition: t } of plans) {
    if (!t || createdIds.has(t.conversionId)) continue;
    changed.set(t.conversionId, { id: t.conversionId, status: t.to, updatedAt: now });
    if (t.to === 'rejected') reversed.add(t.conversionId);
  }
  return {
    plans,
    newConversions,
    newCommissions,
    changedConversions: [...changed.values()].sort((a, b) => (a.id < b.id ? -1 : 1)),
    reversed: [...reversed].sort(),
    fraudFlags: plans.flatMap((p) => p.fraudFlags),
    events: plans.flatMap((p) => p.events),
  };
}
