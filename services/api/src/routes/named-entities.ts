import { notFound, parseInput } from '@trackway/http';
import type { InvalidationKind } from '@trackway/queues';
import { Router } from 'express';
import type { z } from 'zod';
import type { ApiDeps } from '../deps';
import { decodeCursor, page, parseListQuery } from '../pagination';
import { EntityCreate, EntityList, EntityUpdate, type EntityRow, entityJson } from '../representations';
import { intId } from './params';

type Status = 'active' | 'inactive';

// The slice of a Prisma delegate that advertisers and affiliates share.
interface EntityDelegate {
  create(args: { data: never }): Promise<EntityRow>;
  findMany(args: { where: { status?: Status; id?: { lt: number } }; orderBy: { id: 'desc' }; take: number }): Promise<EntityRow[]>;
  findUnique(args: { where: { id: number } }): Promise<EntityRow | null>;
  findUniqueOrThrow(args: { where: { id: number } }): Promise<EntityRow>;
  updateMany(args: { where: { id: number }; data: Record<string, unknown> }): Promise<{ count: number }>;
}

/** Create, list, get and update for a named entity (advertisers, affiliates). */
export function namedEntityRouter(
  { invalidate }: ApiDeps,
  config: {
    what: string;
    kind: InvalidationKind;
    delegate: EntityDelegate;
    /** POST's schema when it is not EntityCreate's (representations.ts). */
    createSchema?: z.ZodType<{ name: string }>;
    /** Extra columns for a new row (from the parsed input beyond name), and extra fields shown once in the 201 response. */
    onCreate?: (input: Record<string, unknown>) => { data: Record<string, unknown>; shown: Record<string, unknown> };
    /** PATCH's schema when it takes more than name and status (representations.ts), and the columns its fields become (checked against the row). */
    update?: { schema: z.ZodType<Record<string, unknown>>; toData: (id: number, input: Record<string, unknown>) => Promise<Record<string, unknown>> };
    /** The answer's shape when it shows more than entityJson (representations.ts). */
    json?: (row: never) => Record<string, unknown>;
  },
): Router & { update: (id: number, data: Record<string, unknown>) => Promise<EntityRow>; toJson: (row: EntityRow) => Record<string, unknown> } {
  const { what, kind, delegate } = config;
  const router = Router();
  const patchSchema = config.update?.schema ?? EntityUpdate;
  const toJson = (row: EntityRow) => (config.json ? config.json(row as never) : entityJson(row));
  const update = async (id: number, data: Record<string, unknown>) => {
    const { count } = await delegate.updateMany({ where: { id }, data });
    if (count === 0) throw notFound(what);
    await invalidate(kind, id);
    return delegate.findUniqueOrThrow({ where: { id } });
  };

  router.post('/', async (req, res) => {
    const input = parseInput(config.createSchema ?? EntityCreate, req.body);
    const extra = config.onCreate?.(input) ?? { data: {}, shown: {} };
    const row = await delegate.create({ data: { name: input.name, ...extra.data } as never });
    res.status(201).json({ ...toJson(row), ...extra.shown });
  });

  router.get('/', async (req, res) => {
    const q = parseListQuery(EntityList, req.query);
    const cursor = decodeCursor<number>(q.cursor, 'int');
    const rows = await delegate.findMany({
      where: { status: q.status, id: cursor === undefined ? undefined : { lt: cursor } },
      orderBy: { id: 'desc' },
      take: q.limit + 1,
    });
    res.json(page(rows, q.limit, toJson));
  });

  router.get('/:id', async (req, res) => {
    const row = await delegate.findUnique({ where: { id: intId(req.params.id, what) } });
    if (!row) throw notFound(what);
    res.json(toJson(row));
  });

  router.patch('/:id', async (req, res) => {
    const id = intId(req.params.id, what);
    const input = parseInput(patchSchema, req.body) as Record<string, unknown>;
    res.json(toJson(await update(id, config.update ? await config.update.toData(id, input) : input)));
  });

  return Object.assign(router, { update, toJson });
}
