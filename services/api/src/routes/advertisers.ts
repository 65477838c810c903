import { generatePostbackKey, hashPostbackKey } from '@trackway/domain';
import type { Router } from 'express';
import type { ApiDeps } from '../deps';
import { entityJson, namedEntityRouter } from './named-entities';
import { intId } from './params';

function newKey() {
  // The key is returned this once; only its hash is stored.
  const postbackKey = generatePostbackKey();
  return { data: { postbackKeyHash: hashPostbackKey(postbackKey) }, shown: { postback_key: postbackKey } };
}

export function advertisersRouter(deps: ApiDeps): Router {
  const router = namedEntityRouter(deps, { what: 'Advertiser', kind: 'advertiser', delegate: deps.prisma.advertiser as never, onCreate: newKey });
  // A leaked key is replaced at once: the old one stops working everywhere within a cache TTL.
  router.post('/:id/rotate-key', async (req, res) => {
    const key = newKey();
    const row = await router.update(intId(req.params.id, 'Advertiser'), key.data);
    res.json({ ...entityJson(row), ...key.shown });
  });
  return router;
}

export function affiliatesRouter(deps: ApiDeps): Router {
  return namedEntityRouter(deps, { what: 'Affiliate', kind: 'affiliate', delegate: deps.prisma.affiliate as never });
}
