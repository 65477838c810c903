// The batched read and the group-committed attempt log, against real Postgres (and Redis for
// the endpoint.disabled publish). Rows written by one transaction share their xmin: that is
// how these tests see what committed together.
import type pg from 'pg';
import { newId } from '@trackway/domain';
import { createLogger } from '@trackway/logger';
import { createQueue } from '@trackway/queues';
import { ignoreErrors } from '@trackway/testing';
import { type AttemptRecord, createAttemptRecorder, createDeliveryReader } from '../src/records';
import { type Harness, countingPool, startHarness } from './support';

let h: Harness;
let eventsQueue: ReturnType<typeof createQueue<'events'>>;
const invalidated: string[] = [];
beforeAll(async () => {
  h = await startHarness();
  eventsQueue = createQueue('events', h.redis, h.prefix, ignoreErrors);
});
afterAll(async () => {
  await eventsQueue.close();
  await h.close();
});

const DISABLE_AFTER = 60_000;
const recorder = () =>
  createAttemptRecorder({
    pool: h.db.pool,
    eventsQueue,
    invalidateEndpoint: async (id) => {
      invalidated.push(id);
    },
    logger: createLogger({ service: 'test', level: 'silent' }),
    disableAfterMs: DISABLE_AFTER,
  });

async function delivery(endpointId: string, attemptCount = 0) {
  const [event] = await h.events(1);
  return h.db.prisma.delivery.create({ data: { id: newId('delivery'), eventId: event.id, endpointId, eventType: event.type, attemptCount } });
}

let attempts = 0;
const attempt = (d: { id: string; endpointId: string }, over: Partial<AttemptRecord> = {}): AttemptRecord => ({
  key: `test-attempt-${++attempts}-${Math.random()}`,
  deliveryId: d.id,
  endpointId: d.endpointId,
  at: new Date(),
  durationMs: 12,
  statusCode: 200,
  error: null,
  responseBody: 'ok',
  status: 'succeeded',
  nextAttemptAt: null,
  succeeded: true,
  blocked: false,
  gone: false,
  ...over,
});
const failed = (over: Partial<AttemptRecord> = {}): Partial<AttemptRecord> => ({
  statusCode: 500,
  responseBody: 'boom',
  status: 'pending',
  nextAttemptAt: new Date(Date.now() + 5_000),
  succeeded: false,
  ...over,
});

const xmins = async (table: 'deliveries' | 'delivery_attempts' | 'webhook_endpoints' | 'outbox_events', column: string, ids: string[]) =>
  new Set((await h.db.pool.query<{ xmin: string }>(`SELECT xmin::text FROM ${table} WHERE ${column} = ANY($1)`, [ids])).rows.map((r) => r.xmin));

describe('the batched read', () => {
  it('reads the deliveries of concurrent jobs with one statement; a pruned one is null', async () => {
    const endpointId = await h.endpoint();
    const [a, b] = [await delivery(endpointId), await delivery(endpointId)];
    const pool = countingPool(h.db.pool);
    const read = createDeliveryReader(pool as never);
    const [ra, rb, gone] = await Promise.all([read(a.id), read(b.id), read(newId('delivery'))]);
    expect(pool.count('deliveries-read')).toBe(1);
    expect(ra).toMatchObject({ status: 'pending', payload: expect.objectContaining({ id: a.eventId }) });
    expect(rb).toMatchObject({ status: 'pending', payload: expect.objectContaining({ id: b.eventId }) });
    expect(gone).toBeNull();
  });
});

describe('group-committed attempts', () => {
  it('commits the attempts of concurrent jobs in one transaction, numbered from each delivery’s count', async () => {
    const [e1, e2] = [await h.endpoint(), await h.endpoint()];
    const ds = [await delivery(e1), await delivery(e1, 2), await delivery(e2), await delivery(e2)];
    const record = recorder();
    await Promise.all([
      record(attempt(ds[0])),
      record(attempt(ds[1], failed())),
      record(attempt(ds[2])),
      record(attempt(ds[3], failed({ status: 'failed', nextAttemptAt: null }))),
    ]);

    const ids = ds.map((d) => d.id);
    expect((await xmins('deliveries', 'id', ids)).size).toBe(1);
    expect(await xmins('delivery_attempts', 'delivery_id', ids)).toEqual(await xmins('deliveries', 'id', ids));
    const rows = await h.db.prisma.delivery.findMany({ where: { id: { in: ids } }, include: { attempts: true } });
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(
      ids.map((id) => [byId.get(id)!.status, byId.get(id)!.attemptCount, byId.get(id)!.attempts.map((a) => [a.number, a.statusCode, a.responseBody])]),
    ).toEqual([
      ['succeeded', 1, [[1, 200, 'ok']]],
      ['pending', 3, [[3, 500, 'boom']]],
      ['succeeded', 1, [[1, 200, 'ok']]],
      ['failed', 1, [[1, 500, 'boom']]], // a dead letter, in the same write as its last attempt
    ]);
    expect(byId.get(ids[1])!.nextAttemptAt).not.toBeNull();
    expect(byId.get(ids[3])!.nextAttemptAt).toBeNull();
  });

  it('numbers two attempts of one delivery in one batch (a replay beside its first send) one after the other', async () => {
    const d = await delivery(await h.endpoint(), 1);
    const record = recorder();
    await Promise.all([record(attempt(d, failed())), record(attempt(d))]);
    const attempts = await h.db.prisma.deliveryAttempt.findMany({ where: { deliveryId: d.id }, orderBy: { number: 'asc' } });
    expect(attempts.map((a) => a.number)).toEqual([2, 3]);
    expect((await h.db.prisma.delivery.findUniqueOrThrow({ where: { id: d.id } })).attemptCount).toBe(3);
  });

  it('folds each endpoint’s failing clock in attempt order: a failure starts it, a success clears it, an SSRF-blocked attempt does neither', async () => {
    const [starts, clears, blockedOnly, mixed] = [await h.endpoint(), await h.endpoint(), await h.endpoint(), await h.endpoint()];
    const earlier = new Date(Date.now() - 5_000);
    await h.db.prisma.webhookEndpoint.update({ where: { id: clears }, data: { failingSince: earlier } });
    const t0 = new Date(Date.now() - 1_000);
    const t1 = new Date();
    const [d1, d2, d3, d4, d5] = [await delivery(starts), await delivery(clears), await delivery(blockedOnly), await delivery(mixed), await delivery(mixed)];
    const record = recorder();
    await Promise.all([
      record(attempt(d1, failed({ at: t0 }))),
      record(attempt(d2)),
      record(attempt(d3, failed({ statusCode: null, error: 'ssrf_blocked', responseBody: null, status: 'failed', blocked: true }))),
      // Handed in out of order: the success (t0) came before the failure (t1).
      record(attempt(d4, failed({ at: t1 }))),
      record(attempt(d5, { at: t0 })),
    ]);
    const clock = async (id: string) => (await h.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id } })).failingSince?.getTime() ?? null;
    expect(await clock(starts)).toBe(t0.getTime());
    expect(await clock(clears)).toBeNull();
    expect(await clock(blockedOnly)).toBeNull();
    expect(await clock(mixed)).toBe(t1.getTime());
  });

  it('commits a disabling (410) and its endpoint.disabled event with the attempt, then publishes the event', async () => {
    const endpointId = await h.endpoint();
    const d = await delivery(endpointId);
    await recorder()(attempt(d, failed({ statusCode: 410, status: 'failed', nextAttemptAt: null, gone: true })));
    const endpoint = await h.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: endpointId } });
    expect(endpoint).toMatchObject({ enabled: false, disabledReason: 'The endpoint answered 410 Gone.' });
    const [event] = (await h.db.prisma.outboxEvent.findMany({ where: { type: 'endpoint.disabled' } })).filter(
      (e) => (e.payload as { data: { endpoint: { id: string } } }).data.endpoint.id === endpointId,
    );
    expect(event.payload).toMatchObject({
      type: 'endpoint.disabled',
      data: { endpoint: { id: endpointId, enabled: false, disabled_reason: 'The endpoint answered 410 Gone.' } },
    });
    expect(await xmins('webhook_endpoints', 'id', [endpointId])).toEqual(await xmins('delivery_attempts', 'delivery_id', [d.id]));
    expect(event.publishedAt).not.toBeNull(); // published after the commit (which changed its xmin)
    expect((await eventsQueue.getJobs(['waiting'])).some((job) => job.data.events.some((e) => e.id === event.id))).toBe(true);
    expect(invalidated).toContain(endpointId);
  });

  it('disables an endpoint whose clock ran past DELIVERY_DISABLE_AFTER, in the same transaction', async () => {
    const endpointId = await h.endpoint();
    const since = new Date(Date.now() - DISABLE_AFTER - 1_000);
    await h.db.prisma.webhookEndpoint.update({ where: { id: endpointId }, data: { failingSince: since } });
    await recorder()(attempt(await delivery(endpointId), failed()));
    expect(await h.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: endpointId } })).toMatchObject({
      enabled: false,
      disabledReason: `Every attempt failed since ${since.toISOString()}.`,
    });
  });

  it('a record Postgres refuses fails alone: its neighbours in the batch commit', async () => {
    const endpointId = await h.endpoint();
    const [good, bad] = [await delivery(endpointId), await delivery(endpointId)];
    const record = recorder();
    const [ok, refused] = await Promise.allSettled([record(attempt(good)), record(attempt(bad, { responseBody: 'x'.repeat(5_000) }))]);
    expect(ok.status).toBe('fulfilled');
    expect(refused).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ code: '22001' }) });
    expect(await h.db.prisma.deliveryAttempt.count({ where: { deliveryId: good.id } })).toBe(1);
    expect(await h.db.prisma.deliveryAttempt.count({ where: { deliveryId: bad.id } })).toBe(0);
  });

  it('records an attempt once: the same key again (a retry after a lost commit answer) changes nothing', async () => {
    const endpointId = await h.endpoint();
    const d = await delivery(endpointId);
    const record = recorder();
    const first = attempt(d, failed());
    expect(await record(first)).toBe(true);
    expect(await record({ ...first })).toBe(false);
    expect(await h.db.prisma.deliveryAttempt.count({ where: { deliveryId: d.id } })).toBe(1);
    expect(await h.db.prisma.delivery.findUniqueOrThrow({ where: { id: d.id } })).toMatchObject({ attemptCount: 1 });
    // A new attempt (a new key) is numbered after it.
    expect(await record(attempt(d))).toBe(true);
    const numbers = (await h.db.prisma.deliveryAttempt.findMany({ where: { deliveryId: d.id }, orderBy: { number: 'asc' } })).map((a) => a.number);
    expect(numbers).toEqual([1, 2]);
  });

  it('an attempt recorded again never moves the failing clock: neither a success over a later failure nor a failure over a later success', async () => {
    const clock = async (id: string) => (await h.db.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id } })).failingSince?.getTime() ?? null;
    const record = recorder();
    // A success, logged; then a failure starts the clock; then the success again (its commit answer was lost).
    const a = await h.endpoint();
    const [a1, a2] = [await delivery(a), await delivery(a)];
    const success = attempt(a1, { at: new Date(Date.now() - 2_000) });
    expect(await record(success)).toBe(true);
    const failure = failed({ at: new Date(Date.now() - 1_000) });
    expect(await record(attempt(a2, failure))).toBe(true);
    expect(await record({ ...success })).toBe(false);
    expect(await clock(a)).toBe(failure.at!.getTime());
    // A failure, logged; then a success clears the clock; then the failure again, in a group with a failure elsewhere.
    const [b, other] = [await h.endpoint(), await h.endpoint()];
    const [b1, b2, o1] = [await delivery(b), await delivery(b), await delivery(other)];
    const old = attempt(b1, failed({ at: new Date(Date.now() - 30_000) }));
    expect(await record(old)).toBe(true);
    expect(await record(attempt(b2))).toBe(true);
    expect(await clock(b)).toBeNull();
    const [again] = await Promise.all([record({ ...old }), record(attempt(o1, failed()))]);
    expect(again).toBe(false);
    expect(await clock(b)).toBeNull();
  });

  it('two group commits (two processes) settling crossed outcomes on the same two endpoints never deadlock', async () => {
    // Both endpoints have been failing past DELIVERY_DISABLE_AFTER: a success clears a clock, a
    // failure disables the endpoint, and each writes the endpoint's row. Process 1 (A succeeded,
    // B failed) and process 2 (A failed, B succeeded) would write A and B in opposite orders and
    // Postgres would abort one of them (40P01: retried, but a deadlock each time) — unless each
    // commit locks its endpoints in id order before it writes.
    const deadlocks = { count: 0 };
    const watched = watchDeadlocks(h.db.pool, deadlocks);
    const make = () =>
      createAttemptRecorder({
        pool: watched,
        eventsQueue,
        invalidateEndpoint: async () => {},
        logger: createLogger({ service: 'test', level: 'silent' }),
        disableAfterMs: DISABLE_AFTER,
      });
    const [r1, r2] = [make(), make()];
    for (let round = 0; round < 5; round++) {
      const [a, b] = [await h.endpoint(), await h.endpoint()];
      await h.db.pool.query(`UPDATE webhook_endpoints SET failing_since = $2 WHERE id = ANY($1)`, [[a, b], new Date(Date.now() - DISABLE_AFTER - 1_000)]);
      const [a1, b1, a2, b2] = [await delivery(a), await delivery(b), await delivery(a), await delivery(b)];
      // A blocker holds the four delivery rows so that both group commits start together.
      const blocker = await h.db.pool.connect();
      await blocker.query('BEGIN');
      await blocker.query('SELECT id FROM deliveries WHERE id = ANY($1) FOR UPDATE', [[a1.id, b1.id, a2.id, b2.id]]);
      const both = Promise.all([r1(attempt(a1)), r1(attempt(b1, failed())), r2(attempt(a2, failed())), r2(attempt(b2))]);
      await new Promise((resolve) => setTimeout(resolve, 150));
      await blocker.query('COMMIT');
      blocker.release();
      expect(await both).toEqual([true, true, true, true]);
    }
    expect(deadlocks.count).toBe(0);
  });
});

/** The pool, counting the deadlocks (40P01) its transactions meet — inTransaction retries them silently. */
function watchDeadlocks(pool: typeof h.db.pool, seen: { count: number }): typeof h.db.pool {
  const watch = (client: pg.PoolClient) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    return new Proxy(client, {
      get: (target, prop, receiver) =>
        prop === 'query'
          ? (...args: unknown[]) => {
              const result = query(...args) as Promise<unknown> | undefined;
              return result?.catch((error: { code?: string }) => {
                if (error.code === '40P01') seen.count += 1;
                throw error;
              });
            }
          : Reflect.get(target, prop, receiver),
    });
  };
  return new Proxy(pool, {
    // Only the promise form (inTransaction's); pool.query checks a client out with a callback.
    get: (target, prop, receiver) =>
      prop === 'connect'
        ? (...args: unknown[]) => (args.length > 0 ? target.connect(...(args as [never])) : target.connect().then(watch))
        : Reflect.get(target, prop, receiver),
  });
}
