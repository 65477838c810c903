// A receiver's Retry-After on 429/503 is honoured up to DELIVERY_RETRY_AFTER_MAX (issue 9 §4),
// not clamped to twice the scheduled delay: end to end, through the delivery worker.
import { createEvent } from '@trackway/domain';
import { publishEvents, writeEvents } from '@trackway/outbox';
import { startReceiver, waitFor } from '@trackway/testing';
import request from 'supertest';
import { type Stack, startStack } from './support/stack';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

it.each([
  ['honoured as sent', 3_600_000, 120, 120_000],
  ['capped at DELIVERY_RETRY_AFTER_MAX', 30_000, 120, 30_000],
])('Retry-After: 120 after a 429 → the next attempt %s', async (_what, retryAfterMaxMs, retryAfterSeconds, expectedMs) => {
  const workers = await stack.startDelivery({ schedule: [0, 50, 100], retryAfterMaxMs });
  const receiver = await startReceiver(() => ({ status: 429, headers: { 'retry-after': String(retryAfterSeconds) } }));
  try {
    const ep = await stack.subscribe(receiver.url, ['conversion.approved']);
    const event = createEvent('conversion.approved', { conversion: { id: `cnv_ra_${retryAfterMaxMs}` } });
    await stack.db.prisma.$transaction((tx) => writeEvents(tx, [event]));
    const sentAt = Date.now();
    await publishEvents(stack.db.pool, stack.queues.events, [event]);
    const delivery = await waitFor(
      async () => {
        const row = await stack.db.prisma.delivery.findFirst({ where: { endpointId: ep.id, eventId: event.id } });
        return row && row.attemptCount === 1 && row.nextAttemptAt ? row : undefined;
      },
      { what: 'the first attempt recorded' },
    );
    const waitMs = delivery.nextAttemptAt!.getTime() - sentAt;
    // (The schedule's own delay here is 50 ms: it used to be clamped to 100 ms.)
    expect(waitMs).toBeGreaterThan(expectedMs - 5_000);
    expect(waitMs).toBeLessThan(expectedMs + 5_000);
    expect(receiver.requests).toHaveLength(1);
    await request(stack.api).post(`/v1/webhook-endpoints/${ep.id}/disable`).set(stack.auth).expect(200);
  } finally {
    await stack.stopWorkers(workers);
    await receiver.close();
  }
});
