// The subscribers of the chaos run: real local HTTP servers (startReceiver) that log every
// webhook by its webhook-id, with the answer they gave, whether its signature verified and which
// delivery process sent it. One of them answers 500 to about one request in ten, but never more
// than twice to one webhook-id, so that the run's retry schedule (four attempts) always gets
// through and every event can be required at each endpoint.
import { createHash } from 'node:crypto';
import { type Receiver, startReceiver } from '@trackway/testing';
import { verify } from '@trackway/webhooks';

export interface Received {
  /** The webhook-id header (the event's id). */
  id: string;
  at: number;
  status: number;
  /** The delivery process that sent it, when the connection could be traced. */
  sender?: number;
  /** The signature verified with the endpoint's secret, and the body's id is the webhook-id. */
  signed: boolean;
  bodyHash: string;
}

export interface ChaosReceiver {
  name: string;
  url: string;
  /** The endpoint's signing secret, known once the endpoint is created. */
  secret?: string;
  log: Received[];
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** Share of requests answered 500. */
  failRate: number;
  /** At most this many 500s for one webhook-id. */
  maxFailuresPerId: number;
  random: () => number;
  /** The delivery process holding a connection from this client port to this receiver's port. */
  sender: (clientPort: number, serverPort: number) => number | undefined;
}

export async function startChaosReceiver(name: string, options: ReceiverOptions): Promise<ChaosReceiver> {
  const failures = new Map<string, number>();
  const chaos: ChaosReceiver = { name, url: '', log: [], close: async () => undefined };
  const receiver: Receiver = await startReceiver((req) => {
    const id = String(req.headers['webhook-id'] ?? '');
    let signed = false;
    try {
      signed = chaos.secret !== undefined && (verify(req.body, req.headers, chaos.secret) as { id?: string }).id === id;
    } catch {
      signed = false;
    }
    const failed = failures.get(id) ?? 0;
    const status = failed < options.maxFailuresPerId && options.random() < options.failRate ? 500 : 200;
    if (status === 500) failures.set(id, failed + 1);
    chaos.log.push({
      id,
      at: req.at,
      status,
      sender: options.sender(req.remotePort, receiver.port),
      signed,
      bodyHash: createHash('sha1').update(req.body).digest('base64'),
    });
    // The log above keeps what the checks need; the receiver's own list would keep every body.
    receiver.requests.length = 0;
    return { status, body: status === 200 ? 'ok' : 'try again' };
  });
  chaos.url = receiver.url;
  chaos.close = () => receiver.close();
  return chaos;
}

export interface KillRecord {
  at: number;
  pid: number;
  /** Delivery processes only are senders. */
  service: string;
}

/**
 * How long before the chaos process read a request its untraced sender may have been killed.
 * A request is untraced when its connection was gone by the time the receiver read it: its
 * process had died, with the request still in the receiver's socket buffer (the run's own event
 * loop lags behind a burst of webhooks by up to a second or so).
 */
export const UNTRACED_LAG_MS = 5_000;

export interface IdLog {
  requests: Received[];
  /** Requests after a 2xx to the one before them. */
  afterSuccess: number;
  /** Requests whose sender was killed -9 (later, necessarily: a dead process sends nothing). */
  killedSenders: number;
}

export interface DeliveryAnalysis {
  /** webhook-ids that got at least one 2xx. */
  delivered: Set<string>;
  /** Every request per webhook-id, in arrival order. */
  byId: Map<string, IdLog>;
  requests: number;
  answered500: number;
  /** A request again after a non-2xx answer to the one before: the retry schedule. */
  repeatsAfterFailure: number;
  /** Again after a 2xx, whose sender was killed (kill -9) before the repeat. */
  repeatsAfterKill: number;
  /** Again after a 2xx with no kill of its sender to explain it: a violation. */
  unexplained: Array<{ id: string; previous: Received; repeat: Received }>;
  /** A repeat whose body differs from the first request's. */
  changedBodies: string[];
  unsigned: number;
  untraced: number;
}

/**
 * Classifies each receiver's requests per webhook-id: every request after the first is a repeat,
 * allowed after a non-2xx answer (the schedule), or after a 2xx whose sending process was killed
 * before the repeat (at least once: the answer came, the record did not; the checks also require
 * that attempt to be missing from the delivery log). An untraced sender counts as killed if a
 * delivery process was killed in the UNTRACED_LAG_MS before the request was read.
 */
export function analyseDeliveries(log: readonly Received[], kills: readonly KillRecord[]): DeliveryAnalysis {
  const deliveryKills = kills.filter((k) => k.service === 'delivery');
  const killedBy = (r: Received, until: number) =>
    deliveryKills.some((k) => (r.sender === undefined ? k.at <= r.at && k.at >= r.at - UNTRACED_LAG_MS : k.pid === r.sender) && k.at <= until);
  const ok = (r: Received) => r.status >= 200 && r.status < 300;
  const byId = new Map<string, IdLog>();
  for (const r of log) {
    const entry = byId.get(r.id);
    if (entry) entry.requests.push(r);
    else byId.set(r.id, { requests: [r], afterSuccess: 0, killedSenders: 0 });
  }
  const result: DeliveryAnalysis = {
    delivered: new Set(),
    byId,
    requests: log.length,
    answered500: 0,
    repeatsAfterFailure: 0,
    repeatsAfterKill: 0,
    unexplained: [],
    changedBodies: [],
    unsigned: 0,
    untraced: 0,
  };
  for (const [id, entry] of byId) {
    const list = entry.requests;
    if (list.some(ok)) result.delivered.add(id);
    if (list.some((r) => r.bodyHash !== list[0].bodyHash)) result.changedBodies.push(id);
    for (let i = 0; i < list.length; i++) {
      const r = list[i];
      if (!ok(r)) result.answered500 += 1;
      if (!r.signed) result.unsigned += 1;
      if (r.sender === undefined) result.untraced += 1;
      if (killedBy(r, Number.POSITIVE_INFINITY)) entry.killedSenders += 1;
      if (i === 0) continue;
      const previous = list[i - 1];
      if (!ok(previous)) {
        result.repeatsAfterFailure += 1;
        continue;
      }
      entry.afterSuccess += 1;
      if (killedBy(previous, r.at)) result.repeatsAfterKill += 1;
      else result.unexplained.push({ id, previous, repeat: r });
    }
  }
  return result;
}

/** A partner postback as the chaos partner received it: its conversion and event type (from the URL's macros). */
export interface PartnerReceived {
  /** `<conversion id> <event type>`: each conversion enters approved or rejected once. */
  key: string;
  at: number;
  status: number;
  /** The values the run's template asks for beside the key: `sub1` and `payout`. */
  sub1: string;
  payout: string;
}

export interface PartnerReceiver {
  name: string;
  url: string;
  log: PartnerReceived[];
  close(): Promise<void>;
}

/** The affiliate's tracker of the run: logs each partner postback (a GET) and fails some, at most `maxFailuresPerId` per key. */
export async function startPartnerReceiver(name: string, options: Omit<ReceiverOptions, 'sender'>): Promise<PartnerReceiver> {
  const failures = new Map<string, number>();
  const partner: PartnerReceiver = { name, url: '', log: [], close: async () => undefined };
  const receiver = await startReceiver((req) => {
    const query = new URL(req.path, 'http://partner').searchParams;
    const key = `${query.get('conv') ?? ''} ${query.get('type') ?? ''}`;
    const failed = failures.get(key) ?? 0;
    const status = failed < options.maxFailuresPerId && options.random() < options.failRate ? 500 : 200;
    if (status === 500) failures.set(key, failed + 1);
    partner.log.push({ key, at: req.at, status, sub1: query.get('sub') ?? '', payout: query.get('payout') ?? '' });
    receiver.requests.length = 0;
    return { status, body: status === 200 ? 'OK' : 'try again' };
  });
  partner.url = receiver.url;
  partner.close = () => receiver.close();
  return partner;
}
