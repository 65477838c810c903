import type { ClickIdCodec } from '@trackway/clickid';
import { Prisma, type PrismaClient, type Tx } from '@trackway/db';
import {
  type ConversionStatus,
  Decimal,
  type EventEnvelope,
  type RuleHit,
  commissionJson,
  commissionStatusFor,
  computePayout,
  conversionJson,
  createEvent,
  decideRepeat,
  evaluateFraud,
  fraudFlagJson,
  newId,
} from '@trackway/domain';
import { transitionConversion } from '@trackway/ledger';
import { writeEvents } from '@trackway/outbox';
import type { PostbackJob } from '@trackway/queues';

export type PostbackOutcome = {
  status: 'accepted' | 'duplicate' | 'rejected';
  reason: string | null;
  conversionId: string | null;
  /** Set when the conversion entered a status (created or changed): for metrics. */
  conversionStatus?: ConversionStatus;
};

export interface ProcessResult {
  outcome: PostbackOutcome;
  /** Events committed with the outcome, to publish after commit. Empty on a replayed job. */
  events: EventEnvelope[];
  /** True when an earlier run of this job had already committed the outcome. */
  replayed: boolean;
}

/**
 * Everything a postback causes, in one transaction: its outcome row, the conversion, the
 * commission, fraud flags and outbox events. Idempotent by the postback id (a replay after
 * commit finds the outcome row) and by the (advertiser, order_id, event) unique index.
 */
export type Offer = NonNullable<Awaited<ReturnType<PrismaClient['offer']['findUnique']>>>;
type Conversion = NonNullable<Awaited<ReturnType<PrismaClient['conversion']['findUnique']>>>;
export type OfferLookup = (id: number) => Promise<Offer | null>;

export async function processPostback(prisma: PrismaClient, clickIds: ClickIdCodec, job: PostbackJob, offers?: OfferLookup): Promise<ProcessResult> {
  const loadOffer: OfferLookup = offers ?? ((id) => prisma.offer.findUnique({ where: { id } }));
  try {
    return await prisma.$transaction((tx) => attribute(tx, clickIds, job, loadOffer));
  } catch (error) {
    // This job ran before (a retry after a crash, or a stalled job's second copy): the outcome
    // row's primary key refused the second write, the transaction rolled back, and the first
    // outcome stands. (Rare, so it is cheaper than a lookup before every transaction.)
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002' && String(error.meta?.modelName) === 'Postback') {
      const row = await prisma.postback.findUniqueOrThrow({ where: { id: job.postbackId } });
      return { outcome: outcomeOf(row), events: [], replayed: true };
    }
    throw error;
  }
}

function outcomeOf(row: { status: PostbackOutcome['status']; reason: string | null; conversionId: string | null }): PostbackOutcome {
  return { status: row.status, reason: row.reason, conversionId: row.conversionId };
}

async function attribute(tx: Tx, clickIds: ClickIdCodec, job: PostbackJob, loadOffer: OfferLookup): Promise<ProcessResult> {
  const receivedAt = new Date(job.receivedAt);
  const click = clickIds.verify(job.clickId);
  const offer = click ? await loadOffer(click.offerId) : null;
  const verdict = evaluateFraud({ click, offer, advertiserId: job.advertiserId, receivedAt, amount: job.amount });
  const events: EventEnvelope[] = [];
  const now = new Date();

  const recordFlags = async (hits: RuleHit[], conversionId: string | null) => {
    if (hits.length === 0) return [];
    const rows = hits.map((hit) => ({
      id: newId('fraudFlag'),
      postbackId: job.postbackId,
      conversionId,
      rule: hit.rule,
      details: hit.details,
      createdAt: now,
    }));
    await tx.fraudFlag.createMany({ data: rows });
    for (const row of rows) events.push(createEvent('fraud.flagged', { fraud_flag: fraudFlagJson(row) }, now));
    return rows.map((r) => r.rule);
  };

  const finish = async (outcome: PostbackOutcome): Promise<ProcessResult> => {
    await tx.postback.create({
      data: {
        id: job.postbackId,
        advertiserId: job.advertiserId,
        status: outcome.status,
        reason: outcome.reason,
        conversionId: outcome.conversionId,
        params: paramsOf(job),
        receivedAt,
        processedAt: now,
      },
    });
    await writeEvents(tx, events);
    return { outcome, events, replayed: false };
  };

  const key = { advertiserId_orderId_event: { advertiserId: job.advertiserId, orderId: job.orderId, event: job.event } };

  // A repeat of an existing conversion: a duplicate, a status change, or an invalid transition.
  // The creation rules (window, CTIT, cap) judged the conversion once, when it was created.
  const repeat = async (current: Conversion): Promise<ProcessResult> => {
    const decision = decideRepeat(current.status, job.status, current.holdReason);
    if (decision.kind === 'duplicate') return finish({ status: 'duplicate', reason: null, conversionId: current.id });
    if (decision.kind === 'invalid_transition') {
      return finish({ status: 'rejected', reason: 'invalid_transition', conversionId: current.id });
    }
    // A concurrent transition makes this job retry (ConcurrentUpdateError), never a lost update.
    events.push(...(await transitionConversion(tx, { id: current.id, from: decision.from, to: decision.to as 'approved' | 'rejected' }, now)));
    return finish({ status: 'accepted', reason: null, conversionId: current.id, conversionStatus: decision.to });
  };

  // A status update (a late approval, a refund) for an order converted inside the window still
  // counts after the window has closed: only a new conversion is refused as click_expired.
  if (verdict.rejection?.rule === 'click_expired') {
    const existing = await tx.conversion.findUnique({ where: key });
    if (existing) return repeat(existing);
  }

  if (verdict.rejection || !click || !offer) {
    await recordFlags(verdict.hits, null);
    return finish({ status: 'rejected', reason: verdict.rejection?.rule ?? 'unknown_click', conversionId: null });
  }

  const currency = job.currency ?? offer.currency;
  const payout = computePayout(
    offer.payoutType === 'fixed'
      ? { type: 'fixed', amount: offer.payoutAmount ?? 0, currency: offer.currency }
      : { type: 'percent', percent: offer.payoutPercent ?? 0 },
    job.amount,
    currency,
  );
  const held = verdict.hold !== null && job.status !== 'rejected';
  const status: ConversionStatus = held ? 'pending' : job.status;

  const [created] = await tx.conversion.createManyAndReturn({
    data: [
      {
        id: newId('conversion'),
        advertiserId: job.advertiserId,
        offerId: offer.id,
        affiliateId: click.affiliateId,
        clickId: job.clickId,
        orderId: job.orderId,
        event: job.event,
        status,
        holdReason: held ? verdict.hold!.rule : null,
        amount: job.amount,
        currency,
        payout: payout.amount.toString(),
        payoutCurrency: payout.currency,
        clickedAt: click.clickedAt,
        createdAt: now,
        updatedAt: now,
      },
    ],
    // ON CONFLICT DO NOTHING on (advertiser_id, order_id, event): the unique index decides,
    // so concurrent copies of one postback cannot both create a conversion.
    skipDuplicates: true,
  });

  if (created) {
    const flags = await recordFlags(verdict.hits, created.id);
    const conversion = conversionJson(created, flags);
    events.unshift(createEvent('conversion.created', { conversion }, now));
    if (status !== 'pending') events.push(createEvent(`conversion.${status}`, { conversion, previous_status: null }, now));
    if (payout.amount.gt(0) && status !== 'rejected') {
      const commission = await tx.commission.create({
        data: {
          id: newId('commission'),
          conversionId: created.id,
          affiliateId: created.affiliateId,
          amount: payout.amount.toString(),
          currency: payout.currency,
          status: commissionStatusFor(status),
          createdAt: now,
          updatedAt: now,
        },
      });
      events.push(createEvent('commission.created', { commission: commissionJson(commission) }, now));
    }
    return finish({ status: 'accepted', reason: null, conversionId: created.id, conversionStatus: status });
  }

  return repeat(await tx.conversion.findUniqueOrThrow({ where: key }));
}

function paramsOf(job: PostbackJob) {
  return {
    click_id: job.clickId,
    order_id: job.orderId,
    amount: new Decimal(job.amount).toString(),
    currency: job.currency ?? null,
    status: job.status,
    event: job.event,
  };
}
