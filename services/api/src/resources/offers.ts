import { badRequest } from '@trackway/http';
import type { z } from 'zod';
import { listPage } from '../pagination';
import { intIdPath } from '../path-params';
import { Offer, OfferCreate, OfferList, OfferUpdate, offerJson, pageOf } from '../representations';
import { ERRORS, resource, route } from '../route';
import { namedEntities } from './named-entities';

const id = intIdPath('Offer');
const offers = namedEntities({ what: 'Offer', kind: 'offer', delegate: (deps) => deps.prisma.offer, json: offerJson });

/** An offer's columns from the fields a request sets (Prisma leaves undefined ones out). */
function columns(input: z.infer<typeof OfferUpdate>) {
  return {
    name: input.name,
    destinationUrl: input.destination_url,
    currency: input.currency,
    ...(input.payout && {
      payoutType: input.payout.type,
      payoutAmount: input.payout.type === 'fixed' ? input.payout.amount : null,
      payoutPercent: input.payout.type === 'percent' ? input.payout.percent : null,
    }),
    // null clears the revenue rule; absent leaves it.
    ...(input.revenue !== undefined && {
      revenueType: input.revenue?.type ?? null,
      revenueAmount: input.revenue?.type === 'fixed' ? input.revenue.amount : null,
      revenuePercent: input.revenue?.type === 'percent' ? input.revenue.percent : null,
    }),
    shareAmountWithPartners: input.share_amount_with_partners,
    attributionWindowDays: input.attribution_window_days,
    minCtitSeconds: input.min_ctit_seconds,
    amountCap: input.amount_cap,
    status: input.status,
  };
}

export default resource(
  {
    tag: 'Offers',
    base: '/v1/offers',
    description: "What an advertiser pays for: the destination /click redirects to, the affiliates' payout and what the network earns (revenue).",
  },
  [
    route({
      method: 'post',
      path: '/v1/offers',
      summary: 'Create an offer',
      description:
        'A fixed or percent payout, in the currency conversions are paid in; optionally a revenue (what the advertiser pays the network), priced the same way.',
      body: OfferCreate,
      answer: { status: 201, description: 'The new offer.', schema: Offer },
      errors: { 400: `${ERRORS[400]} advertiser_id names no advertiser.` },
      handler: async ({ body, deps }) => {
        const advertiser = await deps.prisma.advertiser.findUnique({ where: { id: body.advertiser_id } });
        if (!advertiser) throw badRequest({ advertiser_id: 'no advertiser has this id' });
        const offer = await deps.prisma.offer.create({
          data: {
            advertiserId: body.advertiser_id,
            ...columns(body),
            name: body.name,
            destinationUrl: body.destination_url,
            currency: body.currency,
            payoutType: body.payout.type,
          },
        });
        return offerJson(offer);
      },
    }),
    route({
      method: 'get',
      path: '/v1/offers',
      summary: 'List offers',
      description: 'Newest first; filter by advertiser and status.',
      query: OfferList,
      answer: { status: 200, description: 'A page, newest first.', schema: pageOf(Offer, 'OfferPage') },
      handler: ({ query, deps }) =>
        listPage(
          query,
          'int',
          ({ id, ...keyset }) => deps.prisma.offer.findMany({ where: { advertiserId: query.advertiser_id, status: query.status, id }, ...keyset }),
          offerJson,
        ),
    }),
    route({
      method: 'get',
      path: '/v1/offers/{id}',
      summary: 'Get an offer',
      description: 'The offer, whatever its status.',
      params: id,
      answer: { status: 200, description: 'The offer.', schema: Offer },
      handler: ({ params, deps }) => offers.get(deps, params.id),
    }),
    route({
      method: 'patch',
      path: '/v1/offers/{id}',
      summary: 'Update an offer',
      description: 'Only the fields given change; an inactive offer takes no more clicks.',
      params: id,
      body: OfferUpdate,
      answer: { status: 200, description: 'The offer, updated.', schema: Offer },
      handler: async ({ params, body, deps }) => offerJson(await offers.update(deps, params.id, columns(body))),
    }),
  ],
);
