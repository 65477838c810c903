import type { PrismaClient } from '@trackway/db';
import { type EntityStatus, type ResolvedFormat, type SecretBox, readPostbackFormat, resolveFormat } from '@trackway/domain';
import { type CachedLookup, addressMatcher, cachedLookup } from '@trackway/runtime';

export interface OfferSummary {
  id: number;
  advertiserId: number;
  destinationUrl: string;
  status: EntityStatus;
}
export interface AdvertiserSummary {
  id: number;
  status: EntityStatus;
  requireSignedPostbacks: boolean;
  /** Its signing secrets, opened: the current one, and the previous one until it expires. */
  signingSecrets: { secret: string; expiresAt: number | null }[];
  /** Whether an address may post for it; null: any. */
  allows: ((address: string | undefined) => boolean) | null;
  postbackRateLimitPerSecond: number | null;
  /** Its postback dialect, the preset filled in. */
  format: ResolvedFormat;
}
export interface AffiliateSummary {
  id: number;
  status: EntityStatus;
}

export interface IngestLookups {
  advertiserByKeyHash: CachedLookup<AdvertiserSummary>;
  offer: CachedLookup<OfferSummary>;
  affiliate: CachedLookup<AffiliateSummary>;
}

const TTL_MS = 30_000;

// The hot path's only database reads, all cached: the HTTP handlers never wait on Postgres
// for a warm key, offer or affiliate. Unknown keys are cached too (for missTtlMs), so a client
// repeating a wrong key does not reach Postgres each time; random keys are bounded by
// AUTH_FAILURE_LIMIT. `box` opens signing secrets (SECRETS_KEY).
// A stored format this version cannot read (written by hand, or by a later version) is read as
// Trackway's own, and reported through `onInvalidFormat` each time the advertiser is loaded.
export function createLookups(prisma: PrismaClient, box?: SecretBox, onInvalidFormat?: (advertiserId: number, problem: string) => void): IngestLookups {
  const id = (key: string) => (/^\d{1,9}$/.test(key) ? Number(key) : null);
  const formatOf = (advertiserId: number, stored: unknown) => {
    const { format, problem } = readPostbackFormat(stored);
    if (problem) onInvalidFormat?.(advertiserId, problem);
    return format;
  };
  const open = (sealed: string) => {
    if (!box) throw new Error('signing secrets cannot be opened: ingest has no SECRETS_KEY');
    return box.open(sealed);
  };
  return {
    advertiserByKeyHash: cachedLookup(
      async (hash) => {
        const row = await prisma.advertiser.findUnique({
          where: { postbackKeyHash: hash },
          select: {
            id: true,
            status: true,
            requireSignedPostbacks: true,
            signingSecretSealed: true,
            previousSigningSecretSealed: true,
            previousSigningSecretExpiresAt: true,
            allowedIps: true,
            postbackRateLimitPerSecond: true,
            postbackFormat: true,
          },
        });
        if (!row) return null;
        const secrets: AdvertiserSummary['signingSecrets'] = [];
        if (row.signingSecretSealed) secrets.push({ secret: open(row.signingSecretSealed), expiresAt: null });
        if (row.previousSigningSecretSealed && row.previousSigningSecretExpiresAt) {
          secrets.push({ secret: open(row.previousSigningSecretSealed), expiresAt: row.previousSigningSecretExpiresAt.getTime() });
        }
        return {
          id: row.id,
          status: row.status,
          requireSignedPostbacks: row.requireSignedPostbacks,
          signingSecrets: secrets,
          allows: addressMatcher(row.allowedIps ?? []),
          postbackRateLimitPerSecond: row.postbackRateLimitPerSecond,
          format: resolveFormat(formatOf(row.id, row.postbackFormat)),
        };
      },
      { ttlMs: TTL_MS, missTtlMs: TTL_MS, staleOnError: true },
    ),
    offer: cachedLookup(
      async (key) =>
        id(key) === null
          ? null
          : prisma.offer.findUnique({
              where: { id: id(key)! },
              select: { id: true, advertiserId: true, destinationUrl: true, status: true },
            }),
      { ttlMs: TTL_MS, staleOnError: true },
    ),
    affiliate: cachedLookup(
      async (key) => (id(key) === null ? null : prisma.affiliate.findUnique({ where: { id: id(key)! }, select: { id: true, status: true } })),
      { ttlMs: TTL_MS, staleOnError: true },
    ),
  };
}
