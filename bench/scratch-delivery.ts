import { createEvent } from '@trackway/domain';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { startReceiver, waitFor } from '@trackway/testing';
import request from 'supertest';
import { startStack } from '../test/support/stack';

(async () => {
  const stack = await startStack();
  await stack.startDelivery({}, { concurrency: Number(process.env.C ?? 20) });
  const r = await startReceiver(() => ({ status: 200 }));
  await request(stack.api).post('/v1/webhook-endpoints').set(stack.auth).send({ url: r.url, event_types: ['*'] }).expect(201);
  for (const n of [50, 300]) {
    r.requests.length = 0;
    const events = Array.from({ length: n }, () => createEvent('conversion.approved', { conversion: { id: 'x' } }));
    const t0 = performance.now();
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, events));
    await publishEvents(stack.db.prisma, stack.queues.events, events);
    await waitFor(() => r.requests.length >= n, { timeoutMs: 120_000 });
    const t1 = performance.now();
    await waitFor(async () => (await stack.db.prisma.delivery.count({ where: { status: 'succeeded', eventId: { in: events.map((e) => e.id) } } })) === n, { timeoutMs: 60_000 });
    const jobs = (await stack.queues.deliveries.getJobs(['completed'], 0, 1000)).filter((j) => events.some((e) => e.id === j.data.eventId));
    const ev = (await stack.queues.events.getJobs(['completed'], 0, 1000)).filter((j) => events.some((e) => e.id === j.id));
    const avg = (xs: number[]) => (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(0);
    console.log(`fanout wait ${avg(ev.map((j) => j.processedOn! - j.timestamp))} proc ${avg(ev.map((j) => j.finishedOn! - j.processedOn!))}; delivery wait ${avg(jobs.map((j) => j.processedOn! - j.timestamp))} proc ${avg(jobs.map((j) => j.finishedOn! - j.processedOn!))}`);
    const t0abs = Date.now() - (performance.now() - t0);
    const rel = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return `min ${(s[0] - t0abs).toFixed(0)} med ${(s[Math.floor(s.length / 2)] - t0abs).toFixed(0)} max ${(s[s.length - 1] - t0abs).toFixed(0)}`; };
    console.log(`events added ${rel(ev.map((j) => j.timestamp))} | fanout done ${rel(ev.map((j) => j.finishedOn!))} | deliveries created ${rel(jobs.map((j) => j.timestamp))} | processed ${rel(jobs.map((j) => j.processedOn!))} | finished ${rel(jobs.map((j) => j.finishedOn!))} | arrived ${rel(r.requests.map((q) => q.at))}`);
    console.log(`${n} deliveries: ${(t1 - t0).toFixed(0)} ms to arrive, ${(n / ((t1 - t0) / 1000)).toFixed(0)}/s`);
  }
  await r.close();
  await stack.close();
})();
