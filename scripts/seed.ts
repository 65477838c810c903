// `pnpm db:seed` (and `pnpm start` on an empty database): a demo advertiser, affiliate and
// offer, printed with the postback key and URLs ready to paste.
import { loadConfig, loadDotEnv, publicIngestUrl } from '@trackway/config';
import { type PrismaClient, createPrisma } from '@trackway/db';
import { generatePostbackKey, hashPostbackKey } from '@trackway/domain';

export async function seedIfEmpty(prisma: PrismaClient, ingestUrl: string, apiUrl: string): Promise<string | null> {
  if ((await prisma.advertiser.count()) > 0) return null;
  const postbackKey = generatePostbackKey();
  const advertiser = await prisma.advertiser.create({ data: { name: 'Demo Shop', postbackKeyHash: hashPostbackKey(postbackKey) } });
  const affiliate = await prisma.affiliate.create({ data: { name: 'Demo Affiliate' } });
  const offer = await prisma.offer.create({
    data: {
      advertiserId: advertiser.id,
      name: 'Demo offer: $5 per sale',
      destinationUrl: 'https://shop.example/landing?click_id={click_id}',
      currency: 'USD',
      payoutType: 'fixed',
      payoutAmount: '5.00',
      // 0 so the pasted demo can post right after the click; real offers default to 10 s.
      minCtitSeconds: 0,
    },
  });
  const click = `${ingestUrl}/click?offer_id=${offer.id}&affiliate_id=${affiliate.id}`;
  return [
    'Seeded a demo advertiser, affiliate and offer:',
    `  advertiser_id  ${advertiser.id}`,
    `  affiliate_id   ${affiliate.id}`,
    `  offer_id       ${offer.id}`,
    `  postback key   ${postbackKey}   (shown once; stored only as a hash)`,
    '',
    `Click URL:     ${click}`,
    `Postback URL:  ${ingestUrl}/postback?key=${postbackKey}&click_id={click_id}&order_id={order_id}&amount={amount}`,
    '',
    'Try it (paste into a shell):',
    `  CLICK_ID=$(curl -s -o /dev/null -w '%{redirect_url}' '${click}' | sed 's/.*click_id=//')`,
    `  curl -s "${ingestUrl}/postback?key=${postbackKey}&click_id=$CLICK_ID&order_id=ORDER-1001&amount=49.90"`,
    `  curl -s -H "Authorization: Bearer $(pnpm -s run token)" ${apiUrl}/v1/conversions`,
  ].join('\n');
}

if (require.main === module) {
  loadDotEnv();
  const config = loadConfig();
  const prisma = createPrisma(config.DATABASE_URL);
  const ingestUrl = publicIngestUrl(config);
  seedIfEmpty(prisma, ingestUrl, `http://127.0.0.1:${config.API_PORT}`)
    .then((text) => console.log(text ?? 'The database already has advertisers; nothing seeded.'))
    .finally(() => prisma.$disconnect())
    .catch((error) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    });
}
