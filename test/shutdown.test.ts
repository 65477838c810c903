// Graceful shutdown under load, with every service a real process: during a burst of postbacks,
// ingest, attribution and delivery are each sent SIGTERM (and replaced). Every postback that got
// a 202 becomes a conversion, every conversion.created is delivered, and no job is left stalled
// or failed.
import { startReceiver, waitFor } from '@trackway/testing';
import request from 'supertest';
import { type ServiceProcess, spawnService, stackEnv } from './support/processes';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
const running: ServiceProcess[] = [];
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  for (const p of running) p.child.kill('SIGKILL');
  await stack.close();
});

const env = () =>
  stackEnv(stack, {
    ATTRIBUTION_QUEUES: 'postbacks,clicks',
    DELIVERY_QUEUES: 'events,deliveries',
    DELIVERY_RETRY_SCHEDULE: '0,200ms,200ms,200ms',
    SHUTDOWN_TIMEOUT_MS: '15000',
    WORKER_LOCK_DURATION: '5s',
    WORKER_STALLED_INTERVAL: '1s',
  });

async function start(service: 'ingest' | 'attribution' | 'delivery') {
  const p = spawnService(service, env());
  running.push(p);
  await p.waitForOutput(service === 'ingest' ? /ingest listening/ : /worker running/, 30_000);
  return p;
}

const portOf = (p: ServiceProcess) => Number(/"port":(\d+)/.exec(p.output())![1]);

async function stop(p: ServiceProcess) {
  p.child.kill('SIGTERM');
  const code = await p.exited;
  expect({ code, output: p.output().includes('shutdown complete') }).toEqual({ code: 0, output: true });
  expect(p.output()).not.toMatch(/job stalled|shutdown deadline passed/);
}

it('loses nothing when each service is sent SIGTERM during a burst', async () => {
  const receiver = await startReceiver(() => ({ status: 200, delayMs: 30 }));
  const api = { post: (path: string, body: object) => request(stack.api).post(path).set(stack.auth).send(body).expect(201) };
  await api.post('/v1/webhook-endpoints', { url: receiver.url, event_types: ['conversion.created'] });
  const advertiser = (await api.post('/v1/advertisers', { name: 'Shop' })).body;
  const affiliate = (await api.post('/v1/affiliates', { name: 'Blog' })).body;
  const offer = (
    await api.post('/v1/offers', {
      advertiser_id: advertiser.id,
      name: 'Sale',
      destination_url: 'https://shop.example/',
      currency: 'USD',
      payout: { type: 'fixed', amount: '1.00' },
      min_ctit_seconds: 0,
    })
  ).body;
  const clickId = stack.clickIds.issue({ offerId: offer.id, affiliateId: affiliate.id, clickedAt: new Date(Date.now() - 60_000) });

  let ingest = await start('ingest');
  let attribution = await start('attribution');
  let delivery = await start('delivery');

  const accepted: string[] = [];
  let refused = 0;
  const TOTAL = 240;
  // A client that, like an advertiser behind a load balancer, retries on a refused connection.
  const send = async (i: number) => {
    for (;;) {
      try {
        const res = await request(`http://127.0.0.1:${portOf(ingest)}`)
          .get('/postback')
          .query({ key: advertiser.postback_key, click_id: clickId, order_id: `BURST-${i}` });
        expect(res.status).toBe(202);
        accepted.push(res.body.postback_id);
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== 'ECONNREFUSED') throw error;
        refused += 1;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const lanes = 12;
  let next = 0;
  const burst = Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < TOTAL) await send(next++);
    }),
  );

  await waitFor(() => accepted.length >= 60, { timeoutMs: 30_000, what: '60 postbacks accepted' });
  // Workers first: SIGTERM, wait for the graceful exit, start a replacement.
  await stop(attribution);
  attribution = await start('attribution');
  await waitFor(() => accepted.length >= 120, { timeoutMs: 30_000, what: '120 postbacks accepted' });
  await stop(delivery);
  delivery = await start('delivery');
  // Ingest: a rolling replacement. The new one is up before the old one stops accepting.
  await waitFor(() => accepted.length >= 180, { timeoutMs: 30_000, what: '180 postbacks accepted' });
  const replacement = await start('ingest');
  const old = ingest;
  ingest = replacement;
  await stop(old);
  await burst;

  expect(new Set(accepted).size).toBe(TOTAL);
  await waitFor(async () => (await stack.db.prisma.postback.count({ where: { id: { in: accepted } } })) === TOTAL, {
    timeoutMs: 60_000,
    what: 'every postback processed',
  });
  const outcomes = await stack.db.prisma.postback.groupBy({ by: ['status'], where: { id: { in: accepted } }, _count: true });
  expect(outcomes).toEqual([{ status: 'accepted', _count: TOTAL }]);
  expect(await stack.db.prisma.conversion.count({ where: { advertiserId: advertiser.id } })).toBe(TOTAL);
  await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { status: 'succeeded', eventType: 'conversion.created' } })) === TOTAL, {
    timeoutMs: 60_000,
    what: 'every conversion.created delivered',
  });
  const ids = new Set(receiver.requests.map((r) => r.headers['webhook-id']));
  expect(ids.size).toBe(TOTAL);

  for (const queue of [stack.queues.postbacks, stack.queues.events, stack.queues.deliveries]) {
    const counts = await queue.getJobCounts('active', 'failed', 'waiting', 'delayed');
    expect({ queue: queue.name, ...counts }).toEqual({ queue: queue.name, active: 0, failed: 0, waiting: 0, delayed: 0 });
  }
  console.log(`burst of ${TOTAL}: ${refused} connection attempts refused while ingest restarted (retried by the client)`);
  for (const p of [ingest, attribution, delivery]) await stop(p);
  await receiver.close();
}, 180_000);
