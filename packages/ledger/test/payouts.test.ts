// createPayout builds a payout in batches, one short transaction each. What these tests prove, by
// the order of events (a build held between its batches, a lock held through a whole build), never
// by timing: a payout larger than a batch is built whole; a reversal during the build commits
// before the build ends and takes its commission out (or keeps it out); a commission locked by a
// postback is passed over, not waited for; concurrent payouts never take the same commission; a
// reader sees, between batches, a pending payout whose amount is the sum of what it holds.
import { type PgClient, inTransaction } from '@trackway/db';
import { Decimal, newId, planReview } from '@trackway/domain';
import { type TestDatabase, createTestDatabase } from '@trackway/testing';
import { createPayout, lockConversion, markPayoutSent, writeConversions } from '../src';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

let nextAffiliate = 100;

interface Seeded {
  affiliateId: number;
  /** Oldest first (id order): the order a payout takes them in. */
  commissions: Array<{ id: string; conversionId: string; amount: string }>;
}

/** `count` approved conversions of a new affiliate, each with its approved, unpaid commission, in one statement each. */
async function seed(count: number, amountOf: (i: number) => string = (i) => `${(i % 9) + 1}.${String(i % 100).padStart(2, '0')}`): Promise<Seeded> {
  const affiliateId = nextAffiliate++;
  const commissions = Array.from({ length: count }, (_, i) => ({ id: newId('commission'), conversionId: newId('conversion'), amount: amountOf(i) })).sort(
    (a, b) => (a.id < b.id ? -1 : 1),
  );
  const now = new Date();
  await db.pool.query(
    `INSERT INTO conversions (id, advertiser_id, offer_id, affiliate_id, click_id, order_id, event, status, amount, currency, payout, payout_currency, clicked_at, created_at, updated_at)
     SELECT id, 1, 1, $2, 'c', 'O-' || id, 'conversion', 'approved', amount, 'USD', amount, 'USD', $3, $3, $3
       FROM json_to_recordset($1::json) AS r(id varchar, amount numeric)`,
    [JSON.stringify(commissions.map((c) => ({ id: c.conversionId, amount: c.amount }))), affiliateId, now],
  );
  await db.pool.query(
    `INSERT INTO commissions (id, conversion_id, affiliate_id, amount, currency, status, created_at, updated_at)
     SELECT id, "conversionId", $2, amount, 'USD', 'approved', $3, $3 FROM json_to_recordset($1::json) AS r(id varchar, "conversionId" varchar, amount numeric)`,
    [JSON.stringify(commissions), affiliateId, now],
  );
  return { affiliateId, commissions };
}

const sum = (amounts: Array<{ amount: string }>) => amounts.reduce((total, c) => total.plus(c.amount), new Decimal(0));
const amountsOf = (seeded: Seeded, ids: string[]) => {
  const byId = new Map(seeded.commissions.map((c) => [c.id, c]));
  return ids.map((id) => byId.get(id)!);
};

/** Rejects a conversion as a fraud review (PATCH /v1/conversions/{id}) does: the postbacks' writer, in a transaction of its own. */
async function reverseIn(client: PgClient, conversionId: string) {
  const now = new Date();
  const current = (await lockConversion(client, conversionId))!;
  const plan = planReview(current, 'rejected', now);
  if (plan.kind !== 'changed') throw new Error(`review: ${plan.kind}`);
  await writeConversions(client, plan.writes, now);
}
const reverse = (conversionId: string) => inTransaction(db.pool, (client) => reverseIn(client, conversionId));

/** The payout as another connection reads it: its amount and the sum of the commissions it holds, in one snapshot. */
async function readBack(payoutId: string) {
  const { rows } = await db.pool.query<{ status: string; amount: string; held: string; count: number }>(
    `SELECT p.status::text AS status, p.amount::text AS amount, COALESCE(sum(m.amount), 0)::text AS held, count(m.id)::int AS count
       FROM payouts p LEFT JOIN commissions m ON m.payout_id = p.id WHERE p.id = $1 GROUP BY p.id`,
    [payoutId],
  );
  return rows[0];
}

async function commissionRows(affiliateId: number) {
  const { rows } = await db.pool.query<{ id: string; status: string; payout_id: string | null }>(
    'SELECT id, status::text AS status, payout_id FROM commissions WHERE affiliate_id = $1 ORDER BY id',
    [affiliateId],
  );
  return rows;
}

describe('a payout larger than one batch', () => {
  it('is built whole, batch by batch, and a reader sees between batches a pending payout worth exactly what it holds', async () => {
    const seeded = await seed(2500);
    const seen: Array<{ batch: number; taken: number; status: string; count: number; amountIsHeld: boolean }> = [];
    const built = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), {
      batchSize: 1000,
      afterBatch: async ({ payoutId, batch, taken }) => {
        const read = await readBack(payoutId);
        seen.push({ batch, taken, status: read.status, count: read.count, amountIsHeld: new Decimal(read.amount).equals(read.held) });
      },
    });
    expect(seen).toEqual([
      { batch: 1, taken: 1000, status: 'pending', count: 1000, amountIsHeld: true },
      { batch: 2, taken: 1000, status: 'pending', count: 2000, amountIsHeld: true },
    ]);
    expect(built!.commissionIds).toEqual(seeded.commissions.map((c) => c.id));
    expect(built!.hasMore).toBe(false);
    expect(built!.payout).toMatchObject({ affiliateId: seeded.affiliateId, currency: 'USD', status: 'pending' });
    expect(new Decimal(built!.payout.amount.toString()).equals(sum(seeded.commissions))).toBe(true);
    expect((await commissionRows(seeded.affiliateId)).every((c) => c.payout_id === built!.payout.id)).toBe(true);
    // Nothing is left: the next call has nothing to pay.
    expect(await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), { batchSize: 1000 })).toBeNull();
  });

  it('rests after each batch but the last niceRatio times as long as the batch took (PAYOUT_NICE_RATIO), and takes the same commissions', async () => {
    const seeded = await seed(95);
    const marks: Array<{ at: number; ms: number }> = [];
    const built = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), {
      batchSize: 20,
      niceRatio: 3,
      afterBatch: ({ ms }) => {
        marks.push({ at: performance.now(), ms });
      },
    });
    const ended = performance.now();
    expect(built!.commissionIds).toEqual(seeded.commissions.map((c) => c.id));
    // Batches 1–4 are reported (the 5th, of 15, is the last: no rest after it).
    expect(marks.map((m) => m.ms > 0)).toEqual([true, true, true, true]);
    // From one batch's report to the next: at least its rest (3 × its time) and the next batch's
    // time, less 2 ms (a timer's delay is whole milliseconds, counted from the event loop's clock,
    // which may lag performance.now(): CI saw one fire 1.1 ms short).
    for (let i = 1; i < marks.length; i++) expect(marks[i].at - marks[i - 1].at).toBeGreaterThanOrEqual(3 * marks[i - 1].ms + marks[i].ms - 2);
    expect(ended - marks[3].at).toBeGreaterThanOrEqual(3 * marks[3].ms - 2);
  });

  it('stops where it is full (PAYOUT_AMOUNT_MAX) in a later batch, and says that more waits (hasMore)', async () => {
    const seeded = await seed(5, (i) => (i < 4 ? '30000000000000' : '1'));
    const first = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), { batchSize: 2 });
    expect([first!.commissionIds, first!.payout.amount.toString(), first!.hasMore]).toEqual([
      seeded.commissions.slice(0, 3).map((c) => c.id),
      '90000000000000.0000',
      true,
    ]);
    const second = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), { batchSize: 2 });
    expect([second!.commissionIds, second!.payout.amount.toString(), second!.hasMore]).toEqual([
      seeded.commissions.slice(3).map((c) => c.id),
      '30000000000001.0000',
      false,
    ]);
  });
});

describe('a reversal while a payout is being built', () => {
  it('commits between two batches (not after the build), taking out a commission already in the payout and keeping out one not yet taken', async () => {
    const seeded = await seed(2500);
    const inPayout = seeded.commissions[10];
    const notYet = seeded.commissions[1500];
    const during: Array<{ amountIsHeld: boolean; count: number }> = [];
    const built = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), {
      batchSize: 1000,
      afterBatch: async ({ payoutId, batch }) => {
        if (batch !== 1) return;
        // The build waits here for both reversals to commit: had it kept the locks of its first
        // batch (or of the whole payout), the first would wait for the build, and the build for it.
        await reverse(inPayout.conversionId);
        await reverse(notYet.conversionId);
        const read = await readBack(payoutId);
        during.push({ amountIsHeld: new Decimal(read.amount).equals(read.held), count: read.count });
      },
    });
    // Between the batches the payout had lost the reversed commission and its amount with it.
    expect(during).toEqual([{ amountIsHeld: true, count: 999 }]);
    const kept = seeded.commissions.filter((c) => c !== inPayout && c !== notYet);
    expect(built!.commissionIds).toEqual(kept.map((c) => c.id));
    expect(new Decimal(built!.payout.amount.toString()).equals(sum(kept))).toBe(true);
    const rows = new Map((await commissionRows(seeded.affiliateId)).map((c) => [c.id, c]));
    expect([rows.get(inPayout.id), rows.get(notYet.id)]).toEqual([
      { id: inPayout.id, status: 'voided', payout_id: null },
      { id: notYet.id, status: 'voided', payout_id: null },
    ]);
    const read = await readBack(built!.payout.id);
    expect([read.count, new Decimal(read.amount).equals(read.held)]).toEqual([2498, true]);
  });

  it('holding a commission locked through the whole build, is passed over (SKIP LOCKED), not waited for; the next payout takes what it left', async () => {
    const seeded = await seed(2500);
    const reversed = seeded.commissions[1500];
    const changed = seeded.commissions[2000];
    // Two postbacks mid-transaction: one reversing its conversion, one about to change another
    // commission (its lock held, then rolled back).
    const reversal = await db.pool.connect();
    const other = await db.pool.connect();
    try {
      await reversal.query('BEGIN');
      await reverseIn(reversal, reversed.conversionId);
      await other.query('BEGIN');
      await other.query('SELECT id FROM commissions WHERE id = $1 FOR UPDATE', [changed.id]);
      // The whole build runs and answers while both transactions are still open.
      const built = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), { batchSize: 1000 });
      const taken = seeded.commissions.filter((c) => c !== reversed && c !== changed);
      expect(built!.commissionIds).toEqual(taken.map((c) => c.id));
      expect(new Decimal(built!.payout.amount.toString()).equals(sum(taken))).toBe(true);
      expect(built!.hasMore).toBe(false);
      await reversal.query('COMMIT');
      await other.query('ROLLBACK');
      const read = await readBack(built!.payout.id);
      expect([read.count, new Decimal(read.amount).equals(read.held)]).toEqual([2498, true]);
    } finally {
      reversal.release();
      other.release();
    }
    const rows = new Map((await commissionRows(seeded.affiliateId)).map((c) => [c.id, c]));
    expect(rows.get(reversed.id)).toMatchObject({ status: 'voided', payout_id: null });
    const next = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date());
    expect([next!.commissionIds, next!.payout.amount.toString()]).toEqual([[changed.id], new Decimal(changed.amount).toFixed(4)]);
    expect(await createPayout(db.pool, seeded.affiliateId, 'USD', new Date())).toBeNull();
  });
});

describe('payouts built at once for one affiliate', () => {
  const expectPartition = async (seeded: Seeded, built: Array<{ payout: { id: string; amount: { toString(): string } }; commissionIds: string[] }>) => {
    const all = built.flatMap((b) => b.commissionIds).sort();
    // No commission in two answers, none left out.
    expect(all).toEqual(seeded.commissions.map((c) => c.id));
    for (const b of built) {
      expect(new Decimal(b.payout.amount.toString()).equals(sum(amountsOf(seeded, b.commissionIds)))).toBe(true);
      const read = await readBack(b.payout.id);
      expect([read.count, new Decimal(read.amount).equals(read.held)]).toEqual([b.commissionIds.length, true]);
    }
    const rows = await commissionRows(seeded.affiliateId);
    const owner = new Map(built.flatMap((b) => b.commissionIds.map((id) => [id, b.payout.id])));
    expect(rows.every((c) => c.payout_id === owner.get(c.id))).toBe(true);
  };

  it('one built whole between two batches of another: each takes what the other has not', async () => {
    const seeded = await seed(2500);
    let inner: Awaited<ReturnType<typeof createPayout>> = null;
    const outer = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), {
      batchSize: 1000,
      afterBatch: async ({ batch }) => {
        if (batch === 1) inner = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), { batchSize: 1000 });
      },
    });
    expect([outer!.commissionIds.length, inner!.commissionIds.length]).toEqual([1000, 1500]);
    await expectPartition(seeded, [outer!, inner!]);
  });

  it('four racing in batches of 100: none shares a commission, each is worth what it holds, none is left', async () => {
    const seeded = await seed(2500);
    const built = await Promise.all(Array.from({ length: 4 }, () => createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), { batchSize: 100 })));
    const made = built.filter((b) => b !== null);
    expect(made.length).toBeGreaterThan(0);
    await expectPartition(seeded, made);
  });
});

describe('a payout marked sent before its build ends', () => {
  it('takes nothing more: it is sent as it stood, and what it left waits for the next payout (hasMore)', async () => {
    const seeded = await seed(2500);
    const built = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), {
      batchSize: 1000,
      afterBatch: async ({ payoutId, batch }) => {
        if (batch === 1) await db.prisma.$transaction((tx) => markPayoutSent(tx, payoutId, 'WIRE-EARLY', new Date()));
      },
    });
    expect([built!.payout.status, built!.payout.reference, built!.commissionIds.length, built!.hasMore]).toEqual(['sent', 'WIRE-EARLY', 1000, true]);
    expect(new Decimal(built!.payout.amount.toString()).equals(sum(seeded.commissions.slice(0, 1000)))).toBe(true);
    const next = await createPayout(db.pool, seeded.affiliateId, 'USD', new Date(), { batchSize: 1000 });
    expect(next!.commissionIds).toEqual(seeded.commissions.slice(1000).map((c) => c.id));
  });
});
