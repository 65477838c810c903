// Sub IDs: a conversion copies its click row's sub1…sub5; a postback whose row may still land (a
// click queued before it came is still in the clicks queue) is put back for it, at most the wait
// limit, without failing or spending an attempt, and without losing its neighbours.
import { createWorkerConnection } from '@trackway/queues';
import { TEST_REDIS_URL, type Fixture, createFixture, waitFor } from '@trackway/testing';
import type { Job } from 'bullmq';
import { attributeBatch } from '../src/postbacks/attribute';
import { clickQueueLook, createWorkers } from '../src/workers';
import { type AttributionHarness, postbackJob, startAttribution } from './helpers';

let h: AttributionHarness;
beforeAll(async () => {
  h = await startAttribution();
});
afterAll(() => h.close());
afterEach(async () => {
  await h.queues.clicks.obliterate({ force: true });
});

const clickOf = (fx: Fixture) => h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) });
// Written as the click writer does: at the time its id carries (to the second; the row has the milliseconds).
const writeClickRow = (fx: Fixture, id: string, sub1: string) =>
  h.db.prisma.click.create({
    data: { id, offerId: fx.offerId, affiliateId: fx.affiliateId, sub1, sub2: 'b', createdAt: new Date(h.clickIds.verify(id)!.clickedAt.getTime() + 437) },
  });
/** A click job that nothing consumes here: a click queued before the postbacks came. */
const queueSomeClick = (fx: Fixture) =>
  h.queues.clicks.add('clicks', {
    clicks: [{ clickId: clickOf(fx), offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date().toISOString(), subs: {} }],
  });

it('copies the click row sub IDs; a postback id twice in one batch carries its events once, on its first copy', async () => {
  const fx = await createFixture(h.db.prisma);
  const click = clickOf(fx);
  await writeClickRow(fx, click, 'theirs-1');
  const job = postbackJob({ advertiserId: fx.advertiserId, clickId: click });
  const [first, second] = await attributeBatch(h.attribution, [job, job]);
  expect(first.events.map((e) => e.type)).toEqual(['conversion.created', 'conversion.approved', 'commission.created']);
  expect(second).toMatchObject({ replayed: true, events: [] });
  const conversion = await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: first.outcome.conversionId! } });
  expect([conversion.sub1, conversion.sub2, conversion.sub3]).toEqual(['theirs-1', 'b', null]);
});

it('decides an order in queue order: a later postback of an order whose earlier one waits for its click row waits behind it', async () => {
  const fx = await createFixture(h.db.prisma);
  await queueSomeClick(fx);
  const deps = { ...h.attribution, clickQueue: clickQueueLook(h.queues.clicks, h.redis, 0), waiting: new Map<string, Map<string, number>>() };
  const waitingClick = clickOf(fx);
  const writtenClick = clickOf(fx);
  await writeClickRow(fx, writtenClick, 'w');
  // The same order twice (an advertiser may send another click id): pending first, then approved.
  const first = postbackJob({ advertiserId: fx.advertiserId, clickId: waitingClick, orderId: 'BEHIND-1', status: 'pending' });
  const second = postbackJob({ advertiserId: fx.advertiserId, clickId: writtenClick, orderId: 'BEHIND-1', status: 'approved' });
  expect((await attributeBatch(deps, [first]))[0].deferred).toBe(true);
  // Its own click row is there, but the order's earlier postback still waits: it waits behind it.
  expect((await attributeBatch(deps, [second]))[0].deferred).toBe(true);
  await writeClickRow(fx, waitingClick, 'landed');
  const [a, b] = await attributeBatch(deps, [first, second]);
  expect([a.outcome.status, b.outcome.status]).toEqual(['accepted', 'accepted']);
  const conversion = await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: a.outcome.conversionId! } });
  // Created pending with the first postback's click, then approved: queue order.
  expect([conversion.status, conversion.sub1]).toEqual(['approved', 'landed']);
  expect(b.events.map((e) => e.type)).toContain('conversion.approved');
});

it('a look at the clicks queue serves the batches of the next 200 ms, then looks again', async () => {
  const fx = await createFixture(h.db.prisma);
  const look = clickQueueLook(h.queues.clicks, h.redis, 300);
  const first = await look();
  expect(first.oldest).toBeNull();
  const job = await queueSomeClick(fx);
  expect(await look()).toBe(first);
  await new Promise((resolve) => setTimeout(resolve, 350));
  const again = await look();
  expect(again.oldest).toBe(job.timestamp);
  expect(again.seenAt).toBeGreaterThan(first.seenAt);
});

describe('the worker', () => {
  const workers: ReturnType<typeof createWorkers>[] = [];
  const connections: ReturnType<typeof createWorkerConnection>[] = [];
  afterEach(async () => {
    for (const list of workers.splice(0)) await Promise.all(list.map((w) => w.close()));
    for (const c of connections.splice(0)) c.disconnect();
  });
  const startPostbacksOnly = (clickRowWaitMs?: number) => {
    const connection = createWorkerConnection(TEST_REDIS_URL);
    connections.push(connection);
    workers.push(createWorkers({ ...h.deps, connection, clickRowWaitMs }, ['postbacks']));
  };
  const outcome = (id: string) => h.db.prisma.postback.findUnique({ where: { id } });

  it('puts a waiting postback back even when its job also holds one Postgres refuses: nothing lost, the refusal fails the job once none waits', async () => {
    // 999 % of the largest amount overflows numeric(18,4): the database refuses that row.
    const fx = await createFixture(h.db.prisma, { payoutType: 'percent', payoutPercent: '999' });
    await queueSomeClick(fx);
    const refusedClick = clickOf(fx);
    await writeClickRow(fx, refusedClick, 'r');
    const waitingClick = clickOf(fx);
    const refused = postbackJob({ advertiserId: fx.advertiserId, clickId: refusedClick, amount: '99999999999999.9999' });
    const waiting = postbackJob({ advertiserId: fx.advertiserId, clickId: waitingClick, amount: '10.00' });
    const job: Job = await h.queues.postbacks.add('postbacks', { postbacks: [refused, waiting] });
    startPostbacksOnly();
    await waitFor(async () => ((await job.getState()) === 'delayed' ? true : undefined), { what: 'the job put back' });
    const putBack = await h.queues.postbacks.getJob(job.id!);
    expect(putBack?.data.postbacks[1].clickWaitSince).toEqual(expect.any(String));
    expect(putBack?.data.postbacks[0].clickWaitSince).toBeUndefined();
    expect(await outcome(waiting.postbackId)).toBeNull();
    // Its click row lands: the waiting one is attributed with its subs; the refused one fails the job.
    await writeClickRow(fx, waitingClick, 'landed');
    await waitFor(async () => ((await job.getState()) === 'failed' ? true : undefined), { what: 'the job failed for good', timeoutMs: 15_000 });
    const done = await outcome(waiting.postbackId);
    expect(done?.status).toBe('accepted');
    const conversion = await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: done!.conversionId! } });
    expect(conversion.sub1).toBe('landed');
    expect(await outcome(refused.postbackId)).toBeNull();
  });

  it('waits at most the limit while clicks stay queued, then records the conversion without sub IDs', async () => {
    const fx = await createFixture(h.db.prisma);
    await queueSomeClick(fx);
    const waiting = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx) });
    await h.queues.postbacks.add('postbacks', { postbacks: [waiting] });
    const started = Date.now();
    startPostbacksOnly(1_500);
    const done = await waitFor(() => outcome(waiting.postbackId), { what: 'the outcome', timeoutMs: 15_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    const conversion = await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: done.conversionId! } });
    expect([conversion.sub1, conversion.sub2, conversion.sub3, conversion.sub4, conversion.sub5]).toEqual([null, null, null, null, null]);
  });

  it('does not wait when only clicks queued after the postback came are there (its own was lost)', async () => {
    const fx = await createFixture(h.db.prisma);
    const lost = postbackJob({ advertiserId: fx.advertiserId, clickId: clickOf(fx), receivedAt: new Date(Date.now() - 60_000).toISOString() });
    await queueSomeClick(fx);
    await h.queues.postbacks.add('postbacks', { postbacks: [lost] });
    startPostbacksOnly(60_000);
    const done = await waitFor(() => outcome(lost.postbackId), { what: 'the outcome at once' });
    expect(done.status).toBe('accepted');
    expect((await h.db.prisma.conversion.findUniqueOrThrow({ where: { id: done.conversionId! } })).sub1).toBeNull();
  });
});
