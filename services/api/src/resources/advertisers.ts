import { generatePostbackKey, hashPostbackKey } from '@trackway/domain';
import { HttpError, badRequest, notFound } from '@trackway/http';
import { generateSecret } from '@trackway/webhooks';
import type { ApiDeps } from '../deps';
import { intIdPath } from '../path-params';
import {
  Advertiser,
  AdvertiserCreate,
  AdvertiserUpdate,
  AdvertiserWithKey,
  EntityList,
  SigningSecretRotated,
  advertiserJson,
  pageOf,
} from '../representations';
import { resource, route } from '../route';
import { namedEntities } from './named-entities';

/** After a rotation, the previous signing secret keeps verifying this long. */
const SIGNING_OVERLAP_MS = 24 * 3600 * 1000;

const advertisers = namedEntities({ what: 'Advertiser', kind: 'advertiser', delegate: (deps) => deps.prisma.advertiser, json: advertiserJson });
const id = intIdPath('Advertiser');

function newKey() {
  // The key is returned this once; only its hash is stored.
  const postbackKey = generatePostbackKey();
  return { hash: hashPostbackKey(postbackKey), shown: postbackKey };
}

/** require_signed_postbacks needs a secret to verify with. */
async function checkCanRequireSigned(deps: ApiDeps, advertiserId: number) {
  const row = await deps.prisma.advertiser.findUnique({ where: { id: advertiserId }, select: { signingSecretSealed: true } });
  if (!row) throw notFound('Advertiser');
  if (!row.signingSecretSealed)
    throw badRequest({ require_signed_postbacks: 'the advertiser has no signing secret yet: POST /v1/advertisers/{id}/rotate-signing-secret first' });
}

export default resource(
  {
    tag: 'Advertisers',
    base: '/v1/advertisers',
    description: 'The merchants whose servers report conversions (postbacks), each with its postback key and format.',
  },
  [
    route({
      method: 'post',
      path: '/v1/advertisers',
      summary: 'Create an advertiser',
      description: 'The answer shows the postback key this once; Trackway keeps only its hash.',
      body: AdvertiserCreate,
      answer: { status: 201, description: 'The new advertiser, with its postback key.', schema: AdvertiserWithKey },
      handler: async ({ body, deps }) => {
        const key = newKey();
        // Prisma leaves a field that is undefined out of the write.
        const row = await deps.prisma.advertiser.create({ data: { name: body.name, postbackKeyHash: key.hash, postbackFormat: body.postback_format } });
        return { ...advertiserJson(row), postback_key: key.shown };
      },
    }),
    route({
      method: 'get',
      path: '/v1/advertisers',
      summary: 'List advertisers',
      description: 'Newest first; filter by status.',
      query: EntityList,
      answer: { status: 200, description: 'A page, newest first.', schema: pageOf(Advertiser, 'AdvertiserPage') },
      handler: ({ query, deps }) => advertisers.list(deps, query),
    }),
    route({
      method: 'get',
      path: '/v1/advertisers/{id}',
      summary: 'Get an advertiser',
      description: 'Its front-door settings and postback format; never its key or secrets.',
      params: id,
      answer: { status: 200, description: 'The advertiser.', schema: Advertiser },
      handler: ({ params, deps }) => advertisers.get(deps, params.id),
    }),
    route({
      method: 'patch',
      path: '/v1/advertisers/{id}',
      summary: 'Update an advertiser',
      description: 'require_signed_postbacks needs a signing secret first (rotate-signing-secret).',
      params: id,
      body: AdvertiserUpdate,
      answer: { status: 200, description: 'The advertiser, updated.', schema: Advertiser },
      handler: async ({ params, body, deps }) => {
        const { require_signed_postbacks, allowed_ips, postback_rate_limit_per_second, postback_format, ...rest } = body;
        if (require_signed_postbacks === true) await checkCanRequireSigned(deps, params.id);
        const row = await advertisers.update(deps, params.id, {
          ...rest,
          requireSignedPostbacks: require_signed_postbacks,
          allowedIps: allowed_ips,
          postbackRateLimitPerSecond: postback_rate_limit_per_second,
          postbackFormat: postback_format,
        });
        return advertiserJson(row);
      },
    }),
    route({
      method: 'post',
      path: '/v1/advertisers/{id}/rotate-key',
      summary: 'Replace the postback key',
      description: 'A leaked key is replaced at once: the old one stops working everywhere within a cache TTL.',
      params: id,
      answer: { status: 200, description: 'The advertiser, with its new key (shown this once).', schema: AdvertiserWithKey },
      handler: async ({ params, deps }) => {
        const key = newKey();
        const row = await advertisers.update(deps, params.id, { postbackKeyHash: key.hash });
        return { ...advertiserJson(row), postback_key: key.shown };
      },
    }),
    route({
      method: 'post',
      path: '/v1/advertisers/{id}/rotate-signing-secret',
      summary: 'Replace the postback signing secret',
      description:
        'Signed postbacks (Standard Webhooks): a new secret, shown this once and stored sealed; the previous one keeps verifying for 24 h so the advertiser can switch without a gap.',
      params: id,
      answer: { status: 200, description: 'The new secret, shown this once.', schema: SigningSecretRotated },
      errors: { 409: 'conflict: rotated concurrently; fetch the advertiser and retry.' },
      handler: async ({ params, deps }) => {
        const current = await deps.prisma.advertiser.findUnique({ where: { id: params.id }, select: { signingSecretSealed: true } });
        if (!current) throw notFound('Advertiser');
        const secret = generateSecret();
        const expiresAt = current.signingSecretSealed ? new Date(Date.now() + SIGNING_OVERLAP_MS) : null;
        // Conditional on the secret we read: of two concurrent rotations, one wins, the other is told.
        const { count } = await deps.prisma.advertiser.updateMany({
          where: { id: params.id, signingSecretSealed: current.signingSecretSealed },
          data: {
            signingSecretSealed: deps.box.seal(secret),
            previousSigningSecretSealed: current.signingSecretSealed,
            previousSigningSecretExpiresAt: expiresAt,
          },
        });
        if (count === 0) throw new HttpError(409, 'conflict', 'The signing secret was rotated concurrently; fetch the advertiser and retry.');
        await deps.invalidate('advertiser', params.id);
        return { signing_secret: secret, previous_signing_secret_expires_at: expiresAt?.toISOString() ?? null };
      },
    }),
  ],
);
