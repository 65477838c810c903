// An upgrade to per-queue hash tags with jobs waiting in the layout before (every queue under
// QUEUE_PREFIX itself): a postback answered 202 and a queued delivery are still found, drained in
// place by workers of their own (as the services' mains start them), and done once.
import { createEvent, newId, newIdBlock } from '@trackway/domain';
import { writeEvents } from '@trackway/outbox';
import { POSTBACK_JOB_VERSION, createOldLayoutQueue, deliveryJobId, findOldDeliveryQueues, findOldLayoutQueues } from '@trackway/queues';
import { type Receiver, ignoreErrors, startReceiver, waitFor } from '@trackway/testing';
import { createSweeper } from '../services/delivery/src/housekeeping';
import { adminApi, createProgram } from './support/program';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let receiver: Receiver;
beforeAll(async () => {
  stack = await startStack();
  receiver = await startReceiver();
});
afterAll(async () => {
  await stack.close();
  await receiver.close();
});

it('runs a postback answered 202 before the upgrade: looked up while it waits, attributed once drained', async () => {
  const program = await createProgram(stack);
  // As the previous version's ingest queued it: the postbacks queue under QUEUE_PREFIX itself.
  const old = createOldLayoutQueue('postbacks', stack.producer, stack.prefix, ignoreErrors);
  const block = newIdBlock('postback');
  const postbackId = block.member(0);
  await old.add(
    'postbacks',
    {
      postbacks: [
        {
          postbackId,
          v: POSTBACK_JOB_VERSION,
          advertiserId: program.advertiser.id,
          receivedAt: new Date().toISOString(),
          clickId: program.clickId,
          orderId: 'before-upgrade',
          event: 'conversion',
          status: 'approved',
        },
      ],
    },
    { jobId: block.id },
  );
  expect(await stack.producer.exists(`${stack.prefix}:postbacks:${block.id}`)).toBe(1);
  const api = adminApi(stack);
  expect((await api.get(`/v1/postbacks/${postbackId}`).expect(200)).body.status).toBe('queued');

  // The upgraded attribution: its own queues, and a worker on each old one still holding work.
  const workers = stack.startAttribution();
  const found = await findOldLayoutQueues(stack.producer, stack.prefix, ['postbacks', 'clicks'], ignoreErrors);
  expect(found.map(({ name }) => name)).toEqual(['postbacks']);
  for (const { name, queue } of found) workers.push(workers.drainOld(queue, name));
  const outcome = await waitFor(
    async () => {
      const body = (await api.get(`/v1/postbacks/${postbackId}`).expect(200)).body;
      return body.status === 'queued' ? null : body;
    },
    { what: 'the postback attributed' },
  );
  expect(outcome.status).toBe('accepted');
  expect(await stack.db.prisma.conversion.count({ where: { orderId: 'before-upgrade' } })).toBe(1);
  expect(await old.getCompletedCount()).toBe(1);
  await stack.stopWorkers(workers);
  await Promise.all([old, ...found.map(({ queue }) => queue)].map((q) => q.close()));
});

it('sends a delivery queued before the upgrade once: the sweeper sees its job where it waits, the drain sends it', async () => {
  const endpoint = await stack.subscribe(`${receiver.url}/upgrade`, ['conversion.approved']);
  const event = createEvent('conversion.approved', { conversion: { id: 'cnv_upgrade' } });
  await stack.db.prisma.$transaction((tx) => writeEvents(tx, [event]));
  const delivery = await stack.db.prisma.delivery.create({
    data: { id: newId('delivery'), eventId: event.id, endpointId: endpoint.id, eventType: event.type, nextAttemptAt: new Date(Date.now() - 600_000) },
  });
  // As the previous version's fan-out queued it, in the deliveries queue under QUEUE_PREFIX itself.
  const old = createOldLayoutQueue('deliveries', stack.producer, stack.prefix, ignoreErrors);
  const jobId = deliveryJobId(event.id, endpoint.id);
  await old.add(event.type, { deliveryId: delivery.id, endpointId: endpoint.id, eventId: event.id }, { jobId, attempts: 3, delay: 500 });

  // The upgraded delivery process finds the old queue: the sweeper, due now, puts back nothing
  // (the delivery has a live job there), and the fan-out of the event again queues nothing new.
  const found = await findOldDeliveryQueues(stack.queues.deliveries, stack.producer, ignoreErrors);
  expect(found.map((q) => `${q.opts.prefix}:${q.name}`)).toEqual([`${stack.prefix}:deliveries`]);
  const sweep = createSweeper({
    pool: stack.db.pool,
    deliveriesQueue: stack.queues.deliveries,
    schedule: [0, 50, 100],
    logger: { warn: () => undefined } as never,
  });
  expect(await sweep(new Date(), 0)).toMatchObject({ requeued: 0 });
  await stack.queues.deliveries.add(event.type, { deliveryId: delivery.id, endpointId: endpoint.id, eventId: event.id }, { jobId });
  expect(await stack.queues.deliveries.of(endpoint.id).getJobState(jobId)).toBe('unknown');

  const workers = await stack.startDelivery({}, { queues: ['deliveries'] });
  workers.push(...found.map((queue) => workers.drain(queue, 'deliveries')));
  await waitFor(async () => (await stack.db.prisma.delivery.findUnique({ where: { id: delivery.id } }))?.status === 'succeeded', {
    what: 'the delivery sent from the old queue',
  });
  expect(receiver.requests.filter((r) => r.path === '/hooks/upgrade').map((r) => r.headers['webhook-id'])).toEqual([event.id]);
  expect(await old.getCompletedCount()).toBe(1);
  await stack.stopWorkers(workers);
  await old.close();
});
