// End to end, in one process: the admin API creates the offer, ingest issues the click and
// takes the postbacks, the attribution workers record them, the API shows the result.
import { createClickIdCodec } from '@trackway/clickid';
import { createSecretBox } from '@trackway/domain';
import { createLogger } from '@trackway/logger';
import { createProducerConnection, createQueues, createWorkerConnection, whenReady } from '@trackway/queues';
import { createMetrics } from '@trackway/runtime';
import { TEST_REDIS_URL, type TestDatabase, createTestDatabase, deleteRedisPrefix, ignoreErrors, randomPrefix, waitFor } from '@trackway/testing';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import request from 'supertest';
import { createApp as createApi } from '../services/api/src/app';
import { createVerifier, signAdminToken } from '../services/api/src/auth';
import { createApp as createIngest } from '../services/ingest/src/app';
import { createLookups } from '../services/ingest/src/lookups';
import { createWorkers } from '../services/attribution/src/workers';

const SECRET = 'pipeline-test-secret-0123456789abcdef0123456789';
const logger = createLogger({ service: 'test', level: 'silent' });

let db: TestDatabase;
let prefix: string;
let producer: Redis;
let workerConnections: Redis[];
let workers: Worker[];
let queues: ReturnType<typeof createQueues>;
let ingest: ReturnType<typeof createIngest>;
let api: ReturnType<typeof createApi>;
let auth: { Authorization: string };

beforeAll(async () => {
  db = await createTestDatabase();
  prefix = randomPrefix();
  producer = createProducerConnection(TEST_REDIS_URL);
  queues = createQueues(producer, prefix, ignoreErrors);
  const clickIds = createClickIdCodec(SECRET);
  const health = { accepting: true, checks: {} };
  ingest = createIngest({ queues, redis: producer, lookups: createLookups(db.prisma), clickIds, logger, metrics: createMetrics('ingest'), health });
  api = createApi({
    prisma: db.prisma,
    pool: db.pool,
    queues,
    redis: producer,
    box: createSecretBox(Buffer.alloc(32, 3)),
    sessionKey: Buffer.alloc(32, 3),
    webhooks: { schedule: [0], allowHttp: true, allowedCidrs: ['127.0.0.0/8'] },
    invalidate: async () => undefined,
    verifier: createVerifier({ secret: SECRET }),
    logger,
    metrics: createMetrics('api'),
    health,
  });
  auth = { Authorization: `Bearer ${await signAdminToken(SECRET)}` };
  workerConnections = [createWorkerConnection(TEST_REDIS_URL), createWorkerConnection(TEST_REDIS_URL)];
  workers = workerConnections.flatMap((connection) =>
    createWorkers(
      {
        prisma: db.prisma,
        pool: db.pool,
        clickIds,
        eventsQueue: queues.events,
        clicksQueue: queues.clicks,
        connection,
        prefix,
        logger,
        metrics: createMetrics('attribution'),
        concurrency: { postbacks: 16, clicks: 50 },
      },
      ['postbacks', 'clicks'],
    ),
  );
  await whenReady(producer);
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all(Object.values(queues).map((q) => q.close()));
  for (const c of [...workerConnections, producer]) c.disconnect();
  await deleteRedisPrefix(prefix);
  await db.drop();
});

async function setUpOffer() {
  const advertiser = (await request(api).post('/v1/advertisers').set(auth).send({ name: 'Shop' }).expect(201)).body;
  const affiliate = (await request(api).post('/v1/affiliates').set(auth).send({ name: 'Blog' }).expect(201)).body;
  const offer = (
    await request(api)
      .post('/v1/offers')
      .set(auth)
      .send({
        advertiser_id: advertiser.id,
        name: 'Sale',
        destination_url: 'https://shop.example/?cid={click_id}',
        currency: 'USD',
        payout: { type: 'percent', percent: '10' },
        min_ctit_seconds: 0,
      })
      .expect(201)
  ).body;
  const click = await request(ingest).get(`/click?offer_id=${offer.id}&affiliate_id=${affiliate.id}`).expect(302);
  const clickId = new URL(click.headers.location).searchParams.get('cid')!;
  return { advertiser, affiliate, offer, clickId };
}

const outcome = (id: string) =>
  waitFor(
    async () => {
      const res = await request(api).get(`/v1/postbacks/${id}`).set(auth).expect(200);
      return res.body.status === 'queued' ? null : res.body;
    },
    { what: `outcome of ${id}` },
  );

describe('the conversion pipeline', () => {
  it('records a conversion from a click and a postback, visible through the API', async () => {
    const { advertiser, affiliate, offer, clickId } = await setUpOffer();
    const posted = await request(ingest)
      .post('/postback')
      .set('X-Postback-Key', advertiser.postback_key)
      .send({ transaction_id: clickId, adv_sub: 'ORDER-1', sale_amount: '49.90' })
      .expect(202);
    const result = await outcome(posted.body.postback_id);
    expect(result).toMatchObject({ status: 'accepted', reason: null, conversion_id: expect.stringMatching(/^cnv_/) });

    const list = await request(api).get('/v1/conversions?order_id=ORDER-1').set(auth).expect(200);
    expect(list.body.data).toEqual([
      expect.objectContaining({
        id: result.conversion_id,
        advertiser_id: advertiser.id,
        offer_id: offer.id,
        affiliate_id: affiliate.id,
        click_id: clickId,
        status: 'approved',
        amount: '49.90',
        payout: '4.99',
        currency: 'USD',
      }),
    ]);
    // The click itself was recorded too (asynchronously, in a batch).
    await waitFor(() => db.prisma.click.findFirst({ where: { id: clickId } }), { what: 'click row' });
  });

  it('turns a storm of 200 concurrent copies of one postback into exactly one conversion, commission and conversion.created', async () => {
    const { advertiser, clickId } = await setUpOffer();
    const responses = await Promise.all(
      Array.from({ length: 200 }, () =>
        request(ingest).get('/postback').query({ key: advertiser.postback_key, click_id: clickId, order_id: 'STORM-1', amount: '10.00' }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(200).fill(202));
    const ids = responses.map((r) => r.body.postback_id as string);
    await waitFor(async () => (await db.prisma.postback.count({ where: { id: { in: ids } } })) === 200, { timeoutMs: 60_000, what: '200 outcomes' });
    const outcomes = await Promise.all(ids.map(async (id) => (await request(api).get(`/v1/postbacks/${id}`).set(auth).expect(200)).body));
    expect(outcomes.filter((o) => o.status === 'accepted')).toHaveLength(1);
    expect(outcomes.filter((o) => o.status === 'duplicate')).toHaveLength(199);

    const list = await request(api).get('/v1/conversions?order_id=STORM-1').set(auth).expect(200);
    expect(list.body.data).toHaveLength(1);
    const conversionId = list.body.data[0].id;
    expect(await db.prisma.commission.count({ where: { conversionId } })).toBe(1);
    const created = await db.prisma.outboxEvent.findMany({ where: { type: 'conversion.created' } });
    expect(created.filter((e) => (e.payload as { data: { conversion: { id: string } } }).data.conversion.id === conversionId)).toHaveLength(1);
  });

  it('shows why a postback did not count', async () => {
    const { advertiser, clickId } = await setUpOffer();
    const forged = `${clickId.slice(0, 10)}${clickId[10] === 'A' ? 'B' : 'A'}${clickId.slice(11)}`;
    const posted = await request(ingest).get('/postback').query({ key: advertiser.postback_key, click_id: forged, order_id: 'FORGED-1' }).expect(202);
    expect(await outcome(posted.body.postback_id)).toMatchObject({ status: 'rejected', reason: 'unknown_click', conversion_id: null });
  });
});
