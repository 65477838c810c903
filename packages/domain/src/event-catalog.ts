import type { EventType } from './events';

const conversion = {
  id: 'cnv_01JD8Z6Q5W3M0T9XK2V7R4N1BC',
  advertiser_id: 1,
  offer_id: 1,
  affiliate_id: 7,
  click_id: 'AQAAAAEAAAAHZ0k2AJx1n3Qd8fV0m2Yc5Jk3a1Rw',
  order_id: 'ORDER-1001',
  event: 'conversion',
  status: 'approved',
  hold_reason: null,
  amount: '49.90',
  currency: 'USD',
  payout: '5.00',
  payout_currency: 'USD',
  revenue: '8.00',
  revenue_currency: 'USD',
  sub1: 'aff-click-8f3a2c',
  sub2: 'spring-campaign',
  sub3: null,
  sub4: null,
  sub5: null,
  fraud_flags: [],
  clicked_at: '2026-11-27T10:02:11.000Z',
  created_at: '2026-11-27T10:14:52.318Z',
  updated_at: '2026-11-27T10:14:52.318Z',
};

/** Every event type with what it means and an example `data` payload (GET /v1/event-types). */
export const EVENT_CATALOG: Record<EventType, { description: string; example: Record<string, unknown> }> = {
  'conversion.created': {
    description: 'A new conversion was recorded, whatever its status.',
    example: { conversion: { ...conversion, status: 'pending' } },
  },
  'conversion.approved': {
    description: 'A conversion entered the approved status (new, or pending → approved).',
    example: { conversion, previous_status: 'pending' },
  },
  'conversion.rejected': {
    description: 'A conversion entered the rejected status (new, pending → rejected, or an approved → rejected reversal that voids the commission).',
    example: { conversion: { ...conversion, status: 'rejected' }, previous_status: 'approved' },
  },
  'conversion.updated': {
    description:
      "A later postback changed a conversion's amount (and with it its payout, for a percent offer): previous_amount, previous_payout and previous_revenue (null when the offer records no revenue) are what it was. Sent before the status event when one postback changes both.",
    example: {
      conversion: { ...conversion, amount: '100.00', payout: '10.00', revenue: '16.00' },
      previous_amount: '10.00',
      previous_payout: '1.00',
      previous_revenue: '1.60',
    },
  },
  'commission.created': {
    description: 'A conversion that is not rejected earned the affiliate a payout greater than zero: when it was created, or when a later amount gave it one.',
    example: {
      commission: {
        id: 'com_01JD8Z6Q5XG1S7C2W9E4K8M3PA',
        conversion_id: conversion.id,
        affiliate_id: 7,
        amount: '5.00',
        currency: 'USD',
        status: 'approved',
        created_at: conversion.created_at,
      },
    },
  },
  'commission.updated': {
    description:
      "A commission's amount changed with its conversion's (a later postback's amount); a payout not yet sent that holds it moves with it. previous_amount is what it was.",
    example: {
      commission: {
        id: 'com_01JD8Z6Q5XG1S7C2W9E4K8M3PA',
        conversion_id: conversion.id,
        affiliate_id: 7,
        amount: '10.00',
        currency: 'USD',
        status: 'approved',
        created_at: conversion.created_at,
      },
      previous_amount: '1.00',
    },
  },
  'fraud.flagged': {
    description: 'A fraud rule hit a postback: unknown_click, click_expired, inactive_affiliate, inactive_offer, ctit_too_short or amount_over_cap.',
    example: {
      fraud_flag: {
        id: 'ff_01JD8Z6Q5Y0N4B6D1H8T2R5V7X',
        rule: 'ctit_too_short',
        postback_id: 'pb_01JD8Z6Q4Z2K9M1P5S3W7Y0B2D',
        conversion_id: conversion.id,
        details: { ctit_seconds: 3, min_ctit_seconds: 10 },
        created_at: conversion.created_at,
      },
    },
  },
  'payout.sent': {
    description: "A payout of an affiliate's approved commissions was marked sent.",
    example: {
      payout: {
        id: 'po_01JD8Z6Q60F3H5J7L9N1Q3S5U7',
        affiliate_id: 7,
        currency: 'USD',
        amount: '125.00',
        status: 'sent',
        reference: 'WIRE-2026-11-27-001',
        sent_at: '2026-11-27T12:00:00.000Z',
        created_at: '2026-11-27T11:58:00.000Z',
        updated_at: '2026-11-27T12:00:00.000Z',
        commission_ids: ['com_01JD8Z6Q5XG1S7C2W9E4K8M3PA'],
      },
    },
  },
  'endpoint.disabled': {
    description:
      'A webhook endpoint (or a partner postback, pp_…) was disabled automatically: it answered 410 Gone, or every attempt failed for DELIVERY_DISABLE_AFTER.',
    example: {
      endpoint: {
        id: 'ep_01JD8Z6Q61A2C4E6G8J0L2N4Q6',
        url: 'https://crm.example/hooks/trackway',
        description: 'CRM',
        event_types: ['conversion.approved'],
        headers: {},
        rate_limit_per_second: null,
        enabled: false,
        disabled_reason: 'The endpoint answered 410 Gone.',
        created_at: '2026-11-01T09:00:00.000Z',
        updated_at: '2026-11-27T12:00:00.000Z',
      },
    },
  },
  'webhook.test': {
    description:
      "Sent to one endpoint on request (POST /v1/webhook-endpoints/{id}/test); cannot be subscribed to. A partner postback's test (POST /v1/partner-postbacks/{id}/test) carries a sample `conversion` too, whose values fill its macros.",
    example: { endpoint_id: 'ep_01JD8Z6Q61A2C4E6G8J0L2N4Q6', message: 'This is a test event from Trackway.' },
  },
};

/** Types an endpoint can subscribe to (webhook.test is only ever sent on request). */
export const SUBSCRIBABLE_EVENT_TYPES = (Object.keys(EVENT_CATALOG) as EventType[]).filter((t) => t !== 'webhook.test');
