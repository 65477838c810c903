import type { Resource } from '../route';
import advertisers from './advertisers';
import affiliates from './affiliates';
import conversions from './conversions';
import deliveries from './deliveries';
import eventTypes from './event-types';
import offers from './offers';
import partnerPostbacks from './partner-postbacks';
import payouts from './payouts';
import postbacks from './postbacks';
import reports from './reports';
import webhookEndpoints from './webhook-endpoints';

/** Every admin resource, in the document's order: a new resource is one file and one line here. */
export const ADMIN_RESOURCES: readonly Resource[] = [
  advertisers,
  affiliates,
  offers,
  conversions,
  postbacks,
  webhookEndpoints,
  partnerPostbacks,
  deliveries,
  payouts,
  reports,
  eventTypes,
];
