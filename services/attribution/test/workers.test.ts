import { relayOutbox } from '@trackway/outbox';
import { createPrisma } from '@trackway/db';
import { createWorkerConnection } from '@trackway/queues';
import { TEST_REDIS_URL, createFixture, waitFor } from '@trackway/testing';
import { createWorkers } from '../src/workers';
import { type AttributionHarness, again, postbackJob, processPostback, startAttribution } from './helpers';

let h: AttributionHarness;
beforeAll(async () => {
  h = await startAttribution();
});
afterAll(() => h.close());

const outcomesOf = (ids: string[]) => h.db.prisma.postback.findMany({ where: { id: { in: ids } } });

describe('attribution workers', () => {
  it('turns 200 concurrent copies of one postback into exactly one conversion, commission and conversion.created', async () => {
    const fx = await createFixture(h.db.prisma);
    h.startWorkers(2); // two workers on separate connections, 16 jobs each at a time
    const first = postbackJob({
      advertiserId: fx.advertiserId,
      clickId: h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) }),
    });
    const copies = Array.from({ length: 200 }, () => again(first));
    await h.queues.postbacks.addBulk(copies.map((data) => ({ name: 'postback', data: { postbacks: [data] }, opts: { jobId: data.postbackId } })));

    const ids = copies.map((c) => c.postbackId);
    await waitFor(async () => (await h.db.prisma.postback.count({ where: { id: { in: ids } } })) === 200, { timeoutMs: 30_000, what: '200 outcomes' });

    const conversions = await h.db.prisma.conversion.findMany({ where: { advertiserId: fx.advertiserId } });
    expect(conversions).toHaveLength(1);
    expect(await h.db.prisma.commission.count({ where: { conversionId: conversions[0].id } })).toBe(1);
    const outcomes = await outcomesOf(ids);
    expect(outcomes.filter((o) => o.status === 'accepted')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'duplicate')).toHaveLength(199);
    expect(new Set(outcomes.map((o) => o.conversionId))).toEqual(new Set([conversions[0].id]));

    const created = (await h.db.prisma.outboxEvent.findMany({ where: { type: 'conversion.created' } })).filter(
      (e) => (e.payload as { data: { conversion: { id: string } } }).data.conversion.id === conversions[0].id,
    );
    expect(created).toHaveLength(1);
    // …and it reached the events queue once.
    const published = await waitFor(
      async () => {
        const events = (await h.queues.events.getJobs(['waiting', 'delayed', 'completed', 'active'])).flatMap((j) => j.data.events);
        return events.some((e) => e.id === created[0].id) ? events : null;
      },
      { what: 'the event in the events queue' },
    );
    expect(
      published.filter((e) => e.type === 'conversion.created' && (e.data as { conversion: { id: string } }).conversion.id === conversions[0].id),
    ).toHaveLength(1);
  });

  it('publishes events through the relay, exactly once, after a crash between commit and enqueue', async () => {
    const fx = await createFixture(h.db.prisma);
    const job = postbackJob({
      advertiserId: fx.advertiserId,
      clickId: h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) }),
    });
    // processPostback commits; the "crash" is that publishEvents never runs.
    const { events } = await processPostback(h.attribution, job);
    const ids = events.map((e) => e.id);
    expect(ids).toHaveLength(3);
    const queuedEvents = async () => (await h.queues.events.getJobs(['waiting', 'delayed', 'completed', 'active'])).flatMap((j) => j.data.events);
    expect((await queuedEvents()).filter((e) => ids.includes(e.id))).toEqual([]);
    expect(await h.db.prisma.outboxEvent.count({ where: { id: { in: ids }, publishedAt: null } })).toBe(3);

    // The relay republishes unpublished rows; a second pass (or a concurrent one) adds nothing.
    const [a, b] = await Promise.all([relayOutbox(h.db.pool, h.queues.events, { graceMs: 0 }), relayOutbox(h.db.pool, h.queues.events, { graceMs: 0 })]);
    expect(a + b).toBeGreaterThanOrEqual(3);
    expect(await relayOutbox(h.db.pool, h.queues.events, { graceMs: 0 })).toBe(0);
    // Each event is in the queue, as committed; two concurrent relays may both publish one,
    // which fan-out delivers once (deliveries are unique per event and endpoint).
    const published = (await queuedEvents()).filter((e) => ids.includes(e.id));
    for (const event of events) expect(published.find((e) => e.id === event.id)).toEqual(event);
    expect(await h.db.prisma.outboxEvent.count({ where: { id: { in: ids }, publishedAt: null } })).toBe(0);
  });

  it('retries a job whose database work failed, with backoff, until it succeeds', async () => {
    const fx = await createFixture(h.db.prisma);
    await h.stopWorkers(); // only the broken worker runs at first
    // A worker whose Postgres is unreachable: the first attempt fails on a database error.
    const broken = createPrisma('postgresql://postgres@127.0.0.1:1/nowhere');
    const connection = createWorkerConnection(TEST_REDIS_URL);
    const [worker] = createWorkers({ ...h.deps, prisma: broken, connection }, ['postbacks']);
    const job = postbackJob({
      advertiserId: fx.advertiserId,
      clickId: h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) }),
    });
    await h.queues.postbacks.add('postback', { postbacks: [job] }, { jobId: job.postbackId });
    await waitFor(async () => (await h.queues.postbacks.getJobState(job.postbackId)) === 'delayed', { what: 'the retry to be scheduled' });
    const delayed = (await h.queues.postbacks.getJob(job.postbackId))!;
    expect(delayed.attemptsMade).toBe(1);
    expect(delayed.opts.backoff).toEqual({ type: 'capped-exponential' });
    expect(delayed.delay).toBe(1_000);
    expect(await h.db.prisma.postback.count({ where: { id: job.postbackId } })).toBe(0);
    // The database is back (a healthy worker): the retry succeeds.
    await worker.close();
    connection.disconnect();
    await broken.$disconnect();
    h.startWorkers(1);
    await waitFor(async () => (await h.queues.postbacks.getJobState(job.postbackId)) === 'completed', { timeoutMs: 15_000, what: 'the retry to succeed' });
    expect(await h.db.prisma.postback.findUnique({ where: { id: job.postbackId } })).toMatchObject({ status: 'accepted' });
  });

  it('fails a job with an invalid payload at once, without retrying it', async () => {
    await h.queues.postbacks.add('postback', { nonsense: true } as never, { jobId: 'bad-payload', attempts: 5 });
    await waitFor(async () => (await h.queues.postbacks.getJobState('bad-payload')) === 'failed');
    const failed = (await h.queues.postbacks.getJob('bad-payload'))!;
    expect(failed.attemptsStarted).toBe(1);
    expect(failed.failedReason).toMatch(/invalid postbacks payload/);
  });

  it('writes the good clicks of a batch even when one row cannot be stored', async () => {
    const fx = await createFixture(h.db.prisma);
    const make = (sub1: string) => {
      const clickedAt = new Date();
      return {
        clickId: h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt }),
        offerId: fx.offerId,
        affiliateId: fx.affiliateId,
        clickedAt: clickedAt.toISOString(),
        subs: { sub1 },
      };
    };
    const clicks = [make('ok-1'), make('bad\u0000'), make('ok-2')];
    await h.queues.clicks.addBulk(clicks.map((data) => ({ name: 'click', data: { clicks: [data] }, opts: { jobId: data.clickId, attempts: 1 } })));
    await waitFor(async () => (await h.queues.clicks.getJobState(clicks[1].clickId)) === 'failed', { what: 'the bad click to fail' });
    await waitFor(async () => (await h.db.prisma.click.count({ where: { offerId: fx.offerId } })) === 2, { what: 'the good clicks' });
    expect((await h.db.prisma.click.findMany({ where: { offerId: fx.offerId }, orderBy: { sub1: 'asc' } })).map((c) => c.sub1)).toEqual(['ok-1', 'ok-2']);
  });

  it('records queued clicks in batches, once each even when a click job is re-added', async () => {
    const fx = await createFixture(h.db.prisma);
    const clicks = Array.from({ length: 250 }, (_, i) => {
      const clickedAt = new Date();
      return {
        clickId: h.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt }),
        offerId: fx.offerId,
        affiliateId: fx.affiliateId,
        clickedAt: clickedAt.toISOString(),
        subs: { sub1: `s${i}` },
      };
    });
    await h.queues.clicks.addBulk(clicks.map((data) => ({ name: 'click', data: { clicks: [data] }, opts: { jobId: data.clickId } })));
    await waitFor(async () => (await h.db.prisma.click.count({ where: { offerId: fx.offerId } })) === 250, { what: '250 clicks' });
    await h.queues.clicks.add('click', { clicks: [clicks[0]] }, { jobId: `${clicks[0].clickId}-again` });
    await waitFor(async () => (await h.queues.clicks.getJob(`${clicks[0].clickId}-again`))?.finishedOn);
    expect(await h.db.prisma.click.count({ where: { offerId: fx.offerId } })).toBe(250);
    expect(await h.db.prisma.click.findFirst({ where: { id: clicks[7].clickId } })).toMatchObject({ sub1: 's7', affiliateId: fx.affiliateId });
  });
});
