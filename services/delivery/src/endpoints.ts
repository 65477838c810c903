import type { PrismaClient } from '@trackway/db';
import { type PartnerEvent, type PartnerTemplate, type SecretBox, openHeaders, partnerRequest, partnerSettingsOf, partnerTargets } from '@trackway/domain';
import { cachedLookup } from '@trackway/runtime';
import { RESERVED_HEADERS } from '@trackway/webhooks';

export interface LiveEndpoint {
  id: string;
  kind: 'webhook' | 'partner_postback';
  /** A webhook's URL; a partner postback's as shown (masked): `partner.url` is the one it calls. */
  url: string;
  /** A partner postback's affiliate, offer (null: all of the affiliate's) and request template; null for a webhook. */
  partner: (PartnerTemplate & { affiliateId: number; offerId: number | null }) | null;
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
    kind: row.kind,
    url: row.url,
    partner:
      row.kind === 'partner_postback' && row.urlSealed && row.affiliateId !== null
        ? { affiliateId: row.affiliateId, offerId: row.offerId, url: box.open(row.urlSealed), ...partnerSettingsOf(row) }
        : null,
    eventTypes: row.eventTypes,
    // Filtered once per load: a reserved name (stored before the api refused them) never overrides ours.
    headers: Object.fromEntries(Object.entries(openHeaders(box, row)).filter(([name]) => !RESERVED_HEADERS.has(name.toLowerCase()))),
    rateLimitPerSecond: row.rateLimitPerSecond,
    enabled: row.enabled,
    secret: row.secretSealed === null ? '' : box.open(row.secretSealed),
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

  // Whether an offer's partner postbacks may carry the sale amount ({amount}).
  const sharing = cachedLookup((id) => prisma.offer.findUnique({ where: { id: Number(id) }, select: { shareAmountWithPartners: true } }), { ttlMs: TTL_MS });

  return {
    /** Enabled webhook endpoints subscribed to an event type (or to "*"). */
    async subscribers(type: string): Promise<LiveEndpoint[]> {
      const { list } = (await enabled.get('all'))!;
      return list.filter((e) => e.kind === 'webhook' && (e.eventTypes.includes('*') || e.eventTypes.includes(type)));
    },
    /** The enabled partner postbacks a conversion event goes to (partnerTargets: an offer's own replace the affiliate's global ones). */
    async partners(type: string, affiliateId: number, offerId: number): Promise<LiveEndpoint[]> {
      const { list } = (await enabled.get('all'))!;
      const candidates = list.flatMap((e) => (e.partner ? [{ ...e.partner, id: e.id, eventTypes: e.eventTypes, endpoint: e }] : []));
      return partnerTargets(candidates, type, affiliateId, offerId).map((c) => c.endpoint);
    },
    get: (id: string) => byId.get(id),
    /**
     * What a partner postback sends for a conversion event (partnerRequest), the sale's amount
     * included where the conversion's offer shares it; null: a template that would leave its host.
     */
    async partnerRequest(partner: PartnerTemplate, event: PartnerEvent) {
      const offerId = event.data.conversion?.offer_id;
      const shareAmount = typeof offerId === 'number' && (await sharing.get(offerId))?.shareAmountWithPartners === true;
      return partnerRequest(partner, event, { shareAmount });
    },
    clear() {
      enabled.clear();
      byId.clear();
    },
    /** An offer changed (its sharing flag may have). */
    clearOffers: () => sharing.clear(),
  };
}

export type EndpointDirectory = ReturnType<typeof createEndpointDirectory>;
