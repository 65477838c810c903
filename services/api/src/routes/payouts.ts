import { retryOnConflict } from '@trackway/db';
import { HttpError, badRequest, notFound, parseInput } from '@trackway/http';
import { createPayout, markPayoutSent, payoutJson } from '@trackway/ledger';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { Router } from 'express';
import type { ApiDeps } from '../deps';
import { decodeCursor, page, parseListQuery } from '../pagination';
import { PayoutCreate, PayoutList, PayoutMarkSent, payoutWithCommissionsResponse } from '../representations';
import { prefixedId } from './params';

export function payoutsRouter({ prisma, pool, queues, logger }: ApiDeps): Router {
  const router = Router();
  const withCommissions = { commissions: { select: { id: true }, orderBy: { id: 'asc' } } } as const;

  router.post('/', async (req, res) => {
    const input = parseInput(PayoutCreate, req.body);
    if (!(await prisma.affiliate.findUnique({ where: { id: input.affiliate_id } }))) throw badRequest({ affiliate_id: 'no affiliate has this id' });
    const created = await retryOnConflict(() => prisma.$transaction((tx) => createPayout(tx, input.affiliate_id, input.currency, new Date())));
    if (!created) throw new HttpError(422, 'no_commissions', `Affiliate ${input.affiliate_id} has no approved, unpaid commissions in ${input.currency}.`);
    const { payout, commissionIds, hasMore } = created;
    // has_more: the payout is full (PAYOUT_AMOUNT_MAX); ask again for the next one.
    res.status(201).json({
      ...payoutWithCommissionsResponse(payout, commissionIds),
      has_more: hasMore,
    });
  });

  router.get('/', async (req, res) => {
    const q = parseListQuery(PayoutList, req.query);
    const cursor = decodeCursor<string>(q.cursor, 'string');
    const rows = await prisma.payout.findMany({
      where: { affiliateId: q.affiliate_id, status: q.status, id: cursor === undefined ? undefined : { lt: cursor } },
      orderBy: { id: 'desc' },
      take: q.limit + 1,
    });
    res.json(page(rows, q.limit, (row) => payoutJson(row)));
  });

  router.get('/:id', async (req, res) => {
    const payout = await prisma.payout.findUnique({ where: { id: prefixedId(req.params.id, 'po', 'Payout') }, include: withCommissions });
    if (!payout) throw notFound('Payout');
    res.json(
      payoutWithCommissionsResponse(
        payout,
        payout.commissions.map((c) => c.id),
      ),
    );
  });

  router.post('/:id/mark-sent', async (req, res) => {
    const id = prefixedId(req.params.id, 'po', 'Payout');
    const { reference } = parseInput(PayoutMarkSent, req.body);
    const result = await retryOnConflict(() =>
      prisma.$transaction(async (tx) => {
        const marked = await markPayoutSent(tx, id, reference, new Date());
        if (marked) await writeEvents(tx, [marked.event]);
        return marked;
      }),
    );
    if (!result) {
      if (!(await prisma.payout.findUnique({ where: { id } }))) throw notFound('Payout');
      throw new HttpError(409, 'already_sent', 'The payout was already marked sent.');
    }
    await publishEvents(pool, queues.events, [result.event]).catch((error: unknown) => logger.warn({ err: error }, 'payout.sent left for the outbox relay'));
    res.json(result.event.data.payout);
  });

  return router;
}
