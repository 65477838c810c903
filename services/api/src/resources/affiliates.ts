import { intIdPath } from '../path-params';
import { Affiliate, AffiliateCreate, AffiliateUpdate, EntityList, entityJson, pageOf } from '../representations';
import { resource, route } from '../route';
import { namedEntities } from './named-entities';

const affiliates = namedEntities({ what: 'Affiliate', kind: 'affiliate', delegate: (deps) => deps.prisma.affiliate, json: entityJson });
const id = intIdPath('Affiliate');

export default resource({ tag: 'Affiliates', base: '/v1/affiliates', description: 'The partners who send traffic through /click and earn commissions.' }, [
  route({
    method: 'post',
    path: '/v1/affiliates',
    summary: 'Create an affiliate',
    description: 'An affiliate is active from the start.',
    body: AffiliateCreate,
    answer: { status: 201, description: 'The new affiliate.', schema: Affiliate },
    handler: async ({ body, deps }) => entityJson(await deps.prisma.affiliate.create({ data: { name: body.name } })),
  }),
  route({
    method: 'get',
    path: '/v1/affiliates',
    summary: 'List affiliates',
    description: 'Newest first; filter by status.',
    query: EntityList,
    answer: { status: 200, description: 'A page, newest first.', schema: pageOf(Affiliate, 'AffiliatePage') },
    handler: ({ query, deps }) => affiliates.list(deps, query),
  }),
  route({
    method: 'get',
    path: '/v1/affiliates/{id}',
    summary: 'Get an affiliate',
    description: 'The affiliate, whatever its status.',
    params: id,
    answer: { status: 200, description: 'The affiliate.', schema: Affiliate },
    handler: ({ params, deps }) => affiliates.get(deps, params.id),
  }),
  route({
    method: 'patch',
    path: '/v1/affiliates/{id}',
    summary: 'Update an affiliate',
    description: "Rename it, or make it inactive: /click refuses an inactive affiliate's traffic.",
    params: id,
    body: AffiliateUpdate,
    answer: { status: 200, description: 'The affiliate, updated.', schema: Affiliate },
    handler: async ({ params, body, deps }) => entityJson(await affiliates.update(deps, params.id, body)),
  }),
]);
