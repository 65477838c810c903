import { MONEY_PATTERN, PERCENT_PATTERN, destinationTemplateProblem, formatDecimal, formatMoney, isCurrency } from '@trackway/domain';
import { badRequest, intIdQuery, intIdSchema, notFound, parseInput, text, urlText } from '@trackway/http';
import { Router } from 'express';
import { z } from 'zod';
import type { ApiDeps } from '../deps';
import { decodeCursor, listQuery, page, parseListQuery } from '../pagination';
import { intId } from './params';

const money = z.string().regex(MONEY_PATTERN, 'must be a decimal string such as "5.00"');
const currency = z.string().refine(isCurrency, 'must be an ISO 4217 code such as USD');
const destinationUrl = urlText({ max: 2048 }).superRefine((value, ctx) => {
  const problem = destinationTemplateProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const payout = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('fixed'), amount: money }),
    z.strictObject({
      type: z.literal('percent'),
      percent: z.string().regex(PERCENT_PATTERN, 'must be a decimal string such as "10"').refine((p) => Number(p) <= 100, 'must be at most 100'),
    }),
  ],
  { error: 'must be {"type": "fixed", "amount"} or {"type": "percent", "percent"}' },
);
const settings = {
  name: text({ trim: true, min: 1, max: 200 }),
  destination_url: destinationUrl,
  currency,
  payout,
  attribution_window_days: z.number().int().min(1).max(365),
  min_ctit_seconds: z.number().int().min(0).max(86_400),
  amount_cap: money.nullable(),
};
const createSchema = z.strictObject({
  advertiser_id: intIdSchema,
  ...settings,
  attribution_window_days: settings.attribution_window_days.optional(),
  min_ctit_seconds: settings.min_ctit_seconds.optional(),
  amount_cap: settings.amount_cap.optional(),
});
const updateSchema = z.strictObject({ ...settings, status: z.enum(['active', 'inactive']) }).partial();
const listSchema = listQuery({ advertiser_id: intIdQuery.optional(), status: z.enum(['active', 'inactive']).optional() });

type OfferRow = Awaited<ReturnType<ApiDeps['prisma']['offer']['findUniqueOrThrow']>>;

export function offerJson(o: OfferRow) {
  return {
    id: o.id,
    advertiser_id: o.advertiserId,
    name: o.name,
    destination_url: o.destinationUrl,
    currency: o.currency,
    payout: o.payoutType === 'fixed' ? { type: 'fixed', amount: formatMoney(o.payoutAmount!) } : { type: 'percent', percent: formatDecimal(o.payoutPercent!) },
    attribution_window_days: o.attributionWindowDays,
    min_ctit_seconds: o.minCtitSeconds,
    amount_cap: o.amountCap === null ? null : formatMoney(o.amountCap),
    status: o.status,
    created_at: o.createdAt.toISOString(),
    updated_at: o.updatedAt.toISOString(),
  };
}

function columns(input: z.infer<typeof updateSchema>) {
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
    const input = parseInput(createSchema, req.body);
    const advertiser = await prisma.advertiser.findUnique({ where: { id: input.advertiser_id } });
    if (!advertiser) throw badRequest({ advertiser_id: 'no advertiser has this id' });
    const offer = await prisma.offer.create({
      data: { advertiserId: input.advertiser_id, ...columns(input), name: input.name, destinationUrl: input.destination_url, currency: input.currency, payoutType: input.payout.type },
    });
    res.status(201).json(offerJson(offer));
  });

  router.get('/', async (req, res) => {
    const q = parseListQuery(listSchema, req.query);
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
    const input = parseInput(updateSchema, req.body);
    const { count } = await prisma.offer.updateMany({ where: { id }, data: columns(input) });
    if (count === 0) throw notFound('Offer');
    await invalidate('offer', id);
    res.json(offerJson(await prisma.offer.findUniqueOrThrow({ where: { id } })));
  });

  return router;
}
