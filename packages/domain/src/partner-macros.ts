/**
 * The macros a partner postback's URL may carry (GET /v1/partner-postbacks; docs/partners.md),
 * and what the presets of packages/domain/src/postback-formats.ts fill their parameters from.
 */
export const PARTNER_MACROS = [
  'click_id',
  'sub1',
  'sub2',
  'sub3',
  'sub4',
  'sub5',
  'conversion_id',
  'event',
  'event_type',
  'status',
  'payout',
  'payout_currency',
  'offer_id',
  'affiliate_id',
  'timestamp',
  'amount',
] as const;
export type PartnerMacro = (typeof PARTNER_MACROS)[number];
