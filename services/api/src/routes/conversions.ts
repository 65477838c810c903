import { retryOnConflict } from '@trackway/db';
import { canTransition, conversionJson } from '@trackway/domain';
import { HttpError, notFound, parseInput } from '@trackway/http';
import { ConcurrentUpdateError, transitionConversion } from '@trackway/ledger';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { Router } from 'express';
import type { ApiDeps } from '../deps';
import { decodeCursor, page, parseListQuery } from '../pagination';
import { ConversionList, ConversionReview } from '../representations';
import { prefixedId } from './params';

const withFlags = { fraudFlags: { select: { rule: true }, orderBy: { createdAt: 'asc' } } } as const;
const json = (row: Parameters<typeof conversionJson>[0] & { fraudFlags: { rule: string }[] }) =>
  conversionJson(
    row,
    row.fraudFlags.map((f) => f.rule),
  );

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

  // Fraud review: approve a conversion a rule held, or reject one. The same state machine,
  // commission rule and outbox as an advertiser's postback.
  router.patch('/:id', async (req, res) => {
    const id = prefixedId(req.params.id, 'cnv', 'Conversion');
    const { status } = parseInput(ConversionReview, req.body);
    const now = new Date();
    const events = await retryOnConflict(() =>
      prisma.$transaction(async (tx) => {
        const current = await tx.conversion.findUnique({ where: { id } });
        if (!current) throw notFound('Conversion');
        if (current.status === status) return [];
        if (!canTransition(current.status, status)) {
          throw new HttpError(409, 'invalid_transition', `A ${current.status} conversion cannot become ${status}.`);
        }
        const emitted = await transitionConversion(tx, { id, from: current.status, to: status, releaseHold: true }, now);
        await writeEvents(tx, emitted);
        return emitted;
      }),
    ).catch((error: unknown) => {
      if (error instanceof ConcurrentUpdateError) throw new HttpError(409, 'conflict', 'The conversion changed meanwhile; retry.');
      throw error;
    });
    await publishEvents(pool, queues.events, events).catch((error: unknown) => logger.warn({ err: error }, 'events left for the outbox relay'));
    res.json(json(await prisma.conversion.findUniqueOrThrow({ where: { id }, include: withFlags })));
  });

  return router;
}
