import Decimal from 'decimal.js';
import type { EntityStatus } from './status';

export interface FraudContext {
  /** Claims of the click ID, or null when its signature did not verify. */
  click: { offerId: number; affiliateId: number; clickedAt: Date } | null;
  /** The click's offer, or null when it does not exist. */
  offer: {
    advertiserId: number;
    status: EntityStatus;
    attributionWindowDays: number;
    minCtitSeconds: number;
    amountCap: Decimal.Value | null;
  } | null;
  /** The click's affiliate, or null when no such affiliate exists. */
  affiliate: { status: EntityStatus } | null;
  advertiserId: number;
  /** When Trackway received the postback: a queue backlog never expires a click. */
  receivedAt: Date;
  amount: Decimal.Value;
}

export type FraudRuleName = 'unknown_click' | 'click_expired' | 'inactive_affiliate' | 'inactive_offer' | 'ctit_too_short' | 'amount_over_cap';

export interface RuleHit {
  rule: FraudRuleName;
  /** reject: the postback is rejected; hold: the conversion is kept but held pending; flag: recorded only. */
  action: 'reject' | 'hold' | 'flag';
  details: Record<string, string | number | null>;
  /** For a hold: the conversion's hold_reason (the rule's name unless it says otherwise). */
  holdReason?: string;
}

type Rule = (ctx: FraudContext) => RuleHit | null;

const DAY_MS = 86_400_000;

// Table-driven: each rule a pure function; order matters only in that a reject ends evaluation.
export const FRAUD_RULES: ReadonlyArray<{ name: FraudRuleName; check: Rule }> = [
  {
    name: 'unknown_click',
    check: ({ click, offer, advertiserId }): RuleHit | null => {
      if (!click) return { rule: 'unknown_click', action: 'reject', details: { cause: 'signature' } };
      if (!offer) return { rule: 'unknown_click', action: 'reject', details: { cause: 'offer_not_found', offer_id: click.offerId } };
      if (offer.advertiserId !== advertiserId) {
        return { rule: 'unknown_click', action: 'reject', details: { cause: 'offer_of_another_advertiser', offer_id: click.offerId } };
      }
      return null;
    },
  },
  {
    name: 'click_expired',
    check: ({ click, offer, receivedAt }) => {
      const age = receivedAt.getTime() - click!.clickedAt.getTime();
      if (age <= offer!.attributionWindowDays * DAY_MS) return null;
      return {
        rule: 'click_expired',
        action: 'reject',
        details: { click_age_seconds: Math.floor(age / 1000), window_days: offer!.attributionWindowDays },
      };
    },
  },
  // A network stops a partner (or an offer) by making it inactive: what still arrives for its
  // older clicks is recorded, never lost, but held for a person to approve or reject.
  {
    name: 'inactive_affiliate',
    check: ({ click, affiliate }) => standingHold('affiliate', affiliate?.status ?? null, click!.affiliateId),
  },
  {
    name: 'inactive_offer',
    check: ({ click, offer }) => standingHold('offer', offer!.status, click!.offerId),
  },
  {
    name: 'ctit_too_short',
    check: ({ click, offer, receivedAt }) => {
      // Clamped at 0: a click stamped slightly after receipt is clock skew between nodes.
      const ctit = Math.max(0, Math.floor((receivedAt.getTime() - click!.clickedAt.getTime()) / 1000));
      if (ctit >= offer!.minCtitSeconds) return null;
      return { rule: 'ctit_too_short', action: 'hold', details: { ctit_seconds: ctit, min_ctit_seconds: offer!.minCtitSeconds } };
    },
  },
  {
    name: 'amount_over_cap',
    check: ({ offer, amount }) => amountOverCap(offer!.amountCap, amount),
  },
];

/** The flag an amount above the offer's cap earns (at creation, or when a later postback changes the amount), or null. */
export function amountOverCap(cap: Decimal.Value | null, amount: Decimal.Value): RuleHit | null {
  if (cap === null || new Decimal(amount).lte(cap)) return null;
  return { rule: 'amount_over_cap', action: 'flag', details: { amount: new Decimal(amount).toString(), amount_cap: new Decimal(cap).toString() } };
}

/** The hold an inactive (or vanished) affiliate or offer puts on a conversion, or null. */
function standingHold(kind: 'affiliate' | 'offer', status: EntityStatus | null, id: number): RuleHit | null {
  if (status === 'active') return null;
  return {
    rule: kind === 'affiliate' ? 'inactive_affiliate' : 'inactive_offer',
    action: 'hold',
    holdReason: `${kind}_inactive`,
    details: { [`${kind}_id`]: id, status: status ?? 'not_found' },
  };
}

/** The holds of a conversion's standing: its affiliate's and its offer's. */
export function standingHolds(
  click: { offerId: number; affiliateId: number },
  affiliate: FraudContext['affiliate'],
  offer: { status: EntityStatus },
): RuleHit[] {
  return [standingHold('affiliate', affiliate?.status ?? null, click.affiliateId), standingHold('offer', offer.status, click.offerId)].filter(
    (hit): hit is RuleHit => hit !== null,
  );
}

export interface FraudVerdict {
  hits: RuleHit[];
  /** The first rejecting hit, if any: the postback is rejected with its rule as reason. */
  rejection: RuleHit | null;
  /** The first holding hit, if any: the conversion is held pending with its hold reason. */
  hold: RuleHit | null;
}

export function evaluateFraud(ctx: FraudContext): FraudVerdict {
  const hits: RuleHit[] = [];
  for (const { check } of FRAUD_RULES) {
    const hit = check(ctx);
    if (!hit) continue;
    hits.push(hit);
    if (hit.action === 'reject') return { hits, rejection: hit, hold: null };
  }
  return { hits, rejection: null, hold: hits.find((h) => h.action === 'hold') ?? null };
}
