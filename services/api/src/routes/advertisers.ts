import { generatePostbackKey, hashPostbackKey } from '@trackway/domain';
import { HttpError, badRequest, notFound } from '@trackway/http';
import { generateSecret } from '@trackway/webhooks';
import type { Router } from 'express';
import type { ApiDeps } from '../deps';
import { AdvertiserCreate, AdvertiserUpdate, type AdvertiserSettingsInput, advertiserJson } from '../representations';
import { namedEntityRouter } from './named-entities';
import { intId } from './params';

/** After a rotation, the previous signing secret keeps verifying this long. */
const SIGNING_OVERLAP_MS = 24 * 3600 * 1000;

function newKey() {
  // The key is returned this once; only its hash is stored.
  const postbackKey = generatePostbackKey();
  return { data: { postbackKeyHash: hashPostbackKey(postbackKey) }, shown: { postback_key: postbackKey } };
}

export function advertisersRouter(deps: ApiDeps): Router {
  const { prisma, box, invalidate } = deps;
  const router = namedEntityRouter(deps, {
    what: 'Advertiser',
    kind: 'advertiser',
    delegate: deps.prisma.advertiser as never,
    createSchema: AdvertiserCreate,
    // Prisma leaves a field that is undefined out of the write.
    onCreate: (input) => {
      const key = newKey();
      return { ...key, data: { ...key.data, postbackFormat: (input as AdvertiserSettingsInput).postback_format } };
    },
    json: advertiserJson,
    update: {
      schema: AdvertiserUpdate,
      async toData(id, input) {
        const {
          require_signed_postbacks: requireSigned,
          allowed_ips: allowedIps,
          postback_rate_limit_per_second: rateLimit,
          postback_format: format,
          ...rest
        } = input as AdvertiserSettingsInput & Record<string, unknown>;
        if (requireSigned === true) {
          const row = await prisma.advertiser.findUnique({ where: { id }, select: { signingSecretSealed: true } });
          if (!row) throw notFound('Advertiser');
          if (!row.signingSecretSealed)
            throw badRequest({ require_signed_postbacks: 'the advertiser has no signing secret yet: POST /v1/advertisers/{id}/rotate-signing-secret first' });
        }
        return { ...rest, requireSignedPostbacks: requireSigned, allowedIps, postbackRateLimitPerSecond: rateLimit, postbackFormat: format };
      },
    },
  });
  // A leaked key is replaced at once: the old one stops working everywhere within a cache TTL.
  router.post('/:id/rotate-key', async (req, res) => {
    const key = newKey();
    const row = await router.update(intId(req.params.id, 'Advertiser'), key.data);
    res.set('Cache-Control', 'no-store').json({ ...router.toJson(row), ...key.shown });
  });
  // Signed postbacks (Standard Webhooks): a new secret, shown this once and stored sealed;
  // the previous one keeps verifying for 24 h so the advertiser can switch without a gap.
  router.post('/:id/rotate-signing-secret', async (req, res) => {
    const id = intId(req.params.id, 'Advertiser');
    const current = await prisma.advertiser.findUnique({ where: { id }, select: { signingSecretSealed: true } });
    if (!current) throw notFound('Advertiser');
    const secret = generateSecret();
    const expiresAt = current.signingSecretSealed ? new Date(Date.now() + SIGNING_OVERLAP_MS) : null;
    // Conditional on the secret we read: of two concurrent rotations, one wins, the other is told.
    const { count } = await prisma.advertiser.updateMany({
      where: { id, signingSecretSealed: current.signingSecretSealed },
      data: { signingSecretSealed: box.seal(secret), previousSigningSecretSealed: current.signingSecretSealed, previousSigningSecretExpiresAt: expiresAt },
    });
    if (count === 0) throw new HttpError(409, 'conflict', 'The signing secret was rotated concurrently; fetch the advertiser and retry.');
    await invalidate('advertiser', id);
    res.set('Cache-Control', 'no-store').json({ signing_secret: secret, previous_signing_secret_expires_at: expiresAt?.toISOString() ?? null });
  });
  return router;
}

export function affiliatesRouter(deps: ApiDeps): Router {
  return namedEntityRouter(deps, { what: 'Affiliate', kind: 'affiliate', delegate: deps.prisma.affiliate as never });
}
