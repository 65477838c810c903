import { setTimeout as sleep } from 'node:timers/promises';
import type { Admission, Isolation } from './isolation';
import { parkUntil } from './schedule';

/**
 * An in-process semaphore per endpoint: at most `permits` attempts at once, and at most
 * `maxWaiters` jobs waiting (FIFO) for a turn, each for a bounded time. Bounded waiters are what
 * keeps one slow endpoint from holding the worker's slots: the job that cannot wait is parked.
 * (p-limit and async-sema queue without bound or deadline; this is the small piece they lack.)
 */
export class EndpointGate {
  private readonly lanes = new Map<string, { active: number; waiters: Array<(granted: boolean) => void> }>();

  constructor(private readonly options: { permits: number; maxWaiters: number }) {}

  /** Jobs holding a permit / waiting for one, for an endpoint. */
  active = (key: string) => this.lanes.get(key)?.active ?? 0;
  waiting = (key: string) => this.lanes.get(key)?.waiters.length ?? 0;

  /** A permit at once, or after waiting at most `timeoutMs`; false if none (then nothing is held). */
  acquire(key: string, timeoutMs: number): Promise<boolean> {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { active: 0, waiters: [] };
      this.lanes.set(key, lane);
    }
    if (lane.active < this.options.permits) {
      lane.active += 1;
      return Promise.resolve(true);
    }
    if (lane.waiters.length >= this.options.maxWaiters || timeoutMs <= 0) return Promise.resolve(false);
    const waiters = lane.waiters;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(grant), 1);
        this.forget(key);
        resolve(false);
      }, timeoutMs);
      const grant = (granted: boolean) => {
        clearTimeout(timer);
        resolve(granted);
      };
      waiters.push(grant);
    });
  }

  /** Turns every waiter of an endpoint away (they park): its turns stopped coming. */
  evict(key: string): void {
    const lane = this.lanes.get(key);
    if (!lane) return;
    for (const waiter of lane.waiters.splice(0)) waiter(false);
    this.forget(key);
  }

  /** Gives a permit back: to the first waiter (it holds it now), or to the lane. */
  release(key: string): void {
    const lane = this.lanes.get(key);
    if (!lane) return;
    const next = lane.waiters.shift();
    if (next) next(true);
    else {
      lane.active = Math.max(0, lane.active - 1);
      this.forget(key);
    }
  }

  private forget(key: string) {
    const lane = this.lanes.get(key);
    if (lane && lane.active === 0 && lane.waiters.length === 0) this.lanes.delete(key);
  }
}

/**
 * Whether a job finding every permit taken should wait for one rather than park: only if the
 * turn is expected well within the budget (one typical attempt per round of `permits` jobs
 * ahead, at most half the budget), and only once this process has seen how long the endpoint's
 * attempts take. An endpoint whose attempts take long (hanging until the timeout) gets no
 * waiters, so its jobs hold none of the worker's slots while their requests are out.
 */
export function worthWaiting(typicalAttemptMs: number | undefined, waitersAhead: number, permits: number, budgetMs: number, oldestInFlightMs = 0): boolean {
  // The running average learns of a hang only when the hanging attempts end (at the timeout):
  // an attempt in flight far longer than usual says it now.
  if (isStuck(typicalAttemptMs, oldestInFlightMs)) return false;
  // An endpoint not seen yet is taken to be fast until one of its attempts says otherwise.
  return (typicalAttemptMs ?? 0) * Math.ceil((waitersAhead + 1) / permits) <= budgetMs / 2;
}

/** An attempt in flight four times as long as the endpoint's usual ones, and at least 250 ms. */
const stuckAfterMs = (typicalAttemptMs: number | undefined) => Math.max(250, 4 * (typicalAttemptMs ?? 0));
function isStuck(typicalAttemptMs: number | undefined, oldestInFlightMs: number): boolean {
  return oldestInFlightMs > stuckAfterMs(typicalAttemptMs);
}

/** How often a job holding a permit looks for a slot that other processes hold: about one attempt, 10–100 ms, jittered. */
const pollMs = (typicalAttemptMs: number | undefined) => Math.round(Math.min(Math.max(typicalAttemptMs ?? 20, 10), 100) * (0.5 + Math.random()));

/** How long a job may wait in-process for its endpoint (a permit, a slot elsewhere, the rate limit). */
export const MAX_WAIT_MS = 1_000;

export interface GatedIsolation {
  /**
   * Waits (bounded) for an in-process permit, then for Redis's admission (breaker closed, a
   * slot across processes, the rate limit). Parks (ok: false) only when the breaker is open, a
   * probe is in flight, or the bounded wait ran out. A Redis error is thrown, nothing held.
   */
  admit(endpointId: string, rateLimitPerSecond: number | null, token: string, typicalAttemptMs?: number, timesParked?: number): Promise<Admission>;
  /**
   * When a job must park because its endpoint is stuck in this process (every permit taken, the
   * oldest attempt out far longer than usual), or null. Asked before the delivery is read: most
   * of a hanging endpoint's jobs are fetched only to be parked.
   */
  stuckUntil(endpointId: string, typicalAttemptMs?: number, timesParked?: number): number | null;
  /** Ends an admitted attempt, or a turn of several (Isolation.finish): the Redis slot and breaker, then the permit. */
  finish(endpointId: string, token: string, outcome: 'succeeded' | 'failed' | 'neutral', wasProbe: boolean, succeededBefore?: boolean): Promise<void>;
}

export function createGatedIsolation(
  isolation: Isolation,
  options: { endpointConcurrency: number; workerConcurrency: number; attemptTimeoutMs: number },
): GatedIsolation {
  const permits = options.endpointConcurrency;
  // Per endpoint at most `permits` running plus this many waiting. The running ones hold no
  // slot while their requests are out (in-flight.ts), so every slot may wait behind a fast
  // endpoint's cap (its turn comes within milliseconds, and a freed slot takes the next job in
  // queue order, whichever endpoint it is for): a deep backlog of one endpoint flows without
  // parking. Only an endpoint whose turn would take long (a slow or hanging one, see
  // worthWaiting) gets no waiters: its jobs hold no slot at all while its requests are out.
  const maxWaiters = options.workerConcurrency;
  const gate = new EndpointGate({ permits, maxWaiters });
  const budget = Math.min(MAX_WAIT_MS, options.attemptTimeoutMs);
  // When each admitted attempt of an endpoint began (this process): how long the oldest has been out.
  const inFlight = new Map<string, Map<string, number>>();
  const oldestInFlight = (endpointId: string) => {
    const started = inFlight.get(endpointId);
    if (!started || started.size === 0) return 0;
    // A Map keeps insertion order: the first entry is the attempt that began first.
    return Date.now() - started.values().next().value!;
  };

  const stuckUntil = (endpointId: string, typicalAttemptMs: number | undefined, timesParked = 0) => {
    if (gate.active(endpointId) < permits) return null;
    const oldest = oldestInFlight(endpointId);
    return isStuck(typicalAttemptMs, oldest) ? parkUntil(typicalAttemptMs, timesParked, options.attemptTimeoutMs, Date.now(), Math.random, oldest) : null;
  };

  return {
    stuckUntil,
    async admit(endpointId, rateLimitPerSecond, token, typicalAttemptMs, timesParked = 0) {
      const deadline = Date.now() + budget;
      const busy = gate.active(endpointId) >= permits;
      const oldest = oldestInFlight(endpointId);
      // The endpoint stopped answering: the jobs waiting for it park, so they hold no slot
      // another endpoint's jobs could use.
      if (busy && isStuck(typicalAttemptMs, oldest)) gate.evict(endpointId);
      const wait = busy && worthWaiting(typicalAttemptMs, gate.waiting(endpointId), permits, budget, oldest) ? budget : 0;
      // If the attempts ahead stop answering while this job waits, it learns so when the oldest
      // passes the stuck mark, not at the end of its budget. A timer may fire a millisecond
      // before Date.now() says the mark is passed: it then looks again.
      let watchdog: NodeJS.Timeout | undefined;
      const watch = (inMs: number) => {
        watchdog = setTimeout(
          () => {
            if (gate.active(endpointId) < permits) return;
            const now = oldestInFlight(endpointId);
            if (isStuck(typicalAttemptMs, now)) gate.evict(endpointId);
            else if (now > 0) watch(stuckAfterMs(typicalAttemptMs) - now + 1);
          },
          Math.max(1, inMs),
        );
      };
      if (wait > 0) watch(stuckAfterMs(typicalAttemptMs) - oldest + 1);
      const granted = await gate.acquire(endpointId, wait);
      clearTimeout(watchdog);
      if (!granted) {
        const retryAt = stuckUntil(endpointId, typicalAttemptMs, timesParked) ?? parkUntil(typicalAttemptMs, timesParked, options.attemptTimeoutMs);
        return { ok: false, retryAt, reason: 'concurrency' };
      }
      try {
        for (;;) {
          const admission = await isolation.admit(endpointId, rateLimitPerSecond, token, typicalAttemptMs, timesParked);
          if (admission.ok) {
            let started = inFlight.get(endpointId);
            if (!started) inFlight.set(endpointId, (started = new Map()));
            started.set(token, Date.now());
            return admission;
          }
          // The slots are held by other processes (look again after about an attempt's time),
          // or the rate limit opens its next window at retryAt: wait here if that comes within
          // the budget. An open breaker or a probe in flight parks at once, and so does an
          // endpoint whose oldest attempt (another process's) is stuck: waiting for it would
          // hold this process's slot.
          const stuckFor = admission.reason === 'concurrency' ? (admission.oldestInFlightMs ?? 0) : 0;
          if (isStuck(typicalAttemptMs, stuckFor)) {
            gate.release(endpointId);
            return { ...admission, retryAt: parkUntil(typicalAttemptMs, timesParked, options.attemptTimeoutMs, Date.now(), Math.random, stuckFor) };
          }
          const retryAt = admission.reason === 'concurrency' ? Date.now() + pollMs(typicalAttemptMs) : admission.retryAt;
          if ((admission.reason !== 'concurrency' && admission.reason !== 'rate_limit') || retryAt > deadline) {
            gate.release(endpointId);
            return admission;
          }
          await sleep(Math.max(0, retryAt - Date.now()));
        }
      } catch (error) {
        gate.release(endpointId);
        throw error;
      }
    },
    async finish(endpointId, token, outcome, wasProbe, succeededBefore = false) {
      // The Redis slot is released by a command written before any later admission of this
      // process on the same connection, so Redis runs them in that order: the next job may take
      // its turn now, without waiting for this answer.
      const finished = isolation.finish(endpointId, token, outcome, wasProbe, succeededBefore);
      const started = inFlight.get(endpointId);
      started?.delete(token);
      if (started?.size === 0) inFlight.delete(endpointId);
      gate.release(endpointId);
      await finished;
    },
  };
}
