// The clicks worker folds the clicks it writes into the report rows a moment later (the click
// writer's own statement counts nothing), and a graceful stop folds what is left.
import { createWorkerConnection } from '@trackway/queues';
import { TEST_REDIS_URL, createFixture, waitFor } from '@trackway/testing';
import { createWorkers } from '../src/workers';
import { type AttributionHarness, startAttribution } from './helpers';

let h: AttributionHarness;
beforeAll(async () => {
  h = await startAttribution();
});
afterAll(() => h.close());

/** Clicks of the offer counted in its report rows (not the clicks read raw). */
const folded = async (offerId: number) =>
  Number(
    (
      await h.db.pool.query<{ clicks: string }>(
        `SELECT coalesce(sum(clicks), 0)::text AS clicks FROM report_offer_days WHERE zone = 'UTC' AND span = 1 AND offer_id = $1`,
        [offerId],
      )
    ).rows[0].clicks,
  );

it('folds written clicks into the report rows soon after, each once', async () => {
  const fx = await createFixture(h.db.prisma);
  const connection = createWorkerConnection(TEST_REDIS_URL);
  const workers = createWorkers({ ...h.deps, connection, clickFoldMs: 50 }, ['clicks']);
  try {
    const click = () => ({
      clickId: h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date() }),
      offerId: fx.offerId,
      affiliateId: fx.affiliateId,
      clickedAt: new Date().toISOString(),
      subs: { sub2: 'spring' },
    });
    const clicks = Array.from({ length: 7 }, click);
    await h.queues.clicks.add('clicks', { clicks });
    // The same clicks again (a job run twice): written and counted once.
    await h.queues.clicks.add('clicks', { clicks });
    await waitFor(async () => (await folded(fx.offerId)) === 7, { timeoutMs: 15_000, what: '7 clicks folded' });
    await h.queues.clicks.add('clicks', { clicks: [click(), click()] });
    await waitFor(async () => (await h.db.prisma.click.count({ where: { offerId: fx.offerId } })) === 9, { what: 'the last 2 click rows' });
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    // A graceful stop folds what is written.
    await workers.drain();
    connection.disconnect();
  }
  expect(await folded(fx.offerId)).toBe(9);
  expect(await h.db.prisma.click.count({ where: { offerId: fx.offerId } })).toBe(9);
}, 30_000);
