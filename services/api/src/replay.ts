import { unavailable } from '@trackway/http';
import { deliveryJobOptions, replayJobId } from '@trackway/queues';
import type { ApiDeps } from './deps';

const REPLAY_PAGE = 500;

/**
 * Re-sends deliveries (same event, same webhook-id), each as a new job with the full schedule.
 * Only deliveries that are not pending are taken, by one conditional UPDATE that also counts the
 * replay: two concurrent requests cannot both replay a delivery. With `asRead` (the replay count
 * the caller read), only a delivery no replay has touched since is taken: of two retries that
 * read it at once, the second is refused even when the first's replay has already finished.
 * Returns how many were replayed.
 */
export async function replayDeliveries(deps: ApiDeps, ids: string[], asRead?: { replayCount: number }): Promise<number> {
  if (ids.length === 0) return 0;
  if (deps.redis.status !== 'ready') throw unavailable('The replay could not be queued; retry later.');
  const flipped = await deps.prisma.$queryRaw<
    { id: string; event_id: string; endpoint_id: string; event_type: string; replay_count: number; previous: string }[]
  >`
    WITH old AS (
      SELECT id, status FROM deliveries
       WHERE id = ANY(${ids}::varchar[]) AND status <> 'pending' AND (${asRead?.replayCount ?? null}::int IS NULL OR replay_count = ${asRead?.replayCount ?? null}::int)
         FOR UPDATE
    )
    UPDATE deliveries d SET status = 'pending', replay_count = d.replay_count + 1, next_attempt_at = now(), updated_at = now()
    FROM old WHERE d.id = old.id
    RETURNING d.id, d.event_id, d.endpoint_id, d.event_type, d.replay_count, old.status::text AS previous`;
  if (flipped.length === 0) return 0;
  try {
    await deps.queues.deliveries.addBulk(
      flipped.map((d) => ({
        name: d.event_type,
        data: { deliveryId: d.id, endpointId: d.endpoint_id, eventId: d.event_id, replay: true, replayCount: d.replay_count },
        opts: deliveryJobOptions(deps.webhooks.schedule, replayJobId(d.event_id, d.endpoint_id, d.replay_count)),
      })),
    );
  } catch (error) {
    // Not queued: put the statuses back (unless a later replay took over meanwhile).
    for (const d of flipped) {
      await deps.prisma.delivery.updateMany({
        where: { id: d.id, replayCount: d.replay_count, status: 'pending' },
        data: { status: d.previous as 'failed' | 'succeeded' },
      });
    }
    deps.logger.warn({ err: error }, 'replay not queued');
    throw unavailable('The replay could not be queued; retry later.');
  }
  return flipped.length;
}

/** Replays in pages (the recover route takes at most RECOVER_MAX a call). */
export async function replayInPages(deps: ApiDeps, ids: string[]): Promise<number> {
  let replayed = 0;
  for (let i = 0; i < ids.length; i += REPLAY_PAGE) replayed += await replayDeliveries(deps, ids.slice(i, i + REPLAY_PAGE));
  return replayed;
}
