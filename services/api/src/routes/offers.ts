import { badRequest, notFound, parseInput } from '@trackway/http';
import { Router } from 'express';
import type { z } from 'zod';
import type { ApiDeps } from '../deps';
import { decodeCursor, page, parseListQuery } from '../pagination';
import { OfferCreate, OfferList, OfferUpdate, offerJson } from '../representations';
import { intId } from './params';

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
    attributionWindowDays: input.attribution_window_days,
    minCtitSeconds: input.min_ctit_seconds,
    amountCap: input.amount_cap,
    status: input.status,
  };
}

export function offersRouter({ prisma, invalidate }: ApiDeps): Router {
  const router = Router();

  router.post('/', async (req, res) => {
    const input = parseInput(OfferCreate, req.body);
    const advertiser = await prisma.advertiser.findUnique({ where: { id: input.advertiser_id } });
    if (!advertiser) throw badRequest({ advertiser_id: 'no advertiser has this id' });
    const offer = await prisma.offer.create({
      data: {
        advertiserId: input.advertiser_id,
        ...columns(input),
        name: input.name,
        destinationUrl: input.destination_url,
        currency: input.currency,
        payoutType: input.payout.type,
      },
    });
    res.status(201).json(offerJson(offer));
  });

  router.get('/', async (req, res) => {
    const q = parseListQuery(OfferList, req.query);
    const cursor = decodeCursor<number>(q.cursor, 'int');
    const rows = await prisma.offer.findMany({
      where: { advertiserId: q.advertiser_id, status: q.status, id: cursor === undefined ? undefined : { lt: cursor } },
      orderBy: { id: 'desc' },
      take: q.limit + 1,
    });
    res.json(page(rows, q.limit, offerJson));
  });

  router.get('/:id', async (req, res) => {
    const offer = await prisma.offer.findUnique({ where: { id: intId(req.params.id, 'Offer') } });
    if (!offer) throw notFound('Offer');
    res.json(offerJson(offer));
  });

  router.patch('/:id', async (req, res) => {
    const id = intId(req.params.id, 'Offer');
    const input = parseInput(OfferUpdate, req.body);
    const { count } = await prisma.offer.updateMany({ where: { id }, data: columns(input) });
    if (count === 0) throw notFound('Offer');
    await invalidate('offer', id);
    res.json(offerJson(await prisma.offer.findUniqueOrThrow({ where: { id } })));
  });

  return router;
}
