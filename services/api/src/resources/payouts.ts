import { retryOnConflict } from '@trackway/db';
import { HttpError, badRequest, notFound } from '@trackway/http';
import { PayoutEmptyError, createPayout, markPayoutSent, payoutJson } from '@trackway/ledger';
import { publishOrLeave, writeEvents } from '@trackway/outbox';
import { listPage } from '../pagination';
import { prefixedIdPath } from '../path-params';
import {
  Payout,
  PayoutCreate,
  PayoutCreated,
  PayoutList,
  PayoutMarkSent,
  PayoutWithCommissions,
  pageOf,
  payoutWithCommissionsResponse,
} from '../representations';
import { resource, route } from '../route';

const id = prefixedIdPath('payout', 'Payout');
const withCommissions = { commissions: { select: { id: true }, orderBy: { id: 'asc' } } } as const;

export default resource(
  { tag: 'Payouts', base: '/v1/payouts', description: 'What an affiliate is paid: approved, unpaid commissions in one currency, marked sent once paid.' },
  [
    route({
      method: 'post',
      path: '/v1/payouts',
      summary: 'Create a payout',
      description:
        "Gathers the affiliate's approved, unpaid commissions in one currency (any case: usd is USD), oldest first, up to what one payout holds. An inactive affiliate is paid only with allow_inactive. " +
        'Built 1,000 commissions at a time, each batch its own transaction, resting between batches (PAYOUT_NICE_RATIO) so postbacks keep the cores: the payout is listed (pending) from its first batch on and grows, its amount always the sum of the commissions it holds; ' +
        'a commission a postback is changing at that moment is left for the next payout. The answer is the payout as it stands once built.',
      body: PayoutCreate,
      answer: { status: 201, description: 'The new payout.', schema: PayoutCreated },
      errors: {
        409: 'affiliate_inactive: the affiliate is inactive; send allow_inactive: true to pay it anyway.',
        422: 'no_commissions: nothing approved and unpaid in this currency.',
      },
      handler: async ({ body, deps }) => {
        const affiliate = await deps.prisma.affiliate.findUnique({ where: { id: body.affiliate_id }, select: { status: true } });
        if (!affiliate) throw badRequest({ affiliate_id: 'no affiliate has this id' });
        // An inactive affiliate is how a network stops a partner (fraud): paying it takes a deliberate yes.
        if (affiliate.status === 'inactive' && body.allow_inactive !== true) {
          throw new HttpError(409, 'affiliate_inactive', `Affiliate ${body.affiliate_id} is inactive; send "allow_inactive": true to pay it anyway.`);
        }
        // Built in short transactions of its own (createPayout): postbacks reversing its commissions never wait for all of it.
        const created = await createPayout(deps.pool, body.affiliate_id, body.currency, new Date(), { niceRatio: deps.payoutNiceRatio });
        if (!created) throw new HttpError(422, 'no_commissions', `Affiliate ${body.affiliate_id} has no approved, unpaid commissions in ${body.currency}.`);
        // has_more: the payout is full (PAYOUT_AMOUNT_MAX), or was marked sent before its build ended; ask again for the next one.
        return { ...payoutWithCommissionsResponse(created.payout, created.commissionIds), has_more: created.hasMore };
      },
    }),
    route({
      method: 'get',
      path: '/v1/payouts',
      summary: 'List payouts',
      description: 'Newest first; filter by affiliate and status.',
      query: PayoutList,
      answer: { status: 200, description: 'A page, newest first.', schema: pageOf(Payout, 'PayoutPage') },
      handler: ({ query, deps }) =>
        listPage(
          query,
          'string',
          ({ id, ...keyset }) => deps.prisma.payout.findMany({ where: { affiliateId: query.affiliate_id, status: query.status, id }, ...keyset }),
          payoutJson,
        ),
    }),
    route({
      method: 'get',
      path: '/v1/payouts/{id}',
      summary: 'Get a payout',
      description: 'With the ids of its commissions.',
      params: id,
      answer: { status: 200, description: 'The payout.', schema: PayoutWithCommissions },
      handler: async ({ params, deps }) => {
        const payout = await deps.prisma.payout.findUnique({ where: { id: params.id }, include: withCommissions });
        if (!payout) throw notFound('Payout');
        return payoutWithCommissionsResponse(
          payout,
          payout.commissions.map((c) => c.id),
        );
      },
    }),
    route({
      method: 'post',
      path: '/v1/payouts/{id}/mark-sent',
      summary: 'Mark a payout sent',
      description: 'Emits payout.sent. A payout that reversals emptied (no commissions left) cannot be sent.',
      params: id,
      body: PayoutMarkSent,
      answer: { status: 200, description: 'The payout, sent.', schema: PayoutWithCommissions },
      errors: { 409: 'already_sent, or payout_empty (reversals took every commission out of it).' },
      handler: async ({ params, body, deps }) => {
        const result = await retryOnConflict(() =>
          deps.prisma.$transaction(async (tx) => {
            const marked = await markPayoutSent(tx, params.id, body.reference, new Date());
            if (marked) await writeEvents(tx, [marked.event]);
            return marked;
          }),
        ).catch((error: unknown) => {
          if (error instanceof PayoutEmptyError)
            throw new HttpError(409, 'payout_empty', 'The payout has no commissions left (reversals took them out); it cannot be sent.');
          throw error;
        });
        if (!result) {
          if (!(await deps.prisma.payout.findUnique({ where: { id: params.id } }))) throw notFound('Payout');
          throw new HttpError(409, 'already_sent', 'The payout was already marked sent.');
        }
        await publishOrLeave(deps.pool, deps.queues.events, [result.event], deps.logger, 'payout.sent');
        return payoutWithCommissionsResponse(result.payout, result.commissionIds);
      },
    }),
  ],
);
