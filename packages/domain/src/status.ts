export const CONVERSION_STATUSES = ['pending', 'approved', 'rejected'] as const;
export type ConversionStatus = (typeof CONVERSION_STATUSES)[number];

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
 * What a repeated postback (same advertiser, order and event) does to the existing conversion.
 * A conversion held for review by a fraud rule cannot be approved by the advertiser's repeat:
 * that repeat is a duplicate of the approval the hold already overrode.
 */
export function decideRepeat(current: ConversionStatus, requested: ConversionStatus, holdReason: string | null): RepeatDecision {
  if (current === requested) return { kind: 'duplicate' };
  if (holdReason && current === 'pending' && requested === 'approved') return { kind: 'duplicate' };
  if (!canTransition(current, requested)) return { kind: 'invalid_transition', from: current, to: requested };
  return { kind: 'transition', from: current, to: requested, reversal: current === 'approved' && requested === 'rejected' };
}

/** The commission status that follows a conversion status. */
export function commissionStatusFor(status: ConversionStatus): 'pending' | 'approved' | 'voided' {
  return status === 'approved' ? 'approved' : status === 'pending' ? 'pending' : 'voided';
}
