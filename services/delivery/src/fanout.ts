import type { PrismaClient } from '@trackway/db';
import { newId } from '@trackway/domain';
import { type EventJob, type TypedQueue, deliveryJobId, deliveryJobOptions } from '@trackway/queues';
import type { EndpointDirectory } from './endpoints';

/**
 * One delivery per enabled endpoint subscribed to the event's type (a `webhook.test` event
 * goes only to the endpoint it names). Rows are unique on (event, endpoint) and jobs use the
 * id `<event id>-<endpoint id>`, so fanning out the same event twice delivers once.
 */
export function createFanOutHandler(deps: { prisma: PrismaClient; endpoints: EndpointDirectory; deliveriesQueue: TypedQueue<'deliveries'>; schedule: readonly number[] }) {
  const { prisma, endpoints, deliveriesQueue, schedule } = deps;
  return async function fanOut(event: EventJob) {
    let targets: string[];
    if (event.type === 'webhook.test') {
      const endpoint = await endpoints.get(String(event.data.endpoint_id));
      targets = endpoint ? [endpoint.id] : [];
    } else {
      targets = (await endpoints.subscribers(event.type)).map((e) => e.id);
    }
    if (targets.length === 0) return { deliveries: 0 };
    const created = await prisma.delivery.createManyAndReturn({
      data: targets.map((endpointId) => ({ id: newId('delivery'), eventId: event.id, endpointId, eventType: event.type })),
      skipDuplicates: true,
      select: { id: true, endpointId: true },
    });
    // A second fan-out of the event (or the test send's pre-written row) finds existing rows:
    // enqueue every still-pending one, so a crash between insert and enqueue loses nothing;
    // existing jobs are not duplicated (same job id).
    const pending =
      created.length === targets.length
        ? created
        : await prisma.delivery.findMany({ where: { eventId: event.id, endpointId: { in: targets }, status: 'pending' }, select: { id: true, endpointId: true } });
    await deliveriesQueue.addBulk(
      pending.map((d) => ({
        name: event.type,
        data: { deliveryId: d.id, endpointId: d.endpointId, eventId: event.id },
        opts: deliveryJobOptions(schedule, deliveryJobId(event.id, d.endpointId)),
      })),
    );
    return { deliveries: pending.length };
  };
}
