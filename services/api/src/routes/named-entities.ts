import { notFound, parseInput, text } from '@trackway/http';
import type { InvalidationKind } from '@trackway/queues';
import { Router } from 'express';
import { z } from 'zod';
import type { ApiDeps } from '../deps';
import { decodeCursor, listQuery, page, parseListQuery } from '../pagination';
import { intId } from './params';

export type EntityRow = { id: number; name: string; status: string; createdAt: Date; updatedAt: Date };
type Status = 'active' | 'inactive';

// The slice of a Prisma delegate that advertisers and affiliates share.
interface EntityDelegate {
  create(args: { data: never }): Promise<EntityRow>;
  findMany(args: { where: { status?: Status; id?: { lt: number } }; orderBy: { id: 'desc' }; take: number }): Promise<EntityRow[]>;
  findUnique(args: { where: { id: number } }): Promise<EntityRow | null>;
  findUniqueOrThrow(args: { where: { id: number } }): Promise<EntityRow>;
  updateMany(args: { where: { id: number }; data: Record<string, unknown> }): Promise<{ count: number }>;
}

export const entityJson = (a: EntityRow) => ({
  id: a.id,
  name: a.name,
  status: a.status,
  created_at: a.createdAt.toISOString(),
  updated_at: a.updatedAt.toISOString(),
});

const name = text({ trim: true, min: 1, max: 200 });
const createSchema = z.strictObject({ name });
const updateSchema = z.strictObject({ name: name.optional(), status: z.enum(['active', 'inactive']).optional() });
const listSchema = listQuery({ status: z.enum(['active', 'inactive']).optional() });

/** Create, list, get and update for a named entity (advertisers, affiliates). */
export function namedEntityRouter(
  { invalidate }: ApiDeps,
  config: {
    what: string;
    kind: InvalidationKind;
    delegate: EntityDelegate;
    /** Extra columns for a new row, and extra fields shown once in the 201 response. */
    onCreate?: () => { data: Record<string, unknown>; shown: Record<string, unknown> };
    /** Fields POST accepts beyond name, and the columns they become. */
    create?: { fields: z.ZodRawShape; toData: (input: Record<string, unknown>) => Record<string, unknown> };
    /** Fields PATCH accepts beyond name and status, and the columns they become (checked against the row). */
    update?: { fields: z.ZodRawShape; toData: (id: number, input: Record<string, unknown>) => Promise<Record<string, unknown>> };
    /** Fields every answer shows beyond entityJson's. */
    json?: (row: never) => Record<string, unknown>;
  },
): Router & { update: (id: number, data: Record<string, unknown>) => Promise<EntityRow>; toJson: (row: EntityRow) => Record<string, unknown> } {
  const { what, kind, delegate } = config;
  const router = Router();
  const patchSchema = config.update ? updateSchema.extend(config.update.fields) : updateSchema;
  const postSchema = config.create ? createSchema.extend(config.create.fields) : createSchema;
  const toJson = (row: EntityRow) => ({ ...entityJson(row), ...config.json?.(row as never) });
  const update = async (id: number, data: Record<string, unknown>) => {
    const { count } = await delegate.updateMany({ where: { id }, data });
    if (count === 0) throw notFound(what);
    await invalidate(kind, id);
    return delegate.findUniqueOrThrow({ where: { id } });
  };

  router.post('/', async (req, res) => {
    const input = parseInput(postSchema, req.body) as Record<string, unknown> & { name: string };
    const extra = config.onCreate?.() ?? { data: {}, shown: {} };
    const row = await delegate.create({ data: { name: input.name, ...config.create?.toData(input), ...extra.data } as never });
    res.status(201).json({ ...toJson(row), ...extra.shown });
  });

  router.get('/', async (req, res) => {
    const q = parseListQuery(listSchema, req.query);
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
