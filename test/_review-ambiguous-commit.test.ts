// Review scratch: the attempt's record committed, but the reply was lost (connection cut after
// Postgres answered). record() retries the same attempt: a second attempt row, attempt_count 2,
// for ONE request the receiver got.
import net from 'node:net';
import { createDatabase, type Database } from '@trackway/db';
import { createEvent } from '@trackway/domain';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { startReceiver, waitFor } from '@trackway/testing';
import request from 'supertest';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
let proxied: Database;
let server: net.Server;
let armed = false;
let cut = 0;
beforeAll(async () => {
  stack = await startStack();
  server = net.createServer((client) => {
    const upstream = net.connect(5432, '127.0.0.1');
    let pending = false;
    client.on('data', (chunk) => {
      if (armed && chunk.includes('attempts-record')) pending = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (pending) {
        armed = false;
        pending = false;
        cut += 1;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = new URL(stack.db.url);
  url.port = String((server.address() as net.AddressInfo).port);
  proxied = createDatabase(url.toString(), { poolSize: 5 });
});
afterAll(async () => {
  await stack.stopWorkers();
  await proxied.prisma.$disconnect();
  server.close();
  await stack.close();
});

it('logs one HTTP attempt once even if the reply to its commit was lost', async () => {
  await stack.startDelivery({}, { database: proxied });
  const receiver = await startReceiver(() => ({ status: 200 }));
  const ep = (await request(stack.api).post('/v1/webhook-endpoints').set(stack.auth).send({ url: receiver.url, event_types: ['conversion.approved'] }).expect(201)).body;
  armed = true;
  const event = createEvent('conversion.approved', { conversion: { id: 'cnv_1' } });
  await stack.db.prisma.$transaction((tx) => writeEvents(tx, [event]));
  await publishEvents(stack.db.pool, stack.queues.events, [event]);
  await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { endpointId: ep.id, status: 'succeeded' } })) === 1, { timeoutMs: 15_000, what: 'delivered' });
  await new Promise((r) => setTimeout(r, 1500));
  const d = await stack.db.prisma.delivery.findFirstOrThrow({ where: { endpointId: ep.id }, include: { attempts: true } });
  console.log(JSON.stringify({ cut, requestsReceived: receiver.requests.length, attempt_count: d.attemptCount, attempt_rows: d.attempts.map((a) => ({ number: a.number, status: a.statusCode })) }));
  await receiver.close();
  expect(receiver.requests.length).toBe(1);
  expect(d.attemptCount).toBe(1);
  expect(d.attempts).toHaveLength(1);
});
