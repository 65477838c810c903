import type { IncomingMessage, ServerResponse } from 'node:http';
import { SUB_NAMES, destinationFor } from '@trackway/domain';
import { HttpError, badRequest, textProblem, unavailable } from '@trackway/http';
import { STATIC_SECURITY_HEADERS, clientAddress } from '@trackway/runtime';
import encodeUrl from 'encodeurl';
import type { IngestContext, Query } from './context';

const POSITIVE_INT = /^[1-9]\d{0,9}$/;

/**
 * `GET /click`: issues a click ID and redirects to the offer's destination with it. Recording
 * the click is for reporting only: the click ID is self-verifying, so the redirect never waits on
 * (or fails with) the clicks queue. A HEAD (a link checker, a preview) is answered like the GET
 * but records no click.
 */
export function createClickHandler({ deps, enqueue, trust, reportRedisError, reportLookupError }: IngestContext) {
  const { lookups, clickIds, metrics } = deps;
  return async (req: IncomingMessage, res: ServerResponse, query: Query) => {
    const fields: Record<string, string> = {};
    const offerId = single(query, 'offer_id', fields);
    const affiliateId = single(query, 'affiliate_id', fields);
    if (offerId !== undefined && !POSITIVE_INT.test(offerId)) fields.offer_id = 'must be a positive integer';
    if (affiliateId !== undefined && !POSITIVE_INT.test(affiliateId)) fields.affiliate_id = 'must be a positive integer';
    if (offerId === undefined) fields.offer_id ??= 'is required';
    if (affiliateId === undefined) fields.affiliate_id ??= 'is required';
    const subs: Partial<Record<(typeof SUB_NAMES)[number], string>> = {};
    for (const key of SUB_NAMES) {
      const value = single(query, key, fields);
      const problem = value === undefined ? null : value.length > 255 ? 'must be at most 255 characters' : textProblem(value);
      if (problem) fields[key] = problem;
      else if (value !== undefined) subs[key] = value;
    }
    if (Object.keys(fields).length > 0) throw badRequest(fields);

    const [offer, affiliate] = await Promise.all([lookups.offer.get(offerId!), lookups.affiliate.get(affiliateId!)]).catch((error: unknown) => {
      reportLookupError({ lookup: 'offer_or_affiliate' }, error, 'offer or affiliate lookup failed');
      throw unavailable('Clicks cannot be resolved right now; retry later.', 5);
    });
    if (offer?.status !== 'active') {
      metrics.clicks.inc({ outcome: 'not_found' });
      throw new HttpError(404, 'offer_not_found', 'No active offer has this offer_id.');
    }
    if (affiliate?.status !== 'active') {
      metrics.clicks.inc({ outcome: 'not_found' });
      throw new HttpError(404, 'affiliate_not_found', 'No active affiliate has this affiliate_id.');
    }

    const clickedAt = new Date();
    const clickId = clickIds.issue({ offerId: offer.id, affiliateId: affiliate.id, clickedAt });
    const destination = destinationFor(offer.destinationUrl, { click_id: clickId, offer_id: String(offer.id), affiliate_id: String(affiliate.id), ...subs });
    // A template stored before macros in the host were refused: never redirect off its host.
    if (destination === null)
      throw new HttpError(409, 'destination_refused', "The offer's destination would leave its host with these values; its advertiser must fix it.");
    const userAgent = req.headers['user-agent'];
    if (req.method !== 'HEAD')
      enqueue
        // proxy-addr finds no address once the client has gone (its socket closed meanwhile).
        .click({
          clickId,
          offerId: offer.id,
          affiliateId: affiliate.id,
          clickedAt: clickedAt.toISOString(),
          subs,
          ip: clientAddress(req, trust)?.slice(0, 45),
          userAgent: userAgent?.slice(0, 512),
        })
        .catch((error: unknown) => {
          metrics.clicks.inc({ outcome: 'enqueue_failed' });
          reportRedisError({}, error, 'click not recorded');
        });
    metrics.clicks.inc({ outcome: 'redirected' });
    const location = encodeUrl(destination);
    const body = `Found. Redirecting to ${location}`;
    res.writeHead(302, {
      ...STATIC_SECURITY_HEADERS,
      location,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  };
}

function single(query: Query, name: string, fields: Record<string, string>): string | undefined {
  const value = query[name];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') {
    fields[name] = 'given more than once';
    return undefined;
  }
  return value;
}
