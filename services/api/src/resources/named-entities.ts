import type { EntityStatus } from '@trackway/domain';
import { notFound } from '@trackway/http';
import type { InvalidationKind } from '@trackway/queues';
import type { ApiDeps } from '../deps';
import { listPage } from '../pagination';
import type { EntityRow } from '../representations';

/*
 * What advertisers, affiliates and offers (named entities: name and status, integer ids) do alike:
 * list, get and update rows of their table (offers list with their own filter).
 */

/** The slice of a Prisma delegate that named entities share. */
export interface EntityDelegate<Row extends EntityRow> {
  findMany(args: { where: { status?: EntityStatus; id?: { lt: number } }; orderBy: { id: 'desc' }; take: number }): Promise<Row[]>;
  findUnique(args: { where: { id: number } }): Promise<Row | null>;
  findUniqueOrThrow(args: { where: { id: number } }): Promise<Row>;
  updateMany(args: { where: { id: number }; data: Record<string, unknown> }): Promise<{ count: number }>;
}

export function namedEntities<Row extends EntityRow, J>(o: {
  what: string;
  kind: InvalidationKind;
  delegate: (deps: ApiDeps) => EntityDelegate<Row>;
  json: (row: Row) => J;
}) {
  return {
    async list(deps: ApiDeps, query: { cursor?: string; limit: number; status?: EntityStatus }) {
      return listPage(query, 'int', ({ id, ...keyset }) => o.delegate(deps).findMany({ where: { status: query.status, id }, ...keyset }), o.json);
    },
    async get(deps: ApiDeps, id: number) {
      const row = await o.delegate(deps).findUnique({ where: { id } });
      if (!row) throw notFound(o.what);
      return o.json(row);
    },
    /** Writes the columns, tells caching processes, and answers the row as it is now. */
    async update(deps: ApiDeps, id: number, data: Record<string, unknown>) {
      const delegate = o.delegate(deps);
      const { count } = await delegate.updateMany({ where: { id }, data });
      if (count === 0) throw notFound(o.what);
      await deps.invalidate(o.kind, id);
      return delegate.findUniqueOrThrow({ where: { id } });
    },
  };
}
