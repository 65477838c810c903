import { retryOnConflict } from '@trackway/db';
import { canTransition, conversionJson } from '@trackway/domain';
import { HttpError, notFound } from '@trackway/http';
import { ConcurrentUpdateError, transitionConversion } from '@trackway/ledger';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { listPage } from '../pagination';
import { prefixedIdPath } from '../path-params';
import { Conversion, ConversionList, ConversionReview, pageOf } from '../representations';
import { resource, route } from '../route';

const withFlags = { fraudFlags: { select: { rule: true }, orderBy: { createdAt: 'asc' } } } as const;
const json = (row: Parameters<typeof conversionJson>[0] & { fraudFlags: { rule: string }[] }) =>
  conversionJson(
    row,
    row.fraudFlags.map((f) => f.rule),
  );
const id = prefixedIdPath('conversion', 'Conversion');

export default resource(
  { tag: 'Conversions', base: '/v1/conversions', description: 'What postbacks recorded: one per advertiser, order and event; fraud review.' },
  [
    route({
      method: 'get',
      path: '/v1/conversions',
      summary: 'List conversions',
      description: 'Newest first; filter by order, advertiser, affiliate and status.',
      query: ConversionList,
      answer: { status: 200, description: 'A page, newest first.', schema: pageOf(Conversion, 'ConversionPage') },
      handler: async ({ query, deps }) => {
        const { order_id: orderId, advertiser_id: advertiserId, affiliate_id: affiliateId, status } = query;
        return listPage(
          query,
          'string',
          ({ id, ...keyset }) => deps.prisma.conversion.findMany({ where: { orderId, advertiserId, affiliateId, status, id }, include: withFlags, ...keyset }),
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
      errors: { 409: 'invalid_transition (this status cannot become that one) or conflict (changed meanwhile; retry).' },
      handler: async ({ params, body, deps }) => {
        const { status } = body;
        const now = new Date();
        const events = await retryOnConflict(() =>
          deps.prisma.$transaction(async (tx) => {
            const current = await tx.conversion.findUnique({ where: { id: params.id } });
            if (!current) throw notFound('Conversion');
            if (current.status === status) return [];
            if (!canTransition(current.status, status)) {
              throw new HttpError(409, 'invalid_transition', `A ${current.status} conversion cannot become ${status}.`);
            }
            const emitted = await transitionConversion(tx, { id: params.id, from: current.status, to: status, releaseHold: true }, now);
            await writeEvents(tx, emitted);
            return emitted;
          }),
        ).catch((error: unknown) => {
          if (error instanceof ConcurrentUpdateError) throw new HttpError(409, 'conflict', 'The conversion changed meanwhile; retry.');
          throw error;
        });
        await publishEvents(deps.pool, deps.queues.events, events).catch((error: unknown) =>
          deps.logger.warn({ err: error }, 'events left for the outbox relay'),
        );
        return json(await deps.prisma.conversion.findUniqueOrThrow({ where: { id: params.id }, include: withFlags }));
      },
    }),
  ],
);
