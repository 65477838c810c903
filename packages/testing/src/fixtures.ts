import type { PrismaClient } from '@trackway/db';
import { generatePostbackKey, hashPostbackKey } from '@trackway/domain';

export interface Fixture {
  advertiserId: number;
  postbackKey: string;
  affiliateId: number;
  offerId: number;
}

/** An active advertiser (with its postback key), affiliate and offer. */
export async function createFixture(
  prisma: PrismaClient,
  offer: Partial<{
    payoutType: 'fixed' | 'percent';
    payoutAmount: string;
    payoutPercent: string;
    currency: string;
    destinationUrl: string;
    attributionWindowDays: number;
    minCtitSeconds: number;
    amountCap: string | null;
  }> = {},
): Promise<Fixture> {
  const postbackKey = generatePostbackKey();
  const advertiser = await prisma.advertiser.create({ data: { name: 'Acme Shop', postbackKeyHash: hashPostbackKey(postbackKey) } });
  const affiliate = await prisma.affiliate.create({ data: { name: 'Deal Blog' } });
  const created = await prisma.offer.create({
    data: {
      advertiserId: advertiser.id,
      name: 'Acme spring sale',
      destinationUrl: offer.destinationUrl ?? 'https://shop.example/landing?ref=trackway',
      currency: offer.currency ?? 'USD',
      payoutType: offer.payoutType ?? 'fixed',
      payoutAmount: (offer.payoutType ?? 'fixed') === 'fixed' ? (offer.payoutAmount ?? '5.00') : null,
      payoutPercent: offer.payoutType === 'percent' ? (offer.payoutPercent ?? '10') : null,
      attributionWindowDays: offer.attributionWindowDays ?? 30,
      minCtitSeconds: offer.minCtitSeconds ?? 0,
      amountCap: offer.amountCap ?? null,
    },
  });
  return { advertiserId: advertiser.id, postbackKey, affiliateId: affiliate.id, offerId: created.id };
}
