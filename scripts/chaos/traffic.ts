// The advertisers' side of the chaos run: a plan of postbacks (new orders, duplicates of earlier
// postbacks, later status changes of earlier orders), streamed at ingest over HTTP at a bounded
// rate, each one re-sent after a non-202 answer (after its Retry-After) as a real advertiser's
// server retries, until every postback got its 202.
import { Pool } from 'undici';
import { sleep } from '../../bench/lib';

export type Status = 'pending' | 'approved' | 'rejected';

export interface PlannedPostback {
  seq: number;
  kind: 'new' | 'duplicate' | 'status_change';
  /** Index into the run's advertisers. */
  advertiser: number;
  orderId: string;
  event: string;
  status: Status;
  clickId: string;
  amount: string;
  method: 'GET' | 'POST';
}

/** A seeded PRNG (mulberry32): the same seed plans the same postbacks and faults. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const NEXT_STATUS: Record<Status, Status[]> = { pending: ['approved', 'rejected'], approved: ['rejected'], rejected: [] };

/**
 * `count` postbacks: about 10 % exact repeats of an earlier postback, 5 % status changes of an
 * earlier order (pending → approved or rejected, approved → rejected), the rest new
 * conversions (one in ten a second event, `lead`, of an earlier order).
 */
export function planPostbacks(count: number, advertisers: number, random: () => number, issueClick: (advertiser: number) => string): PlannedPostback[] {
  const plan: PlannedPostback[] = [];
  const conversions: Array<PlannedPostback & { current: Status }> = [];
  const keys = new Set<string>();
  const orders = Array.from({ length: advertisers }, () => 0);
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
  const method = (): 'GET' | 'POST' => (random() < 0.2 ? 'POST' : 'GET');
  for (let seq = 0; seq < count; seq++) {
    const r = random();
    if (r < 0.1 && plan.length > 0) {
      plan.push({ ...pick(plan), seq, kind: 'duplicate', method: method() });
      continue;
    }
    const changeable = r < 0.15 ? conversions.filter((c) => NEXT_STATUS[c.current].length > 0) : [];
    if (changeable.length > 0) {
      const conversion = pick(changeable);
      conversion.current = pick(NEXT_STATUS[conversion.current]);
      const { current, ...original } = conversion;
      plan.push({ ...original, seq, kind: 'status_change', status: current, method: method() });
      continue;
    }
    const advertiser = Math.floor(random() * advertisers);
    let orderId = `ord-${++orders[advertiser]}`;
    let event = 'conversion';
    if (random() < 0.1) {
      const earlier = conversions.filter((c) => c.advertiser === advertiser && !keys.has(`${advertiser}/${c.orderId}/lead`));
      if (earlier.length > 0) {
        orders[advertiser]--;
        orderId = pick(earlier).orderId;
        event = 'lead';
      }
    }
    keys.add(`${advertiser}/${orderId}/${event}`);
    const status: Status = random() < 0.7 ? 'approved' : 'pending';
    const postback: PlannedPostback = {
      seq,
      kind: 'new',
      advertiser,
      orderId,
      event,
      status,
      clickId: issueClick(advertiser),
      amount: (10 + random() * 190).toFixed(2),
      method: method(),
    };
    plan.push(postback);
    conversions.push({ ...postback, current: status });
  }
  return plan;
}

export interface Answer {
  seq: number;
  /** 1 for the first send of a postback, 2 for its first re-send, … */
  attempt: number;
  sentAt: number;
  answeredAt: number;
  /** The HTTP status, 0 when no answer came (connection error). */
  status: number;
  postbackId?: string;
  body?: string;
}

export interface StreamOptions {
  origin: string;
  plan: readonly PlannedPostback[];
  /** The postback key of each advertiser. */
  keys: readonly string[];
  /** New postbacks per second (re-sends come on top, when they are due). */
  rate: number;
  maxInFlight: number;
  /** After this many sends without a 202 a postback is given up (reported as a violation). */
  maxAttempts: number;
  random: () => number;
  /** Stop re-sending after this time (epoch ms). */
  deadline: number;
}

export interface StreamResult {
  answers: Answer[];
  /** seq → the postback id of its 202. */
  accepted: Map<number, string>;
  gaveUp: number[];
  startedAt: number;
  endedAt: number;
}

function request(postback: PlannedPostback, key: string): { path: string; method: 'GET' | 'POST'; body?: string; headers?: Record<string, string> } {
  const params = {
    click_id: postback.clickId,
    order_id: postback.orderId,
    amount: postback.amount,
    currency: 'USD',
    status: postback.status,
    event: postback.event,
  };
  if (postback.method === 'GET') return { path: `/postback?${new URLSearchParams({ key, ...params })}`, method: 'GET' };
  return { path: `/postback?key=${encodeURIComponent(key)}`, method: 'POST', body: JSON.stringify(params), headers: { 'content-type': 'application/json' } };
}

/** Streams the plan at ingest; resolves once every postback got a 202 (or was given up). */
export async function streamPostbacks(options: StreamOptions, onAnswer: (answer: Answer) => void = () => undefined): Promise<StreamResult> {
  const pool = new Pool(options.origin, { connections: options.maxInFlight, pipelining: 1, keepAliveTimeout: 30_000 });
  const answers: Answer[] = [];
  const accepted = new Map<number, string>();
  const gaveUp: number[] = [];
  const attempts = new Map<number, number>();
  // Re-sends waiting for their time: [due (epoch ms), seq].
  let resends: Array<[number, number]> = [];
  let inFlight = 0;
  let next = 0;

  const send = async (postback: PlannedPostback) => {
    const attempt = (attempts.get(postback.seq) ?? 0) + 1;
    attempts.set(postback.seq, attempt);
    inFlight += 1;
    const sentAt = Date.now();
    let answer: Answer;
    let retryAfterMs = 2_000;
    try {
      const res = await pool.request({ ...request(postback, options.keys[postback.advertiser]), headersTimeout: 30_000, bodyTimeout: 30_000 });
      const text = await res.body.text();
      answer = { seq: postback.seq, attempt, sentAt, answeredAt: Date.now(), status: res.statusCode };
      if (res.statusCode === 202) answer.postbackId = (JSON.parse(text) as { postback_id: string }).postback_id;
      else answer.body = text.slice(0, 300);
      const retryAfter = Number(res.headers['retry-after']);
      if (Number.isFinite(retryAfter) && retryAfter > 0) retryAfterMs = retryAfter * 1_000;
    } catch (error) {
      answer = { seq: postback.seq, attempt, sentAt, answeredAt: Date.now(), status: 0, body: (error as Error).message };
    }
    inFlight -= 1;
    answers.push(answer);
    onAnswer(answer);
    if (answer.postbackId) accepted.set(postback.seq, answer.postbackId);
    // A 4xx will not change by sending it again: it is reported, not retried.
    else if (answer.status >= 400 && answer.status < 500) gaveUp.push(postback.seq);
    else if (attempt >= options.maxAttempts || Date.now() > options.deadline) gaveUp.push(postback.seq);
    else resends.push([Date.now() + retryAfterMs * (1 + options.random() * 0.5), postback.seq]);
  };

  const startedAt = Date.now();
  const running = new Set<Promise<void>>();
  const launch = (postback: PlannedPostback) => {
    const p = send(postback).finally(() => running.delete(p));
    running.add(p);
  };
  while (next < options.plan.length || resends.length > 0 || inFlight > 0) {
    const now = Date.now();
    const dueNew = Math.min(options.plan.length, Math.floor(((now - startedAt) * options.rate) / 1_000) + 1);
    while (next < dueNew && inFlight < options.maxInFlight) launch(options.plan[next++]);
    if (resends.some(([due]) => due <= now)) {
      const due = resends.filter(([at]) => at <= now);
      resends = resends.filter(([at]) => at > now);
      for (const [, seq] of due) {
        if (inFlight < options.maxInFlight) launch(options.plan[seq]);
        else resends.push([now + 100, seq]);
      }
    }
    await sleep(5);
  }
  await Promise.all(running);
  await pool.close();
  return { answers, accepted, gaveUp, startedAt, endedAt: Date.now() };
}
