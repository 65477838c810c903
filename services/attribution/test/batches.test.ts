// Postbacks attributed in batches: one transaction per batch, with the same result as if each
// postback ran alone, in queue order — within a batch, across concurrent batches and processes.
import { createDatabase } from '@trackway/db';
import { createWorkerConnection } from '@trackway/queues';
import { markPayoutSent } from '@trackway/ledger';
import type { PostbackJob } from '@trackway/queues';
import { TEST_REDIS_URL, type Fixture, createFixture, waitFor } from '@trackway/testing';
import { UnrecoverableError } from 'bullmq';
import { attributeBatch, attributeIsolated, turns } from '../src/postbacks/attribute';
import { createWorkers } from '../src/workers';
import { type AttributionHarness, again, postbackJob, startAttribution } from './helpers';

let h: AttributionHarness;
beforeAll(async () => {
  h = await startAttribution();
});
afterAll(() => h.close());

const clickOf = (fx: Fixture) => h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) });
const outcomes = async (jobs: PostbackJob[]) => {
  const rows = await h.db.prisma.postback.findMany({ where: { id: { in: jobs.map((j) => j.postbackId) } } });
  return jobs.map((j) => rows.find((r) => r.id === j.postbackId)).map((r) => (r ? [r.status, r.reason] : null));
};

it('makes copies of one postback inside one batch one conversion, one commission, and duplicates', async () => {
  const fx = await createFixture(h.db.prisma);
  const first = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx) });
  const copies = [first, again(first), again(first), again(first)];
  const results = await attributeBatch(h.attribution, copies);
  expect(results.map((r) => r.outcome.status)).toEqual(['accepted', 'duplicate', 'duplicate', 'duplicate']);
  expect(new Set(results.map((r) => r.outcome.conversionId)).size).toBe(1);
  expect(await h.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId } })).toBe(1);
  expect(await h.db.prisma.commission.count({ where: { affiliateId: fx.affiliateId } })).toBe(1);
  expect(results.flatMap((r) => r.events.map((e) => e.type))).toEqual(['conversion.created', 'conversion.approved', 'commission.created']);
});

it('makes copies spread over concurrent batches one conversion per order, in any order of keys, without deadlocks', async () => {
  const fx = await createFixture(h.db.prisma);
  const orders = Array.from({ length: 40 }, (_, i) => postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), orderId: `CONC-${i}` }));
  // Six batches over the same 40 orders, half of them in reverse order: without sorted writes
  // and a second look after a lost race, this deadlocks or records a conversion twice.
  const batches = Array.from({ length: 6 }, (_, b) => {
    const copies = orders.map((o) => again(o));
    return b % 2 === 0 ? copies : copies.reverse();
  });
  const results = await Promise.all(batches.map((batch) => attributeBatch(h.attribution, batch)));
  const all = results.flat();
  expect(all.filter((r) => r.outcome.status === 'accepted')).toHaveLength(40);
  expect(all.filter((r) => r.outcome.status === 'duplicate')).toHaveLength(200);
  expect(await h.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId } })).toBe(40);
  expect(await h.db.prisma.commission.count({ where: { affiliateId: fx.affiliateId } })).toBe(40);
  const created = await h.db.prisma.outboxEvent.count({ where: { type: 'conversion.created', id: { in: all.flatMap((r) => r.events.map((e) => e.id)) } } });
  expect(created).toBe(40);
});

it('decides a creation, a status change, a reversal and an invalid transition in one batch in queue order', async () => {
  const fx = await createFixture(h.db.prisma);
  const base = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), status: 'pending' });
  const jobs = [base, again(base, { status: 'approved' }), again(base, { status: 'rejected' }), again(base, { status: 'approved' })];
  const results = await attributeBatch(h.attribution, jobs);
  expect(results.map((r) => [r.outcome.status, r.outcome.reason])).toEqual([
    ['accepted', null],
    ['accepted', null],
    ['accepted', null],
    ['rejected', 'invalid_transition'],
  ]);
  expect(await outcomes(jobs)).toEqual([
    ['accepted', null],
    ['accepted', null],
    ['accepted', null],
    ['rejected', 'invalid_transition'],
  ]);
  const conversion = await h.db.prisma.conversion.findFirstOrThrow({ where: { advertiserId: fx.advertiserId }, include: { commission: true } });
  expect(conversion.status).toBe('rejected');
  expect(conversion.commission?.status).toBe('voided');
  const events = await h.db.prisma.outboxEvent.findMany({ where: { id: { in: results.flatMap((r) => r.events.map((e) => e.id)) } } });
  const payloads = events.map((e) => e.payload as { id: string; type: string; data: { previous_status?: string } });
  const order = results.flatMap((r) => r.events.map((e) => e.id));
  expect(order.map((id) => payloads.find((p) => p.id === id)!).map((p) => [p.type, p.data.previous_status])).toEqual([
    ['conversion.created', undefined],
    ['commission.created', undefined],
    ['conversion.approved', 'pending'],
    ['conversion.rejected', 'approved'],
  ]);
});

it('applies several changes of an existing conversion in one batch, and its reversal leaves a payout not yet sent', async () => {
  const fx = await createFixture(h.db.prisma);
  const a = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), orderId: 'PAY-A' });
  const b = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), orderId: 'PAY-B' });
  await attributeBatch(h.attribution, [a, b]);
  const payout = await h.db.prisma.$transaction(async (tx) => {
    const po = await tx.payout.create({
      data: { id: 'po_01JD8Z6Q60F3H5J7L9N1Q3S5U7', affiliateId: fx.affiliateId, currency: 'USD', amount: 10, updatedAt: new Date() },
    });
    await tx.commission.updateMany({ where: { affiliateId: fx.affiliateId }, data: { payoutId: po.id } });
    return po;
  });
  const results = await attributeBatch(h.attribution, [again(a, { status: 'rejected' }), again(a, { status: 'approved' }), again(b)]);
  expect(results.map((r) => [r.outcome.status, r.outcome.reason])).toEqual([
    ['accepted', null],
    ['rejected', 'invalid_transition'],
    ['duplicate', null],
  ]);
  const after = await h.db.prisma.payout.findUniqueOrThrow({ where: { id: payout.id }, include: { commissions: true } });
  expect(after.amount.toString()).toBe('5');
  expect(after.commissions).toHaveLength(1);
  const voided = await h.db.prisma.commission.findFirstOrThrow({ where: { conversion: { orderId: 'PAY-A', advertiserId: fx.advertiserId } } });
  expect([voided.status, voided.payoutId]).toEqual(['voided', null]);
});

it('leaves a payout being marked sent as it was when a batched reversal races it', async () => {
  const fx = await createFixture(h.db.prisma);
  const a = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), orderId: 'RACE-A' });
  await attributeBatch(h.attribution, [a]);
  const id = 'po_01JD8Z6Q60F3H5J7L9N1Q3S5U8';
  await h.db.prisma.payout.create({ data: { id, affiliateId: fx.affiliateId, currency: 'USD', amount: 5, updatedAt: new Date() } });
  await h.db.prisma.commission.updateMany({ where: { affiliateId: fx.affiliateId }, data: { payoutId: id } });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const marking = h.db.prisma.$transaction(
    async (tx) => {
      const marked = await markPayoutSent(tx, id, 'WIRE-RACE', new Date());
      await gate;
      return marked;
    },
    { timeout: 20_000 },
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  const reversal = attributeBatch(h.attribution, [again(a, { status: 'rejected' })]);
  await new Promise((resolve) => setTimeout(resolve, 300));
  release();
  expect((await marking)?.payout.status).toBe('sent');
  expect((await reversal)[0].outcome.status).toBe('accepted');
  const after = await h.db.prisma.payout.findUniqueOrThrow({ where: { id }, include: { commissions: true } });
  expect(after.status).toBe('sent');
  expect(after.amount.toString()).toBe('5');
  expect(after.commissions).toHaveLength(1);
});

it('returns the first outcome to a batch run again, writing nothing new', async () => {
  const fx = await createFixture(h.db.prisma);
  const jobs = [postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx) }), postbackJob({ advertiserId: fx.advertiserId, clickId: 'forged' })];
  const first = await attributeBatch(h.attribution, jobs);
  const outbox = await h.db.prisma.outboxEvent.count();
  const flags = await h.db.prisma.fraudFlag.count();
  const second = await attributeBatch(h.attribution, [...jobs, jobs[0]]);
  expect(second.map((r) => r.replayed)).toEqual([true, true, true]);
  expect(second.map((r) => r.outcome)).toEqual([first[0].outcome, first[1].outcome, first[0].outcome].map(({ conversionStatus: _, ...o }) => o));
  expect(second.flatMap((r) => r.events)).toEqual([]);
  expect(await h.db.prisma.outboxEvent.count()).toBe(outbox);
  expect(await h.db.prisma.fraudFlag.count()).toBe(flags);
});

it('fails only the postback Postgres cannot store; its neighbours are attributed', async () => {
  // 999 % of the largest amount overflows numeric(18,4): the database refuses that row.
  const fx = await createFixture(h.db.prisma, { payoutType: 'percent', payoutPercent: '999' });
  const jobs = [
    postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), amount: '10.00' }),
    postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), amount: '99999999999999.9999' }),
    postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), amount: '20.00' }),
  ];
  const results = await attributeIsolated(h.attribution, jobs);
  expect(results.map((r) => r.ok)).toEqual([true, false, true]);
  expect(!results[1].ok && results[1].error).toBeInstanceOf(UnrecoverableError);
  expect(await outcomes(jobs)).toEqual([['accepted', null], null, ['accepted', null]]);
});

it('fails a whole batch, to be retried, when the database is unreachable', async () => {
  const broken = createDatabase('postgresql://postgres@127.0.0.1:1/nowhere');
  try {
    const fx = await createFixture(h.db.prisma);
    const jobs = [postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx) }), postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx) })];
    const results = await attributeIsolated({ ...h.attribution, pool: broken.pool }, jobs);
    expect(results.map((r) => r.ok)).toEqual([false, false]);
    for (const r of results) expect(!r.ok && r.error).not.toBeInstanceOf(UnrecoverableError);
  } finally {
    await broken.prisma.$disconnect();
  }
});

it('attributes the postbacks of many-postback jobs across two worker processes once, and a job retried from Bull Board changes nothing', async () => {
  const fx = await createFixture(h.db.prisma);
  h.startWorkers(2);
  try {
    const orders = Array.from({ length: 60 }, (_, i) => postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), orderId: `JOB-${i}` }));
    // Every order three times, in jobs of 30 postbacks, as ingest coalesces them.
    const copies = [...orders, ...orders.map((o) => again(o)), ...orders.map((o) => again(o, { status: 'rejected' }))];
    const jobs = Array.from({ length: 6 }, (_, i) => copies.slice(i * 30, i * 30 + 30));
    const added = await h.queues.postbacks.addBulk(
      jobs.map((postbacks, i) => ({ name: 'postbacks', data: { postbacks }, opts: { jobId: `many-${fx.advertiserId}-${i}` } })),
    );
    await waitFor(async () => (await h.db.prisma.postback.count({ where: { id: { in: copies.map((c) => c.postbackId) } } })) === 180, {
      timeoutMs: 20_000,
      what: '180 outcomes',
    });
    expect(await h.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId } })).toBe(60);
    // Two processes take jobs in no guaranteed order relative to each other, so each order's
    // three postbacks (approved, approved again, rejected) must come out as some sequential run
    // of them would: the outcomes of one of the six orders they could have run in.
    const statuses = (await outcomes(copies)).map((s) => s?.[0]);
    const serial = [
      ['accepted', 'duplicate', 'accepted'], // A, A', R (queue order)
      ['duplicate', 'accepted', 'accepted'], // A', A, R
      ['accepted', 'rejected', 'accepted'], // A, R, A' (A' after the reversal: invalid_transition)
      ['rejected', 'accepted', 'accepted'], // A', R, A
      ['rejected', 'rejected', 'accepted'], // R first, then both approvals are invalid
    ].map((o) => o.join());
    for (let i = 0; i < 60; i++) expect(serial).toContain([statuses[i], statuses[60 + i], statuses[120 + i]].join());
    expect(await h.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId, status: 'rejected' } })).toBe(60);

    const job = added[0];
    await waitFor(async () => (await job.getState()) === 'completed', { what: 'the first job to complete' });
    const outbox = await h.db.prisma.outboxEvent.count();
    await job.retry('completed');
    await waitFor(async () => (await job.getState()) === 'completed' && (await h.queues.postbacks.getJob(job.id!))!.attemptsStarted >= 2, {
      what: 'the retried job to complete',
    });
    expect(await h.db.prisma.outboxEvent.count()).toBe(outbox);
    expect(await h.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId } })).toBe(60);
  } finally {
    await h.stopWorkers();
  }
});

it('decides the postbacks of one order in queue order across batches in flight at once', async () => {
  const fx = await createFixture(h.db.prisma);
  // One postback per batch, two batches in flight: each order's pending → approved → rejected
  // lands in three consecutive batches that run concurrently.
  const connection = createWorkerConnection(TEST_REDIS_URL);
  const workers = createWorkers({ ...h.deps, connection, batches: { postbacks: { size: 1, waitMs: 0 } } }, ['postbacks']);
  try {
    const steps = Array.from({ length: 40 }, (_, i) => {
      const base = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), orderId: `SEQ-${i}`, status: 'pending' });
      return [base, again(base, { status: 'approved' }), again(base, { status: 'rejected' })];
    });
    const queued = steps
      .flatMap((s, i) => s.map((p, k) => ({ p, at: k * 40 + i })))
      .sort((a, b) => a.at - b.at)
      .map((x) => x.p);
    await h.queues.postbacks.addBulk(queued.map((p) => ({ name: 'postbacks', data: { postbacks: [p] }, opts: { jobId: p.postbackId } })));
    await waitFor(async () => (await h.db.prisma.postback.count({ where: { id: { in: queued.map((p) => p.postbackId) } } })) === 120, {
      timeoutMs: 20_000,
      what: '120 outcomes',
    });
    const results = await outcomes(steps.flat());
    expect(results).toEqual(
      steps.flatMap(() => [
        ['accepted', null],
        ['accepted', null],
        ['accepted', null],
      ]),
    );
    expect(await h.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId, status: 'rejected' } })).toBe(40);
  } finally {
    await Promise.all(workers.map((w) => w.close()));
    connection.disconnect();
  }
});

it('lets a later batch decide only after the batch before it has claimed its orders, however slow that one is to start', async () => {
  const fx = await createFixture(h.db.prisma);
  const next = turns();
  const base = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), status: 'pending' });
  // The first batch waits 200 ms for its offer (a cold cache); the second one has it at once.
  const slow = {
    ...h.attribution,
    offers: async (id: number) => {
      await new Promise((r) => setTimeout(r, 200));
      return h.attribution.offers(id);
    },
  };
  const [first, second] = await Promise.all([
    attributeIsolated(slow, [base], next()),
    attributeIsolated(h.attribution, [again(base, { status: 'approved' })], next()),
  ]);
  expect([first, second].map((r) => r[0].ok && [r[0].value.outcome.status, r[0].value.outcome.reason])).toEqual([
    ['accepted', null],
    ['accepted', null],
  ]);
  expect((await h.db.prisma.conversion.findFirstOrThrow({ where: { advertiserId: fx.advertiserId } })).status).toBe('approved');
});

it('keeps queue order when the batch before runs its transaction again (a copy of one of its postbacks committed first)', async () => {
  const fx = await createFixture(h.db.prisma);
  const next = turns();
  const p1 = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), status: 'pending' });
  const x = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), orderId: 'OTHER' });
  const p2 = again(p1, { status: 'approved' });
  // Another run of X (a stalled job's copy) is inserting X's outcome, in a transaction it keeps
  // open for a while: the first batch's outcome insert waits for it, then runs again.
  const other = await h.db.pool.connect();
  try {
    await other.query('BEGIN');
    await other.query(`INSERT INTO postbacks (id, advertiser_id, status, params, received_at) VALUES ($1, $2, 'rejected', '{}', now())`, [
      x.postbackId,
      fx.advertiserId,
    ]);
    const first = attributeIsolated(h.attribution, [p1, x], next());
    const second = attributeIsolated(h.attribution, [p2], next());
    await new Promise((resolve) => setTimeout(resolve, 500));
    await other.query('COMMIT');
    const [a, b] = await Promise.all([first, second]);
    expect([...a, ...b].map((r) => r.ok && [r.value.outcome.status, r.value.outcome.reason, r.value.replayed])).toEqual([
      ['accepted', null, false],
      ['rejected', null, true],
      ['accepted', null, false],
    ]);
  } finally {
    other.release();
  }
  expect((await h.db.prisma.conversion.findFirstOrThrow({ where: { advertiserId: fx.advertiserId, orderId: p1.orderId } })).status).toBe('approved');
});
