import { CommissionStatus, ConversionStatus, DeliveryStatus, EntityStatus, PayoutStatus, PayoutType, PostbackStatus } from '@trackway/db/enums';

// The statuses are Prisma's generated enums (prisma/schema.prisma): the column types, the
// domain and the API's schemas name the same values.
export { CommissionStatus, ConversionStatus, DeliveryStatus, EntityStatus, PayoutStatus, PayoutType, PostbackStatus };

export const CONVERSION_STATUSES = Object.values(ConversionStatus) as [ConversionStatus, ...ConversionStatus[]];

// pending → approved, pending → rejected, approved → rejected (a reversal: voids the commission).
const ALLOWED: Record<ConversionStatus, readonly ConversionStatus[]> = {
  pending: ['approved', 'rejected'],
  approved: ['rejected'],
  rejected: [],
};

export type RepeatDecision =
  | { kind: 'duplicate' }
  | { kind: 'transition'; from: ConversionStatus; to: ConversionStatus; reversal: boolean }
  | { kind: 'invalid_transition'; from: ConversionStatus; to: ConversionStatus };

export function canTransition(from: ConversionStatus, to: ConversionStatus): boolean {
  return ALLOWED[from].includes(to);
}

/**
 * What a repeated postback (same advertiser, order and event) asks of the existing conversion's
 * status. A conversion held for review cannot be approved by the advertiser's repeat: that
 * repeat is a duplicate of the approval the hold already overrode.
 */
export function decideRepeat(current: ConversionStatus, requested: ConversionStatus, holdReason: string | null): RepeatDecision {
  if (current === requested) return { kind: 'duplicate' };
  if (holdReason && current === 'pending' && requested === 'approved') return { kind: 'duplicate' };
  if (!canTransition(current, requested)) return { kind: 'invalid_transition', from: current, to: requested };
  return { kind: 'transition', from: current, to: requested, reversal: current === 'approved' && requested === 'rejected' };
}

/** The commission status that follows a conversion status. */
export function commissionStatusFor(status: ConversionStatus): CommissionStatus {
  return status === 'approved' ? 'approved' : status === 'pending' ? 'pending' : 'voided';
}

/**
 * The status vocabularies trackers send, understood case-insensitively. Numeric codes mean
 * different things per tracker: they are never guessed here (a per-advertiser map decides).
 */
export const STATUS_VOCABULARY: Readonly<Record<string, ConversionStatus>> = Object.freeze({
  approved: 'approved',
  sale: 'approved',
  confirmed: 'approved',
  paid: 'approved',
  pending: 'pending',
  lead: 'pending',
  hold: 'pending',
  on_hold: 'pending',
  rejected: 'rejected',
  declined: 'rejected',
  cancelled: 'rejected',
  canceled: 'rejected',
  refunded: 'rejected',
  reversed: 'rejected',
  chargeback: 'rejected',
  fraud: 'rejected',
});
