// Ingest puts the postbacks of one event-loop turn into one job: each is still found by its own
// id while queued and after attribution, and a job run twice changes nothing.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { idBlockOf } from '@trackway/domain';
import { createFixture, waitFor } from '@trackway/testing';
import request from 'supertest';
import { createEnqueuers } from '../services/ingest/src/enqueue';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

const outcome = (id: string) => request(stack.api).get(`/v1/postbacks/${id}`).set(stack.auth);

it('finds every postback of a coalesced job by its id, queued and then attributed', async () => {
  const fx = await createFixture(stack.db.prisma);
  const enqueue = createEnqueuers({ redis: stack.producer, queues: stack.queues });
  const clickId = stack.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId, clickedAt: new Date(Date.now() - 60_000) });
  const receivedAt = new Date().toISOString();
  // Accepted in one turn: one job, one Redis round trip.
  const ids = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      enqueue.postback({ advertiserId: fx.advertiserId, receivedAt, clickId, orderId: `CO-${i}`, event: 'conversion', amount: '10', status: 'approved' }),
    ),
  );
  expect(new Set(ids).size).toBe(40);
  // 32 ids fit a block: two jobs, each named by its block.
  const jobIds = [...new Set(ids.map(idBlockOf))];
  expect(jobIds).toHaveLength(2);
  const jobs = await Promise.all(jobIds.map((id) => stack.queues.postbacks.getJob(id)));
  expect(jobs.map((j) => j?.data.postbacks.length)).toEqual([32, 8]);
  for (const id of [ids[0], ids[17], ids[31], ids[32], ids[39]]) {
    expect((await outcome(id).expect(200)).body).toMatchObject({ id, status: 'queued', reason: null, advertiser_id: fx.advertiserId, received_at: receivedAt });
  }
  // An id of the same block that no postback got is not a postback.
  const unused = `${ids[39].slice(0, -1)}Z`;
  await outcome(unused).expect(404);

  const workers = stack.startAttribution();
  try {
    for (const id of ids) {
      const body = await waitFor(
        async () => {
          const res = (await outcome(id).expect(200)).body;
          return res.status === 'queued' ? null : res;
        },
        { what: `the outcome of ${id}` },
      );
      expect(body).toMatchObject({ id, status: 'accepted', conversion_id: expect.stringMatching(/^cnv_/) });
    }
    // Retried from Bull Board: harmless.
    const conversions = await stack.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId } });
    const events = await stack.db.prisma.outboxEvent.count();
    await jobs[0]!.retry('completed');
    await waitFor(
      async () =>
        (await stack.queues.postbacks.getJob(jobIds[0]))?.attemptsStarted === 2 && (await stack.queues.postbacks.getJobState(jobIds[0])) === 'completed',
      { what: 'the retried job to complete' },
    );
    expect(await stack.db.prisma.conversion.count({ where: { advertiserId: fx.advertiserId } })).toBe(conversions);
    expect(await stack.db.prisma.outboxEvent.count()).toBe(events);
  } finally {
    await stack.stopWorkers(workers);
  }
});

it('answers every concurrent request with its own postback id, each in Redis before its 202', async () => {
  const fx = await createFixture(stack.db.prisma);
  const server = http.createServer(stack.ingest).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const port = (server.address() as AddressInfo).port;
  const clickId = stack.clickIds.issue({ offerId: fx.offerId, affiliateId: fx.affiliateId });
  const get = (i: number) =>
    new Promise<{ status: number; body: { postback_id: string } }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, agent, path: `/postback?key=${fx.postbackKey}&click_id=${clickId}&order_id=PAR-${i}` }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        })
        .on('error', reject);
    });
  try {
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => get(i)));
    expect(answers.map((a) => a.status)).toEqual(Array(200).fill(202));
    const ids = answers.map((a) => a.body.postback_id);
    expect(new Set(ids).size).toBe(200);
    const queued = (await stack.queues.postbacks.getJobs(['waiting'])).flatMap((job) => job.data.postbacks.map((p) => [job.id, p.postbackId, p.orderId]));
    for (const [i, id] of ids.entries()) expect(queued).toContainEqual([idBlockOf(id), id, `PAR-${i}`]);
  } finally {
    agent.destroy();
    server.close();
  }
});
