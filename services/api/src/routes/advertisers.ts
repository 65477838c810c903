import { CONVERSION_STATUSES, DEDUPE_MODES, POSTBACK_FIELDS, PRESET_NAMES, type PostbackFormat, generatePostbackKey, hashPostbackKey, postbackFormatProblems } from '@trackway/domain';
import { HttpError, badRequest, notFound } from '@trackway/http';
import { isAddressOrCidr } from '@trackway/runtime';
import { generateSecret } from '@trackway/webhooks';
import type { Router } from 'express';
import { z } from 'zod';
import type { ApiDeps } from '../deps';
import { namedEntityRouter } from './named-entities';
import { intId } from './params';

/** After a rotation, the previous signing secret keeps verifying this long. */
const SIGNING_OVERLAP_MS = 24 * 3600 * 1000;

function newKey() {
  // The key is returned this once; only its hash is stored.
  const postbackKey = generatePostbackKey();
  return { data: { postbackKeyHash: hashPostbackKey(postbackKey) }, shown: { postback_key: postbackKey } };
}

interface AdvertiserRow {
  requireSignedPostbacks: boolean;
  allowedIps: string[] | null;
  postbackRateLimitPerSecond: number | null;
  signingSecretSealed: string | null;
  previousSigningSecretExpiresAt: Date | null;
  postbackFormat: unknown;
}

/** The front-door settings every advertiser answer shows (never the secret itself). */
const advertiserJson = (row: AdvertiserRow) => ({
  require_signed_postbacks: row.requireSignedPostbacks,
  signing_secret_set: row.signingSecretSealed !== null,
  previous_signing_secret_expires_at: row.previousSigningSecretExpiresAt && row.previousSigningSecretExpiresAt > new Date() ? row.previousSigningSecretExpiresAt.toISOString() : null,
  allowed_ips: row.allowedIps ?? [],
  postback_rate_limit_per_second: row.postbackRateLimitPerSecond,
  postback_format: (row.postbackFormat as PostbackFormat | null) ?? { preset: 'trackway' },
});

/**
 * The advertiser's postback dialect: a preset, and what overrides it. Names are checked for
 * clashes too (postbackFormatProblems): one name read for two fields is refused.
 */
const postbackFormat = z
  .strictObject({
    preset: z.enum(PRESET_NAMES),
    params: z.partialRecord(z.enum(POSTBACK_FIELDS), z.array(z.string()).min(1, 'lists at least one name').max(20, 'at most 20 names')).optional(),
    status_values: z
      .record(z.string().trim().min(1).max(64), z.enum(CONVERSION_STATUSES))
      .refine((values) => Object.keys(values).length <= 50, 'at most 50 values')
      .optional(),
    decimal_comma: z.boolean().optional(),
    dedupe: z.enum(DEDUPE_MODES).optional(),
  })
  .superRefine((format, ctx) => {
    for (const [path, message] of Object.entries(postbackFormatProblems(format))) ctx.addIssue({ code: 'custom', path: path.split('.').slice(1), message });
  });
const formatField = { postback_format: postbackFormat.optional() };

const frontDoorFields = {
  require_signed_postbacks: z.boolean().optional(),
  allowed_ips: z
    .array(z.string().refine(isAddressOrCidr, 'must be an IP address or a CIDR such as 203.0.113.0/24'))
    .max(100, 'at most 100 entries')
    .optional(),
  postback_rate_limit_per_second: z.number().int().min(0).max(1_000_000).nullable().optional(),
  ...formatField,
};

export function advertisersRouter(deps: ApiDeps): Router {
  const { prisma, box, invalidate } = deps;
  const router = namedEntityRouter(deps, {
    what: 'Advertiser',
    kind: 'advertiser',
    delegate: deps.prisma.advertiser as never,
    onCreate: newKey,
    create: { fields: formatField, toData: (input) => (input.postback_format === undefined ? {} : { postbackFormat: input.postback_format }) },
    json: advertiserJson,
    update: {
      fields: frontDoorFields,
      async toData(id, input) {
        const { require_signed_postbacks: requireSigned, allowed_ips: allowedIps, postback_rate_limit_per_second: rateLimit, postback_format: format, ...rest } = input as z.infer<z.ZodObject<typeof frontDoorFields>> & Record<string, unknown>;
        if (requireSigned === true) {
          const row = await prisma.advertiser.findUnique({ where: { id }, select: { signingSecretSealed: true } });
          if (!row) throw notFound('Advertiser');
          if (!row.signingSecretSealed) throw badRequest({ require_signed_postbacks: 'the advertiser has no signing secret yet: POST /v1/advertisers/{id}/rotate-signing-secret first' });
        }
        return {
          ...rest,
          ...(requireSigned === undefined ? {} : { requireSignedPostbacks: requireSigned }),
          ...(allowedIps === undefined ? {} : { allowedIps }),
          ...(rateLimit === undefined ? {} : { postbackRateLimitPerSecond: rateLimit }),
          ...(format === undefined ? {} : { postbackFormat: format }),
        };
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
