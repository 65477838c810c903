import Decimal from 'decimal.js';
import { type EventEnvelope, createEvent } from './events';
import { type ReportDelta, type ReportMove, reportDelta, reportMoves } from './reports';
import { type RuleHit, amountOverCap, evaluateFraud, standingHolds } from './fraud';
import { newId } from './ids';
import { formatMoney } from './money';
import { computePayout } from './payout';
import { type CommissionRow, type ConversionRow, type FraudFlagRow, commissionJson, conversionJson, fraudFlagJson } from './representations';
import { type ConversionStatus, type EntityStatus, type PayoutType, type PostbackStatus, canTransition, commissionStatusFor, decideRepeat } from './status';

// What a postback (or a person's review) does to a conversion, decided without I/O: the
// attribution worker and the api load the conversions concerned, call these, and write what
// they return (packages/ledger's writer, the same for both).

/** A postback as ingest accepted it. */
export interface PostbackFacts {
  postbackId: string;
  advertiserId: number;
  /** When Trackway received it: the attribution window and CTIT are measured here, not at processing. */
  receivedAt: Date;
  clickId: string;
  orderId: string;
  /** In its one normalized form (normalizeEvent): part of the dedupe key. */
  event: string;
  /** Absent when the postback carried none: it then changes no amount (a new conversion records 0). */
  amount?: string;
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
  /** The click row's sub IDs, when it was read (a conversion carries them); absent: none known. */
  subs?: ClickSubs;
}

/** A click's sub IDs: what /click takes, the click row and its conversion keep, the API filters on. */
export const SUB_NAMES = ['sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
export type SubName = (typeof SUB_NAMES)[number];
export type ClickSubs = Record<SubName, string | null>;

export interface OfferTerms {
  id: number;
  advertiserId: number;
  currency: string;
  payoutType: PayoutType;
  payoutAmount: Decimal.Value | null;
  payoutPercent: Decimal.Value | null;
  /** What the advertiser pays the network: priced like the payout; null: not recorded. */
  revenueType?: PayoutType | null;
  revenueAmount?: Decimal.Value | null;
  revenuePercent?: Decimal.Value | null;
  attributionWindowDays: number;
  minCtitSeconds: number;
  amountCap: Decimal.Value | null;
  status: EntityStatus;
}

/** How long a postback waits for its click row (the click's sub IDs) at most, from when it was first put back for it. */
export const CLICK_ROW_WAIT_MS = 30_000;
/** A click queued this long after a postback was received may still be its click (ingest queues a click after redirecting; clocks of ingest processes differ). */
export const CLICK_QUEUE_SLACK_MS = 2_000;

/**
 * Whether a postback whose click row is not written yet is put back to wait for it (so that its
 * conversion, its events and its partner postbacks carry the click's sub IDs): only while the row
 * may still land — a click queued before the postback was received is still in the clicks queue
 * (after an outage, however long ago the postback came) — and for at most `limitMs` (30 s) since
 * it was first put back. A click row that never arrives (lost with Redis, or a click id made
 * without a click) holds nothing up: no older click is queued.
 */
export function waitsForClickRow(input: {
  receivedAt: Date;
  /** When the oldest click job still queued was queued (Unix ms), or null when none is. */
  oldestClickQueuedAt: number | null;
  /** When this postback was first put back for its click row (now, the first time). */
  waitingSince: Date;
  now: Date;
  limitMs?: number;
}): boolean {
  if (input.oldestClickQueuedAt === null || input.oldestClickQueuedAt > input.receivedAt.getTime() + CLICK_QUEUE_SLACK_MS) return false;
  return input.now.getTime() - input.waitingSince.getTime() < (input.limitMs ?? CLICK_ROW_WAIT_MS);
}

/** The click's affiliate as it stands now (null: no such affiliate). */
export type AffiliateStanding = { status: EntityStatus } | null;

/** A commission as it stands, with what locks its amount: a payout already sent. */
export interface CommissionState extends CommissionRow {
  payoutId: string | null;
  payoutSent: boolean;
}

/** A conversion as it stands, with its commission (if it earned one). */
export interface ConversionState extends ConversionRow {
  commission: CommissionState | null;
}

export interface PostbackOutcome {
  status: PostbackStatus;
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
  /** The conversion of this postback's (advertiser, order_id, event) after it, or null if there is none. */
  after: ConversionState | null;
}

export interface PlanInput {
  postback: PostbackFacts;
  /** The verified click, or null when its signature did not verify. */
  click: ClickClaims | null;
  /** The click's offer, or null when it does not exist. */
  offer: OfferTerms | null;
  /** The click's affiliate. */
  affiliate: AffiliateStanding;
  /** The conversion this postback's (advertiser, order_id, event) already has, if any. */
  existing: ConversionState | null;
  now: Date;
}

/**
 * What one postback causes. A new order creates a conversion judged by the creation rules
 * (unknown click, window, standing, CTIT, cap); a repeat of an existing one changes its status
 * and amount (planRepeat), whatever the creation rules would say now — except an unknown
 * click, which is never attributed to anything.
 */
export function planConversion({ postback, click, offer, affiliate, existing, now }: PlanInput): ConversionPlan {
  const amount = postback.amount ?? '0';
  const verdict = evaluateFraud({ click, offer, affiliate, advertiserId: postback.advertiserId, receivedAt: postback.receivedAt, amount });
  // A status update (a late approval, a refund) for an order converted inside the window still
  // counts after the window has closed: only a new conversion is refused as click_expired.
  if (existing && click && offer && (!verdict.rejection || verdict.rejection.rule === 'click_expired')) {
    return planRepeat(postback, existing, { click, offer, affiliate }, now);
  }
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
  const payout = priced(offer.payoutType, offer.payoutAmount, offer.payoutPercent, offer.currency, amount, currency);
  const revenue = offer.revenueType ? priced(offer.revenueType, offer.revenueAmount, offer.revenuePercent, offer.currency, amount, currency) : null;
  const held = verdict.hold !== null && postback.status !== 'rejected';
  const status: ConversionStatus = held ? 'pending' : postback.status;
  const conversionId = newId('conversion');
  const fraudFlags = flagRows(verdict.hits, postback.postbackId, conversionId, now);
  const commission = earnsCommission(payout.amount, status)
    ? newCommission({ id: conversionId, affiliateId: click.affiliateId, payoutCurrency: payout.currency }, payout.amount, status, now)
    : null;
  const conversion: ConversionState = {
    id: conversionId,
    advertiserId: postback.advertiserId,
    offerId: offer.id,
    affiliateId: click.affiliateId,
    clickId: postback.clickId,
    orderId: postback.orderId,
    event: postback.event,
    status,
    holdReason: held ? holdReasonOf(verdict.hold!) : null,
    amount,
    currency,
    payout: payout.amount.toString(),
    payoutCurrency: payout.currency,
    revenue: revenue?.amount.toString() ?? null,
    revenueCurrency: revenue?.currency ?? null,
    ...(click.subs ?? NO_SUBS),
    clickedAt: click.clickedAt,
    createdAt: now,
    updatedAt: now,
    fraudFlags: fraudFlags.map((f) => f.rule),
    commission,
  };
  const json = conversionJson(conversion);
  const events: EventEnvelope[] = [createEvent('conversion.created', { conversion: json }, now), ...flagEvents(fraudFlags, now)];
  if (status !== 'pending') events.push(createEvent(`conversion.${status}`, { conversion: json, previous_status: null }, now));
  if (commission) events.push(createEvent('commission.created', { commission: commissionJson(commission) }, now));
  return { outcome: { status: 'accepted', reason: null, conversionId, conversionStatus: status }, events, fraudFlags, after: conversion };
}

/**
 * A later postback for an existing conversion: its status moves (decideRepeat) and its amount,
 * when it carries one and does not reject, is applied — the payout repriced with the offer's
 * current percent, the commission created or adjusted. An amount in another currency, an invalid
 * transition, or a commission already in a sent payout whose amount would move refuse the whole
 * postback, with the reason; nothing changed is a duplicate. An approval while the affiliate or
 * the offer is inactive holds the conversion for review instead.
 */
function planRepeat(
  postback: PostbackFacts,
  current: ConversionState,
  standing: { click: ClickClaims; offer: OfferTerms; affiliate: AffiliateStanding },
  now: Date,
): ConversionPlan {
  const unchanged = (status: PostbackStatus, reason: string | null): ConversionPlan => ({
    outcome: { status, reason, conversionId: current.id },
    events: [],
    fraudFlags: [],
    after: current,
  });
  const decision = decideRepeat(current.status, postback.status, current.holdReason);
  if (decision.kind === 'invalid_transition') return unchanged('rejected', 'invalid_transition');
  const wanted = decision.kind === 'transition' ? decision.to : current.status;
  // A rejection (a refund, a chargeback, often carrying 0 or the refunded sum) applies its status
  // only: the conversion earns nothing either way, and its amount stays as recorded.
  const amount = wanted === 'rejected' ? undefined : postback.amount;
  if (amount !== undefined && postback.currency !== undefined && postback.currency !== current.currency) return unchanged('rejected', 'currency_mismatch');
  const holds = wanted === 'approved' && current.status === 'pending' ? standingHolds(standing.click, standing.affiliate, standing.offer) : [];
  // A new amount above the offer's cap is flagged, as at creation (once: not again while it stays above).
  const capHit =
    amount !== undefined && !new Decimal(amount).eq(current.amount.toString()) && !amountOverCap(standing.offer.amountCap, current.amount.toString())
      ? amountOverCap(standing.offer.amountCap, amount)
      : null;
  const fraudFlags = flagRows([...holds, ...(capHit ? [capHit] : [])], postback.postbackId, current.id, now);
  const change = changeConversion(
    current,
    {
      status: holds.length > 0 ? 'pending' : wanted,
      holdReason: holds.length > 0 ? holdReasonOf(holds[0]) : current.holdReason,
      amount: amount === undefined ? undefined : { value: amount, offer: standing.offer },
      flags: fraudFlags.map((f) => f.rule),
    },
    now,
  );
  if (change.refused) return unchanged('rejected', change.refused);
  if (!change.changed) return unchanged('duplicate', null);
  const { after } = change;
  return {
    outcome: {
      status: 'accepted',
      reason: null,
      conversionId: current.id,
      ...(after.status !== current.status ? { conversionStatus: after.status } : {}),
    },
    events: [...change.events, ...flagEvents(fraudFlags, now)],
    fraudFlags,
    after,
  };
}

/** What a conversion should become: its status and hold, and a new amount priced with its offer's payout rule. */
export interface ConversionTarget {
  status: ConversionStatus;
  holdReason: string | null;
  /** Absent: the amount stays. */
  amount?: { value: string; offer: Pick<OfferTerms, 'payoutType' | 'payoutPercent' | 'revenueType' | 'revenuePercent'> };
  /** Rules of fraud flags raised by this change. */
  flags?: string[];
}

export type ConversionChange =
  | { refused: 'amount_locked'; changed?: undefined }
  | { refused?: undefined; changed: boolean; after: ConversionState; events: EventEnvelope[] };

/**
 * The one rule for changing an existing conversion, for postbacks and for a person's review
 * alike: its status, hold and amount move together with its payout (repriced for a percent
 * offer, kept for a fixed one) and its commission (its status following the conversion's, its
 * amount the payout's; created when a payout above zero first appears on a conversion that is
 * not rejected). A commission in a sent payout cannot change its amount: the change is refused.
 * Events: conversion.updated (amount), conversion.<status> (status), commission.created or
 * commission.updated, in that order.
 */
export function changeConversion(current: ConversionState, target: ConversionTarget, now: Date): ConversionChange {
  const amount = target.amount === undefined ? null : new Decimal(target.amount.value);
  const amountChanged = amount !== null && !amount.eq(current.amount.toString());
  const offer = target.amount?.offer;
  const payout = amountChanged
    ? repriced(current, amount!, { value: current.payout, currency: current.payoutCurrency }, offer!.payoutType, offer!.payoutPercent)
    : new Decimal(current.payout.toString());
  const revenue =
    amountChanged && current.revenue != null
      ? repriced(current, amount!, { value: current.revenue, currency: current.revenueCurrency }, offer!.revenueType, offer!.revenuePercent)
      : (current.revenue ?? null);
  const status = target.status;
  const statusChanged = status !== current.status;
  if (statusChanged && !canTransition(current.status, status)) throw new RangeError(`a ${current.status} conversion cannot become ${status}`);

  const previous = current.commission;
  let commission = previous;
  let commissionEvent: 'created' | 'updated' | null = null;
  if (previous) {
    const moves = !payout.eq(previous.amount.toString());
    if (moves && previous.payoutSent) return { refused: 'amount_locked' };
    const commissionStatus = commissionStatusFor(status);
    if (moves || previous.status !== commissionStatus) commission = { ...previous, amount: payout.toString(), status: commissionStatus };
    if (moves) commissionEvent = 'updated';
  } else if (earnsCommission(payout, status)) {
    commission = newCommission(current, payout, status, now);
    commissionEvent = 'created';
  }

  const flags = target.flags ?? [];
  if (!amountChanged && !statusChanged && target.holdReason === current.holdReason && flags.length === 0) {
    return { changed: false, after: current, events: [] };
  }
  const after: ConversionState = {
    ...current,
    status,
    holdReason: target.holdReason,
    ...(amountChanged ? { amount: amount!.toString(), payout: payout.toString(), revenue: revenue == null ? null : revenue.toString() } : {}),
    fraudFlags: [...current.fraudFlags, ...flags],
    updatedAt: now,
    commission,
  };
  const json = conversionJson(after);
  const events: EventEnvelope[] = [];
  if (amountChanged) {
    events.push(
      createEvent(
        'conversion.updated',
        {
          conversion: json,
          previous_amount: formatMoney(current.amount),
          previous_payout: formatMoney(current.payout),
          previous_revenue: current.revenue == null ? null : formatMoney(current.revenue),
        },
        now,
      ),
    );
  }
  // Statuses only move forward (canTransition): a change is to approved or rejected.
  if (statusChanged) events.push(createEvent(`conversion.${status as 'approved' | 'rejected'}`, { conversion: json, previous_status: current.status }, now));
  if (commissionEvent === 'created') events.push(createEvent('commission.created', { commission: commissionJson(commission!) }, now));
  if (commissionEvent === 'updated') {
    events.push(createEvent('commission.updated', { commission: commissionJson(commission!), previous_amount: formatMoney(previous!.amount) }, now));
  }
  return { changed: true, after, events };
}

const NO_SUBS: ClickSubs = { sub1: null, sub2: null, sub3: null, sub4: null, sub5: null };

/**
 * A price by an offer's rule (its payout, or its revenue): a fixed amount in the offer's currency,
 * or a percent of the conversion's amount in the conversion's currency.
 */
function priced(
  type: PayoutType,
  fixed: Decimal.Value | null | undefined,
  percent: Decimal.Value | null | undefined,
  offerCurrency: string,
  amount: Decimal.Value,
  currency: string,
) {
  return computePayout(
    type === 'fixed' ? { type: 'fixed', amount: fixed ?? 0, currency: offerCurrency } : { type: 'percent', percent: percent ?? 0 },
    amount,
    currency,
  );
}

/**
 * A price (the payout, or the revenue) for a new amount: a percent rule's is recomputed with the
 * offer's current percent, when the price is in the conversion's currency; a fixed one's stays.
 */
function repriced(
  current: ConversionRow,
  amount: Decimal,
  price: { value: ConversionRow['payout']; currency: string | null | undefined },
  type: PayoutType | null | undefined,
  percent: Decimal.Value | null | undefined,
): Decimal {
  if (type !== 'percent' || price.currency !== current.currency) return new Decimal(price.value.toString());
  return computePayout({ type: 'percent', percent: percent ?? 0 }, amount, current.currency).amount;
}

/** A conversion earns a commission when its payout is above zero and it is not rejected. */
const earnsCommission = (payout: Decimal, status: ConversionStatus) => payout.gt(0) && status !== 'rejected';

/** A conversion's new commission: its payout, in the payout's currency, its status following the conversion's. */
function newCommission(
  conversion: Pick<ConversionRow, 'id' | 'affiliateId' | 'payoutCurrency'>,
  payout: Decimal,
  status: ConversionStatus,
  now: Date,
): CommissionState {
  return {
    id: newId('commission'),
    conversionId: conversion.id,
    affiliateId: conversion.affiliateId,
    amount: payout.toString(),
    currency: conversion.payoutCurrency,
    status: commissionStatusFor(status),
    createdAt: now,
    payoutId: null,
    payoutSent: false,
  };
}

export type ReviewPlan =
  | { kind: 'unchanged' }
  | { kind: 'invalid_transition'; from: ConversionStatus }
  | { kind: 'changed'; after: ConversionState; events: EventEnvelope[]; writes: ConversionWrites };

/**
 * A person's review (PATCH /v1/conversions/{id}): approve a held conversion, or reject one. The
 * same rule as a postback's status change; the hold is released either way.
 */
export function planReview(current: ConversionState, to: 'approved' | 'rejected', now: Date): ReviewPlan {
  if (current.status === to) return { kind: 'unchanged' };
  if (!canTransition(current.status, to)) return { kind: 'invalid_transition', from: current.status };
  const change = changeConversion(current, { status: to, holdReason: null }, now);
  // Without a new amount no commission amount moves: a review is never refused.
  if (change.refused) throw new Error('a review changed a locked amount');
  const key = conversionKey(current);
  const writes = conversionWrites(new Map([[key, current]]), new Map([[key, change.after]]), [change]);
  return { kind: 'changed', after: change.after, events: change.events, writes };
}

const holdReasonOf = (hit: RuleHit) => hit.holdReason ?? hit.rule;

function flagRows(hits: RuleHit[], postbackId: string, conversionId: string | null, now: Date): FraudFlagRow[] {
  return hits.map((hit) => ({ id: newId('fraudFlag'), postbackId, conversionId, rule: hit.rule, details: hit.details, createdAt: now }));
}

const flagEvents = (rows: FraudFlagRow[], now: Date) => rows.map((row) => createEvent('fraud.flagged', { fraud_flag: fraudFlagJson(row) }, now));

/** The dedupe key of a conversion: (advertiser, order_id, event). */
export const conversionKey = (p: { advertiserId: number; orderId: string; event: string }) => `${p.advertiserId}\u0000${p.orderId}\u0000${p.event}`;

/** An event name in its one form: event names are matched in any case, like status words. */
export const normalizeEvent = (event: string) => event.toLowerCase();

export interface BatchInput {
  /** In queue order: postbacks of one order are decided in the order they were queued. */
  postbacks: PostbackFacts[];
  click(postback: PostbackFacts): ClickClaims | null;
  offer(click: ClickClaims): OfferTerms | null;
  affiliate(click: ClickClaims): AffiliateStanding;
  /** The existing conversions of the batch's keys (conversionKey), as loaded (and locked). */
  existing: ReadonlyMap<string, ConversionState>;
  now: Date;
}

/** Every row a set of planned changes writes, each once, in its final state. */
export interface ConversionWrites {
  /** New conversions in their final state, sorted by key. */
  newConversions: ConversionState[];
  /** New commissions (of new or existing conversions) in their final state, sorted by id. */
  newCommissions: CommissionState[];
  /** Existing conversions that changed, in their final state, sorted by id. */
  changedConversions: ConversionState[];
  /** Existing commissions whose amount or status changed, in their final state, sorted by id. */
  changedCommissions: CommissionState[];
  /** What the plan read of those commissions' payouts (as loaded, not locked): checked again once they are locked. */
  commissionsAsRead: Array<Pick<CommissionState, 'id' | 'payoutId' | 'payoutSent'>>;
  /** Existing conversions reversed to rejected: their commission leaves a payout not yet sent. */
  reversed: string[];
  /** Payouts not yet sent whose commissions' amounts moved: their totals follow. */
  repricedPayouts: string[];
  fraudFlags: FraudFlagRow[];
  events: EventEnvelope[];
  /** What the new and changed conversions move in the report rows (written in the same transaction), summed per kind, quarter and dimensions (reportMoves). */
  reportMoves: ReportMove[];
}

export interface BatchPlan extends ConversionWrites {
  /** One plan per postback, in input order. */
  plans: ConversionPlan[];
}

/**
 * Plans a batch as if each postback ran alone, in order: a postback sees what the ones before
 * it in the batch did to its order (a creation, then an approval, then a reversal).
 */
export function planBatch({ postbacks, click, offer, affiliate, existing, now }: BatchInput): BatchPlan {
  const final = new Map<string, ConversionState | null>();
  const plans = postbacks.map((postback) => {
    const key = conversionKey(postback);
    const claims = click(postback);
    const plan = planConversion({
      postback,
      click: claims,
      offer: claims ? offer(claims) : null,
      affiliate: claims ? affiliate(claims) : null,
      existing: final.has(key) ? final.get(key)! : (existing.get(key) ?? null),
      now,
    });
    final.set(key, plan.after);
    return plan;
  });
  return { plans, ...conversionWrites(existing, final, plans) };
}

/**
 * The rows to write for conversions that went from `before` (as loaded) to `after` (as planned),
 * by key: what is new is inserted, what existed and changed is updated.
 */
export function conversionWrites(
  before: ReadonlyMap<string, ConversionState>,
  after: ReadonlyMap<string, ConversionState | null>,
  plans: Array<{ events: EventEnvelope[]; fraudFlags?: FraudFlagRow[] }>,
): ConversionWrites {
  const writes: ConversionWrites = {
    newConversions: [],
    newCommissions: [],
    changedConversions: [],
    changedCommissions: [],
    commissionsAsRead: [],
    reversed: [],
    repricedPayouts: [],
    fraudFlags: plans.flatMap((p) => p.fraudFlags ?? []),
    events: plans.flatMap((p) => p.events),
    reportMoves: [],
  };
  const deltas: ReportDelta[] = [];
  const repriced = new Set<string>();
  for (const key of [...after.keys()].sort(compare)) {
    const end = after.get(key);
    if (!end) continue;
    const start = before.get(key);
    const delta = start === end ? null : reportDelta(start ?? null, end);
    if (delta) deltas.push(delta);
    if (!start) {
      writes.newConversions.push(end);
      if (end.commission) writes.newCommissions.push(end.commission);
      continue;
    }
    if (end !== start) writes.changedConversions.push(end);
    if (start.status !== 'rejected' && end.status === 'rejected') writes.reversed.push(end.id);
    const was = start.commission;
    const is = end.commission;
    if (!is || is === was) continue;
    if (!was) {
      writes.newCommissions.push(is);
      continue;
    }
    writes.changedCommissions.push(is);
    writes.commissionsAsRead.push({ id: was.id, payoutId: was.payoutId, payoutSent: was.payoutSent });
    if (was.payoutId && !was.payoutSent && !new Decimal(was.amount.toString()).eq(is.amount.toString())) repriced.add(was.payoutId);
  }
  const byId = (a: { id: string }, b: { id: string }) => compare(a.id, b.id);
  writes.newCommissions.sort(byId);
  writes.changedConversions.sort(byId);
  writes.changedCommissions.sort(byId);
  writes.commissionsAsRead.sort(byId);
  writes.reversed.sort(compare);
  writes.repricedPayouts = [...repriced].sort(compare);
  writes.reportMoves = reportMoves(deltas);
  return writes;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
