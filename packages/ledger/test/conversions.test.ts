import { inTransaction } from '@trackway/db';
import { type ConversionState, changeConversion, conversionKey, conversionWrites, newId, planReview } from '@trackway/domain';
import { type TestDatabase, createTestDatabase } from '@trackway/testing';
import { lockConversion, lockConversionsByKey, writeConversions } from '../src';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

/** A pending lead of 0 on a 10 % offer: no commission yet. */
async function lead(orderId: string) {
  const id = newId('conversion');
  await db.prisma.conversion.create({
    data: {
      id,
      advertiserId: 1,
      offerId: 1,
      affiliateId: 1,
      clickId: 'c',
      orderId,
      event: 'conversion',
      status: 'pending',
      amount: '0',
      currency: 'USD',
      payout: '0',
      payoutCurrency: 'USD',
      clickedAt: new Date(),
      updatedAt: new Date(),
    },
  });
  return id;
}

const write = (client: Parameters<typeof writeConversions>[0], before: ConversionState, after: ConversionState, events = []) =>
  writeConversions(client, conversionWrites(new Map([[conversionKey(before), before]]), new Map([[conversionKey(before), after]]), [{ events }]), new Date());

describe('locking a conversion another transaction is changing', () => {
  it.each([
    ['by id (a review)', (client: Parameters<typeof lockConversion>[0], c: ConversionState) => lockConversion(client, c.id)],
    ['by key (a batch)', async (client: Parameters<typeof lockConversion>[0], c: ConversionState) => (await lockConversionsByKey(client, [c]))[0]],
  ])('%s reads the commission that transaction created, once it has waited for it', async (_how, lock) => {
    const id = await lead(`O-${newId('event')}`);
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const before = (await lockConversion(client, id))!;
      expect(before.commission).toBeNull();
      // The sale: 100.00 on a 10 % offer creates the commission, not yet committed.
      const change = changeConversion(
        before,
        { status: 'approved', holdReason: null, amount: { value: '100', offer: { payoutType: 'percent', payoutPercent: '10' } } },
        new Date(),
      );
      if (change.refused) throw new Error('refused');
      await write(client, before, change.after);
      // Another transaction locks it meanwhile: it waits, and must then see the commission.
      const waiting = inTransaction(db.pool, async (other) => {
        const seen = (await lock(other, before))!;
        const review = planReview(seen, 'rejected', new Date());
        if (review.kind === 'changed') await write(other, seen, review.after);
        return seen;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await client.query('COMMIT');
      const seen = await waiting;
      expect(seen).toMatchObject({ status: 'approved', amount: '100.0000', payout: '10.0000' });
      expect(seen.commission).toMatchObject({ amount: '10.0000', status: 'approved' });
      // The review voided the one commission (it did not try to create a second).
      const commissions = await db.prisma.commission.findMany({ where: { conversionId: id } });
      expect(commissions.map((c) => [c.amount.toString(), c.status])).toEqual([['10', 'voided']]);
    } finally {
      client.release();
    }
  });
});
