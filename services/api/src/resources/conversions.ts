import { inTransaction } from '@trackway/db';
import { conversionJson, planReview } from '@trackway/domain';
import { HttpError, notFound } from '@trackway/http';
import { lockConversion, writeConversions } from '@trackway/ledger';
import { insertEvents, publishOrLeave } from '@trackway/outbox';
import type { ApiDeps } from '../deps';
import { listPage } from '../pagination';
import { prefixedIdPath } from '../path-params';
import { Conversion, ConversionList, ConversionReview, pageOf } from '../representations';
import { resource, route } from '../route';

const withFlags = { fraudFlags: { select: { rule: true }, orderBy: { createdAt: 'asc' } } } as const;
/** A Prisma row with its flags' rules, as the one conversion shape. */
const json = (row: Omit<Parameters<typeof conversionJson>[0], 'fraudFlags'> & { fraudFlags: { rule: string }[] }) =>
  conversionJson({ ...row, fraudFlags: row.fraudFlags.map((f) => f.rule) });
const id = prefixedIdPath('conversion', 'Conversion');

/**
 * Fraud review: approves or rejects a conversion, as PATCH /v1/conversions/{id} and the console do.
 * The same rule (planReview → changeConversion) and the same writer as an advertiser's postback.
 */
export async function reviewConversion(deps: ApiDeps, conversionId: string, status: 'approved' | 'rejected') {
  const now = new Date();
  const { conversion, events } = await inTransaction(deps.pool, async (client) => {
    const current = await lockConversion(client, conversionId);
    if (!current) throw notFound('Conversion');
    const plan = planReview(current, status, now);
    if (plan.kind === 'invalid_transition') throw new HttpError(409, 'invalid_transition', `A ${plan.from} conversion cannot become ${status}.`);
    if (plan.kind === 'unchanged') return { conversion: current, events: [] };
    await writeConversions(client, plan.writes, now);
    await insertEvents(client, plan.events);
    return { conversion: plan.after, events: plan.events };
  });
  await publishOrLeave(deps.pool, deps.queues.events, events, deps.logger);
  return conversionJson(conversion);
}

export default resource(
  { tag: 'Conversions', base: '/v1/conversions', description: 'What postbacks recorded: one per advertiser, order and event; fraud review.' },
  [
    route({
      method: 'get',
      path: '/v1/conversions',
      summary: 'List conversions',
      description:
        'Newest first; filter by order, advertiser, offer, affiliate, status, sub IDs (exact) and when it was created (created_from inclusive, created_to exclusive).',
      query: ConversionList,
      answer: { status: 200, description: 'A page, newest first.', schema: pageOf(Conversion, 'ConversionPage') },
      handler: async ({ query, deps }) => {
        const { order_id: orderId, advertiser_id: advertiserId, offer_id: offerId, affiliate_id: affiliateId, status } = query;
        const { sub1, sub2, sub3, sub4, sub5, created_from: from, created_to: to } = query;
        const createdAt = from || to ? { gte: from, lt: to } : undefined;
        return listPage(
          query,
          'string',
          ({ id, ...keyset }) =>
            deps.prisma.conversion.findMany({
              where: { orderId, advertiserId, offerId, affiliateId, status, sub1, sub2, sub3, sub4, sub5, createdAt, id },
              include: withFlags,
              ...keyset,
            }),
          json,
        );
      },
    }),
    route({
      method: 'get',
      path: '/v1/conversions/{id}',
      summary: 'Get a conversion',
      description: 'With the fraud rules that flagged it.',
      params: id,
      answer: { status: 200, description: 'The conversion.', schema: Conversion },
      handler: async ({ params, deps }) => {
        const row = await deps.prisma.conversion.findUnique({ where: { id: params.id }, include: withFlags });
        if (!row) throw notFound('Conversion');
        return json(row);
      },
    }),
    route({
      method: 'patch',
      path: '/v1/conversions/{id}',
      summary: 'Review a conversion',
      description:
        'Fraud review: approve a conversion a rule held, or reject one (the same state machine, commissions and events as a postback; approving releases the hold).',
      params: id,
      body: ConversionReview,
      answer: { status: 200, description: 'The conversion, updated.', schema: Conversion },
      errors: { 409: 'invalid_transition: this status cannot become that one.' },
      handler: ({ params, body, deps }) => reviewConversion(deps, params.id, body.status),
    }),
  ],
);
