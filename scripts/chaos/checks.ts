// What the chaos run reads at the end, from Postgres (directly, not through the proxy), from
// BullMQ and from the receivers' logs, and the checks it makes of them.
import type { PgPool } from '@trackway/db';
import type { ReportGroup, ReportQuery, ReportSource } from '@trackway/domain';
import { collectReport, planReportSql, sourceFor } from '@trackway/ledger';
import { QUEUE_NAMES, type Queues, deliveryJobStates } from '@trackway/queues';
import { type ChaosReceiver, type DeliveryAnalysis, type KillRecord, type PartnerReceiver, analyseDeliveries } from './receivers';
import type { PlannedPostback } from './traffic';

export interface Check {
  name: string;
  violations: string[];
}

/** At most `n` examples of a list, for a readable violation. */
const some = (list: readonly unknown[], n = 5) =>
  `${list
    .slice(0, n)
    .map((v) => (typeof v === 'string' ? v : JSON.stringify(v)))
    .join(', ')}${list.length > n ? `, … (${list.length} in all)` : ''}`;

const SCHEDULED_QUEUES: ReadonlySet<string> = new Set(['outbox', 'housekeeping']);

export interface QueueState {
  /** Jobs still to run per queue: waiting, active, delayed, prioritized, waiting-children (scheduler ticks aside). */
  work: Record<string, number>;
  /** Failed jobs per queue (scheduler ticks aside). */
  failed: Record<string, number>;
  /** Failed ticks of the job schedulers (the outbox relay, housekeeping): the next tick runs them again. */
  failedTicks: number;
}

export async function queueState(queues: Queues): Promise<QueueState> {
  const state: QueueState = { work: {}, failed: {}, failedTicks: 0 };
  for (const name of QUEUE_NAMES) {
    const queue = queues[name];
    if (SCHEDULED_QUEUES.has(name) && !('shards' in queue)) {
      // The scheduler's next tick is always there (delayed): only other jobs are work.
      const jobs = await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'], 0, 1_000);
      state.work[name] = jobs.filter((j) => j && !j.repeatJobKey).length;
      const failed = await queue.getJobs(['failed'], 0, 1_000);
      state.failed[name] = failed.filter((j) => j && !j.repeatJobKey).length;
      state.failedTicks += failed.filter((j) => j?.repeatJobKey).length;
    } else {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed');
      const { failed, ...rest } = counts;
      state.work[name] = Object.values(rest).reduce((a, b) => a + b, 0);
      state.failed[name] = failed;
    }
  }
  return state;
}

/** The run's partner postback: the affiliate it reports to, its id, its receiver. */
export interface ChaosPartner {
  affiliateId: number;
  endpointId: string;
  receiver: PartnerReceiver;
}

/** The partner's event types: a conversion enters each at most once. */
export const PARTNER_TYPES = ['conversion.approved', 'conversion.rejected'];

/** The events the partner must get: its affiliate's conversions approved or rejected. */
async function partnerEvents(pool: PgPool, partner: ChaosPartner) {
  return (
    await pool.query<{ id: string; key: string; sub1: string | null; payout: string }>(
      `SELECT id, (payload->'data'->'conversion'->>'id') || ' ' || type AS key, payload->'data'->'conversion'->>'sub1' AS sub1,
              payload->'data'->'conversion'->>'payout' AS payout
         FROM outbox_events WHERE type = ANY($1::varchar[]) AND (payload->'data'->'conversion'->>'affiliate_id')::int = $2`,
      [PARTNER_TYPES, partner.affiliateId],
    )
  ).rows;
}

export interface Progress {
  outcomes: number;
  events: number;
  unpublished: number;
  deliveries: number;
  pendingDeliveries: number;
  queues: QueueState;
  /** Per receiver: events that got a 2xx there. */
  delivered: number[];
  /** The partner's events, and how many of them got a 2xx there. */
  partnerEvents: number;
  partnerDelivered: number;
}

export async function progress(
  pool: PgPool,
  queues: Queues,
  acceptedIds: readonly string[],
  receivers: readonly ChaosReceiver[],
  partner: ChaosPartner,
): Promise<Progress> {
  const one = async (sql: string, params: unknown[] = []) => Number((await pool.query<{ n: string }>(sql, params)).rows[0].n);
  const eventIds = (await pool.query<{ id: string }>('SELECT id FROM outbox_events')).rows.map((r) => r.id);
  const owed = await partnerEvents(pool, partner);
  const answered = new Set(partner.receiver.log.filter((x) => x.status >= 200 && x.status < 300).map((x) => x.key));
  return {
    partnerEvents: owed.length,
    partnerDelivered: owed.filter((e) => answered.has(e.key)).length,
    outcomes: await one('SELECT count(*) AS n FROM postbacks WHERE id = ANY($1::varchar[])', [acceptedIds]),
    events: eventIds.length,
    unpublished: await one('SELECT count(*) AS n FROM outbox_events WHERE published_at IS NULL'),
    deliveries: await one('SELECT count(*) AS n FROM deliveries'),
    pendingDeliveries: await one(`SELECT count(*) AS n FROM deliveries WHERE status = 'pending'`),
    queues: await queueState(queues),
    delivered: receivers.map((r) => {
      const ok = new Set(r.log.filter((x) => x.status >= 200 && x.status < 300).map((x) => x.id));
      return eventIds.filter((id) => ok.has(id)).length;
    }),
  };
}

/** Nothing left to do: every outcome written, every event published and delivered to every endpoint, no job left. */
export function quiescent(p: Progress, accepted: number, endpoints: number): boolean {
  const work = Object.values(p.queues.work).reduce((a, b) => a + b, 0);
  return (
    p.outcomes === accepted &&
    p.unpublished === 0 &&
    p.deliveries === p.events * endpoints + p.partnerEvents &&
    p.pendingDeliveries === 0 &&
    work === 0 &&
    p.delivered.every((n) => n === p.events) &&
    p.partnerDelivered === p.partnerEvents
  );
}

export interface FinalInput {
  pool: PgPool;
  queues: Queues;
  plan: readonly PlannedPostback[];
  advertiserIds: readonly number[];
  /** seq → postback id of its 202. */
  accepted: ReadonlyMap<number, string>;
  gaveUp: readonly number[];
  receivers: ReadonlyArray<ChaosReceiver & { endpointId: string }>;
  partner: ChaosPartner;
  kills: readonly KillRecord[];
}

export interface FinalFigures {
  outcomes: Record<string, number>;
  queuedDespiteNon202: number;
  conversions: number;
  commissions: number;
  events: Record<string, number>;
  deliveries: Record<string, number>;
  attemptsLogged: number;
  attemptsLost: number;
  failedTicks: number;
  analyses: DeliveryAnalysis[];
}

export async function finalChecks(input: FinalInput): Promise<{ checks: Check[]; figures: FinalFigures }> {
  const { pool, queues, plan, advertiserIds, accepted, receivers, partner, kills } = input;
  const checks: Check[] = [];
  const check = (name: string, violations: string[]) => checks.push({ name, violations });

  // Every order got in.
  check(
    'every postback got a 202 (re-sent after each non-202)',
    input.gaveUp.length > 0 ? [`${input.gaveUp.length} postbacks never got a 202: seq ${some(input.gaveUp)}`] : [],
  );

  // Every 202 has a final outcome.
  const ids = [...accepted.values()];
  const rows = (
    await pool.query<{ id: string; status: string; reason: string | null }>('SELECT id, status, reason FROM postbacks WHERE id = ANY($1::varchar[])', [ids])
  ).rows;
  const found = new Set(rows.map((r) => r.id));
  const missing = ids.filter((id) => !found.has(id));
  const outcomes: Record<string, number> = {};
  for (const r of rows) {
    const label = r.reason ? `${r.status} (${r.reason})` : r.status;
    outcomes[label] = (outcomes[label] ?? 0) + 1;
  }
  check('every 202 has a final outcome', missing.length > 0 ? [`${missing.length} postbacks answered 202 have no outcome: ${some(missing)}`] : []);
  const queuedDespiteNon202 = Number(
    (await pool.query<{ n: string }>('SELECT count(*) AS n FROM postbacks WHERE NOT (id = ANY($1::varchar[]))', [ids])).rows[0].n,
  );

  // Conversions = distinct (advertiser, order_id, event) sent.
  const sent = new Set(plan.map((p) => `${advertiserIds[p.advertiser]}/${p.orderId}/${p.event}`));
  const conversionRows = (
    await pool.query<{ key: string; n: string }>(`SELECT advertiser_id || '/' || order_id || '/' || event AS key, count(*) AS n FROM conversions GROUP BY 1`)
  ).rows;
  const stored = new Set(conversionRows.map((r) => r.key));
  const absent = [...sent].filter((k) => !stored.has(k));
  const extra = [...stored].filter((k) => !sent.has(k));
  check(`conversions = distinct (advertiser, order_id, event) sent (${sent.size})`, [
    ...(absent.length ? [`${absent.length} sent but no conversion: ${some(absent)}`] : []),
    ...(extra.length ? [`${extra.length} conversions never sent: ${some(extra)}`] : []),
  ]);

  // No duplicate conversion, commission or outbox row.
  const duplicateConversions = conversionRows.filter((r) => Number(r.n) > 1).map((r) => r.key);
  const duplicateCommissions = (await pool.query<{ conversion_id: string }>('SELECT conversion_id FROM commissions GROUP BY 1 HAVING count(*) > 1')).rows.map(
    (r) => r.conversion_id,
  );
  const commissions = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM commissions')).rows[0].n);
  const events = (
    await pool.query<{ id: string; type: string; subject: string | null; previous: string | null; published: boolean }>(
      `SELECT id, type, COALESCE(payload->'data'->'conversion'->>'id', payload->'data'->'commission'->>'conversion_id') AS subject,
              payload->'data'->>'previous_status' AS previous, published_at IS NOT NULL AS published
         FROM outbox_events`,
    )
  ).rows;
  // A conversion enters each status at most once (the status machine only moves forward): one
  // conversion.created, .approved, .rejected and commission.created per conversion at most.
  const seen = new Map<string, number>();
  for (const e of events) seen.set(`${e.type} ${e.subject}`, (seen.get(`${e.type} ${e.subject}`) ?? 0) + 1);
  const duplicateEvents = [...seen].filter(([, n]) => n > 1).map(([k]) => k);
  const created = events.filter((e) => e.type === 'conversion.created').length;
  const transitions = events.filter((e) => e.previous !== null && e.type.startsWith('conversion.')).length;
  // Every postback row counts here, those of a 202 and those queued although their answer was not one.
  const acceptedOutcomes = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM postbacks WHERE status = 'accepted'`)).rows[0].n);
  check('no duplicate conversion, commission or outbox row', [
    ...(duplicateConversions.length ? [`duplicate conversions: ${some(duplicateConversions)}`] : []),
    ...(duplicateCommissions.length ? [`conversions with more than one commission: ${some(duplicateCommissions)}`] : []),
    ...(duplicateEvents.length ? [`events written more than once: ${some(duplicateEvents)}`] : []),
    ...(created !== stored.size ? [`${created} conversion.created events for ${stored.size} conversions`] : []),
    // Each accepted postback wrote exactly one conversion or one transition, with its events.
    ...(created + transitions !== acceptedOutcomes
      ? [`${acceptedOutcomes} postbacks accepted, but ${created} conversions created and ${transitions} status changes in the outbox`]
      : []),
  ]);
  const unpublished = events.filter((e) => !e.published).map((e) => e.id);
  check('every outbox event published', unpublished.length ? [`${unpublished.length} events never published: ${some(unpublished)}`] : []);

  // Every event delivered to each endpoint at least once; repeats only after a non-2xx (or a killed sender).
  const eventIds = events.map((e) => e.id);
  const known = new Set(eventIds);
  const analyses = receivers.map((r) => analyseDeliveries(r.log, kills));
  const deliveryRows = (
    await pool.query<{
      id: string;
      event_id: string;
      endpoint_id: string;
      status: string;
      attempt_count: number;
      replay_count: number;
      batch_job_id: string | null;
      logged: string;
    }>(
      `SELECT d.id, d.event_id, d.endpoint_id, d.status, d.attempt_count, d.replay_count, d.batch_job_id, count(a.id) AS logged
         FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id GROUP BY d.id`,
    )
  ).rows;
  const deliveries: Record<string, number> = {};
  for (const d of deliveryRows) deliveries[d.status] = (deliveries[d.status] ?? 0) + 1;
  // The partner's deliveries are checked on their own, below.
  const partnerRows = deliveryRows.filter((d) => d.endpoint_id === partner.endpointId);
  const webhookRows = deliveryRows.filter((d) => d.endpoint_id !== partner.endpointId);
  receivers.forEach((r, i) => {
    const a = analyses[i];
    const undelivered = eventIds.filter((id) => !a.delivered.has(id));
    const unknown = [...a.byId.keys()].filter((id) => !known.has(id));
    check(`every event delivered to ${r.name} at least once`, [
      ...(undelivered.length ? [`${undelivered.length} events never answered 2xx by ${r.name}: ${some(undelivered)}`] : []),
      ...(unknown.length ? [`${r.name} got webhook-ids that are no event: ${some(unknown)}`] : []),
      ...(a.unsigned ? [`${a.unsigned} requests to ${r.name} whose signature did not verify`] : []),
    ]);
    check(`${r.name}: repeats only as the same webhook-id after a non-2xx (or after its sender was killed -9)`, [
      ...a.unexplained.map(
        ({ id, previous, repeat }) =>
          `${id} sent again to ${r.name} at ${new Date(repeat.at).toISOString()} (pid ${repeat.sender ?? '?'}) after a ${previous.status} at ${new Date(previous.at).toISOString()} (pid ${previous.sender ?? '?'}), no kill between`,
      ),
      ...(a.changedBodies.length ? [`repeats with another body: ${some(a.changedBodies)}`] : []),
    ]);
  });

  // The delivery log: one delivery per event and endpoint, succeeded, every attempt logged once.
  // An attempt whose process was killed before it recorded it is not logged (the run counts
  // those); any other difference between the log and the receivers is a violation.
  const byEndpoint = new Map(receivers.map((r, i) => [r.endpointId, analyses[i]]));
  const attemptProblems: string[] = [];
  let attemptsLogged = 0;
  let attemptsLost = 0;
  for (const d of webhookRows) {
    const entry = byEndpoint.get(d.endpoint_id)?.byId.get(d.event_id);
    const received = entry?.requests.length ?? 0;
    const logged = Number(d.logged);
    const lost = received - logged;
    attemptsLogged += logged;
    if (logged !== d.attempt_count) attemptProblems.push(`${d.id}: attempt_count ${d.attempt_count}, ${logged} attempts logged`);
    if (lost < 0) attemptProblems.push(`${d.id}: ${logged} attempts logged, ${received} received`);
    else if (lost > (entry?.killedSenders ?? 0))
      attemptProblems.push(`${d.id}: ${received} received, ${logged} logged, only ${entry?.killedSenders ?? 0} sent by a process killed -9`);
    // A repeat after a 2xx is the crash case only if that 2xx was never recorded.
    else if ((entry?.afterSuccess ?? 0) > lost)
      attemptProblems.push(`${d.id}: sent again after a 2xx that was logged (${received} received, ${logged} logged)`);
    else attemptsLost += lost;
  }
  const missingDeliveries = eventIds.length * receivers.length - webhookRows.length;
  check('one delivery per event and endpoint, all succeeded, attempts logged = requests received but those of killed senders (outages spent none)', [
    ...(missingDeliveries !== 0 ? [`${webhookRows.length} deliveries for ${eventIds.length} events × ${receivers.length} endpoints`] : []),
    ...Object.entries(deliveries)
      .filter(([status]) => status !== 'succeeded')
      .map(([status, n]) => `${n} deliveries ${status}`),
    ...(attemptProblems.length ? [`${attemptProblems.length} deliveries whose log disagrees with the receivers: ${some(attemptProblems, 3)}`] : []),
  ]);

  // The partner postback: one delivery per approved or rejected conversion of its affiliate,
  // succeeded, its macros filled (the click's sub1, the payout); the partner got each at least once
  // and nothing else; no attempt logged that it did not receive.
  const owed = await partnerEvents(pool, partner);
  const owedKeys = new Map(owed.map((e) => [e.key, e]));
  const partnerAnswered = new Set(partner.receiver.log.filter((x) => x.status >= 200 && x.status < 300).map((x) => x.key));
  const received = new Map<string, number>();
  for (const x of partner.receiver.log) received.set(x.key, (received.get(x.key) ?? 0) + 1);
  const byEvent = new Map(owed.map((e) => [e.id, e.key]));
  check(`the partner postback: one delivery per approved or rejected conversion of its affiliate (${owed.length}), each received, nothing else`, [
    ...(owed.length === 0 ? ['the run approved or rejected no conversion of the partner’s affiliate: the check saw nothing'] : []),
    ...(partnerRows.length !== owed.length ? [`${partnerRows.length} partner deliveries for ${owed.length} events`] : []),
    ...partnerRows.filter((d) => d.status !== 'succeeded').map((d) => `partner delivery ${d.id} ${d.status}`),
    ...owed.filter((e) => !partnerAnswered.has(e.key)).map((e) => `${e.key} never answered 2xx by the partner`),
    ...[...received.keys()].filter((k) => !owedKeys.has(k)).map((k) => `the partner got ${k}, which is no event of its affiliate`),
    ...partner.receiver.log
      .filter((x) => owedKeys.has(x.key) && (x.sub1 !== (owedKeys.get(x.key)!.sub1 ?? '') || x.payout !== owedKeys.get(x.key)!.payout))
      .map((x) => `${x.key} sent with sub1 "${x.sub1}" and payout "${x.payout}"`),
    ...partnerRows
      .filter((d) => Number(d.logged) > (received.get(byEvent.get(d.event_id) ?? '') ?? 0))
      .map((d) => `${d.id}: ${d.logged} attempts logged, ${received.get(byEvent.get(d.event_id) ?? '') ?? 0} received`),
  ]);

  // Reports equal the recount of the raw rows, after every fault (invariant 11).
  check('reports equal the recount of the raw rows (every grouping, by conversion and by click time)', await reportViolations(pool));

  // Queues empty, and no delivery pending without a live job.
  const state = await queueState(queues);
  const leftover = [
    ...Object.entries(state.work)
      .filter(([, n]) => n > 0)
      .map(([q, n]) => `${n} jobs still to run in ${q}`),
    ...Object.entries(state.failed)
      .filter(([, n]) => n > 0)
      .map(([q, n]) => `${n} failed jobs in ${q}`),
  ];
  const pending = deliveryRows.filter((d) => d.status === 'pending');
  const stranded: string[] = [];
  for (const d of pending) {
    const jobs = await deliveryJobStates(queues.deliveries, {
      eventId: d.event_id,
      endpointId: d.endpoint_id,
      replayCount: d.replay_count,
      batchJobId: d.batch_job_id,
      attemptCount: d.attempt_count,
    });
    if (!jobs.live) stranded.push(`${d.id} (jobs ${jobs.states.join(', ')})`);
  }
  check('queues empty; no delivery pending without a live job', [
    ...leftover,
    ...(stranded.length ? [`${stranded.length} deliveries pending without a live job: ${some(stranded)}`] : []),
  ]);

  const eventCounts: Record<string, number> = {};
  for (const e of events) eventCounts[e.type] = (eventCounts[e.type] ?? 0) + 1;
  return {
    checks,
    figures: {
      outcomes,
      queuedDespiteNon202,
      conversions: stored.size,
      commissions,
      events: eventCounts,
      deliveries,
      attemptsLogged,
      attemptsLost,
      failedTicks: state.failedTicks,
      analyses,
    },
  };
}

/** Each report grouping as the report rows answer it against the recount of the raw rows: what differs. */
export async function reportViolations(pool: PgPool): Promise<string[]> {
  const day = 86_400_000;
  const from = new Date(Math.floor(Date.now() / day) * day - day);
  const to = new Date(from.getTime() + 3 * day);
  const answer = async (query: ReportQuery, source: ReportSource) => {
    const { rows, totals } = await collectReport(pool, planReportSql(query, source), query.groupBy, query.tz);
    return JSON.stringify({ rows, totals });
  };
  const violations: string[] = [];
  const groupings: ReportGroup[][] = [[], ['day', 'offer_id'], ['affiliate_id', 'sub2'], ['hour', 'event'], ['advertiser_id']];
  let clicks = 0;
  for (const countBy of ['conversion', 'click'] as const)
    for (const groupBy of groupings) {
      const query: ReportQuery = { from, to, tz: 'UTC', groupBy, countBy, filters: {} };
      const recount = await answer(query, 'raw');
      if (groupBy.length === 0) clicks = JSON.parse(recount).totals.clicks;
      for (const source of new Set<ReportSource>([await sourceFor(pool, query), 'quarters']))
        if ((await answer(query, source)) !== recount)
          violations.push(`group_by=${groupBy.join(',')} count_by=${countBy} from ${source} rows differs from the recount`);
    }
  if (clicks === 0) violations.push('the run wrote no click: the check saw nothing');
  return violations;
}
