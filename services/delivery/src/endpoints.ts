import type { PrismaClient } from '@trackway/db';
import { type SecretBox, openHeaders } from '@trackway/domain';
import { cachedLookup } from '@trackway/runtime';
import { RESERVED_HEADERS } from '@trackway/webhooks';

export interface LiveEndpoint {
  id: string;
  url: string;
  eventTypes: string[];
  /** The custom headers to send, reserved names (the signature's, content-type…) already left out. */
  headers: Record<string, string>;
  rateLimitPerSecond: number | null;
  enabled: boolean;
  secret: string;
  previousSecret: { secret: string; expiresAt: Date } | null;
  failingSince: Date | null;
}

const TTL_MS = 30_000;

/** The secrets that sign a request now: the current one, and the previous one during its overlap. */
export function liveSecrets(endpoint: LiveEndpoint, now = new Date()): string[] {
  return endpoint.previousSecret && endpoint.previousSecret.expiresAt > now ? [endpoint.secret, endpoint.previousSecret.secret] : [endpoint.secret];
}

/**
 * Endpoint lookups for fan-out and delivery, cached (secrets and headers decrypted once per load) and
 * cleared when the API announces a change.
 */
export function createEndpointDirectory(prisma: PrismaClient, box: SecretBox) {
  type Row = Awaited<ReturnType<PrismaClient['webhookEndpoint']['findMany']>>[number];
  const toLive = (row: Row): LiveEndpoint => ({
    id: row.id,
    url: row.url,
    eventTypes: row.eventTypes,
    // Filtered once per load: a reserved name (stored before the api refused them) never overrides ours.
    headers: Object.fromEntries(Object.entries(openHeaders(box, row)).filter(([name]) => !RESERVED_HEADERS.has(name.toLowerCase()))),
    rateLimitPerSecond: row.rateLimitPerSecond,
    enabled: row.enabled,
    secret: box.open(row.secretSealed),
    previousSecret:
      row.previousSecretSealed && row.previousSecretExpiresAt ? { secret: box.open(row.previousSecretSealed), expiresAt: row.previousSecretExpiresAt } : null,
    failingSince: row.failingSince,
  });
  const enabled = cachedLookup(async () => ({ list: (await prisma.webhookEndpoint.findMany({ where: { enabled: true } })).map(toLive) }), {
    ttlMs: TTL_MS,
    max: 1,
  });
  const byId = cachedLookup(
    async (id) => {
      const row = await prisma.webhookEndpoint.findUnique({ where: { id } });
      return row ? toLive(row) : null;
    },
    { ttlMs: TTL_MS },
  );

  return {
    /** Enabled endpoints subscribed to an event type (or to "*"). */
    async subscribers(type: string): Promise<LiveEndpoint[]> {
      const { list } = (await enabled.get('all'))!;
      return list.filter((e) => e.eventTypes.includes('*') || e.eventTypes.includes(type));
    },
    get: (id: string) => byId.get(id),
    clear() {
      enabled.clear();
      byId.clear();
    },
  };
}

export type EndpointDirectory = ReturnType<typeof createEndpointDirectory>;
