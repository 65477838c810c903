import { inTransaction } from '@trackway/db';
import { type ConversionState, conversionJson, conversionKey, conversionWrites, planReview } from '@trackway/domain';
import { HttpError, notFound, parseInput } from '@trackway/http';
import { lockConversion, writeConversions } from '@trackway/ledger';
import { insertEvents, publishEvents } from '@trackway/outbox';
import { Router } from 'express';
import type { ApiDeps } from '../deps';
import { decodeCursor, page, parseListQuery } from '../pagination';
import { ConversionList, ConversionReview } from '../representations';
import { prefixedId } from './params';

const withFlags = { fraudFlags: { select: { rule: true }, orderBy: { createdAt: 'asc' } } } as const;
/** A Prisma row with its flags' rules, as the one conversion shape. */
const json = (row: Omit<Parameters<typeof conversionJson>[0], 'fraudFlags'> & { fraudFlags: { rule: string }[] }) =>
  conversionJson({ ...row, fraudFlags: row.fraudFlags.map((f) => f.rule) });

export function conversionsRouter({ prisma, pool, queues, logger }: ApiDeps): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const q = parseListQuery(ConversionList, req.query);
    const cursor = decodeCursor<string>(q.cursor, 'string');
    const rows = await prisma.conversion.findMany({
      where: {
        orderId: q.order_id,
        advertiserId: q.advertiser_id,
        affiliateId: q.affiliate_id,
        status: q.status,
        id: cursor === undefined ? undefined : { lt: cursor },
      },
      include: withFlags,
      orderBy: { id: 'desc' },
      take: q.limit + 1,
    });
    res.json(page(rows, q.limit, json));
  });

  router.get('/:id', async (req, res) => {
    const row = await prisma.conversion.findUnique({ where: { id: prefixedId(req.params.id, 'cnv', 'Conversion') }, include: withFlags });
    if (!row) throw notFound('Conversion');
    res.json(json(row));
  });

  // Fraud review: approve a conversion a rule held, or reject one. The same rule (planReview →
  // changeConversion) and the same writer as an advertiser's postback.
  router.patch('/:id', async (req, res) => {
    const id = prefixedId(req.params.id, 'cnv', 'Conversion');
    const { status } = parseInput(ConversionReview, req.body);
    const now = new Date();
    const { conversion, events } = await inTransaction(pool, async (client) => {
      const current = await lockConversion(client, id);
      if (!current) throw notFound('Conversion');
      const plan = planReview(current, status, now);
      if (plan.kind === 'invalid_transition') throw new HttpError(409, 'invalid_transition', `A ${plan.from} conversion cannot become ${status}.`);
      if (plan.kind === 'unchanged') return { conversion: current, events: [] };
      const key = conversionKey(current);
      await writeConversions(client, conversionWrites(new Map([[key, current]]), new Map<string, ConversionState>([[key, plan.after]]), [plan]), now);
      await insertEvents(client, plan.events);
      return { conversion: plan.after, events: plan.events };
    });
    await publishEvents(pool, queues.events, events).catch((error: unknown) => logger.warn({ err: error }, 'events left for the outbox relay'));
    res.json(conversionJson(conversion));
  });

  return router;
}
