import type { PrismaClient } from '@trackway/db';
import { type CachedLookup, cachedLookup } from '@trackway/runtime';

export interface OfferSummary {
  id: number;
  advertiserId: number;
  destinationUrl: string;
  status: 'active' | 'inactive';
}
export interface AdvertiserSummary {
  id: number;
  status: 'active' | 'inactive';
}
export interface AffiliateSummary {
  id: number;
  status: 'active' | 'inactive';
}

export interface IngestLookups {
  advertiserByKeyHash: CachedLookup<AdvertiserSummary>;
  offer: CachedLookup<OfferSummary>;
  affiliate: CachedLookup<AffiliateSummary>;
}

const TTL_MS = 30_000;

// The hot path's only database reads, all cached: the HTTP handlers never wait on Postgres
// for a warm key, offer or affiliate.
export function createLookups(prisma: PrismaClient): IngestLookups {
  const id = (key: string) => (/^\d{1,9}$/.test(key) ? Number(key) : null);
  return {
    advertiserByKeyHash: cachedLookup(
      (hash) => prisma.advertiser.findUnique({ where: { postbackKeyHash: hash }, select: { id: true, status: true } }),
      { ttlMs: TTL_MS },
    ),
    offer: cachedLookup(
      async (key) =>
        id(key) === null
          ? null
          : prisma.offer.findUnique({
              where: { id: id(key)! },
              select: { id: true, advertiserId: true, destinationUrl: true, status: true },
            }),
      { ttlMs: TTL_MS },
    ),
    affiliate: cachedLookup(
      async (key) => (id(key) === null ? null : prisma.affiliate.findUnique({ where: { id: id(key)! }, select: { id: true, status: true } })),
      { ttlMs: TTL_MS },
    ),
  };
}
