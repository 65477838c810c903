/**
 * The retry schedule (DELIVERY_RETRY_SCHEDULE: the delay before each attempt, the first
 * normally 0), with ±20 % jitter so retries to one endpoint do not arrive in lockstep, and a
 * Retry-After from a 429/503 honoured as sent, never sooner than the scheduled delay and never
 * later than DELIVERY_RETRY_AFTER_MAX (default 1 h).
 */
export const JITTER = 0.2;
export const DEFAULT_RETRY_AFTER_MAX_MS = 3_600_000;

export function delayBeforeAttempt(
  schedule: readonly number[],
  attemptNumber: number,
  retryAfterMs: number | null,
  random = Math.random,
  retryAfterMaxMs = DEFAULT_RETRY_AFTER_MAX_MS,
): number {
  const base = schedule[Math.min(attemptNumber - 1, schedule.length - 1)] ?? 0;
  const jittered = Math.round(base * (1 - JITTER + 2 * JITTER * random()));
  // The first attempt follows no answer, and an empty schedule has no retries: nothing to defer.
  if (retryAfterMs === null || attemptNumber <= 1 || schedule.length === 0) return jittered;
  return Math.max(Math.min(retryAfterMs, retryAfterMaxMs), base);
}

/**
 * How long a job waits after its n-th consecutive failure (from 0) to reach Postgres or Redis:
 * exponential from 500 ms, capped at 30 s, ±20 % jitter so waiting jobs do not return in lockstep.
 * Not an attempt: the retry schedule is for the receiver, this is for our own dependencies.
 */
export const OUTAGE_BACKOFF = { baseMs: 500, maxMs: 30_000 } as const;

export function outageDelay(failures: number, random = Math.random): number {
  const base = Math.min(OUTAGE_BACKOFF.baseMs * 2 ** Math.min(Math.max(0, failures), 16), OUTAGE_BACKOFF.maxMs);
  return Math.round(base * (1 - JITTER + 2 * JITTER * random()));
}

/**
 * When a job that found its endpoint busy comes back: after about one typical attempt,
 * doubling each time the same job is turned away (20 ms up to 2 s), jittered so parked jobs do
 * not return in lockstep. If the endpoint is stuck (its oldest attempt `stuckForMs` out, far
 * longer than usual), not before about as long again, and at most until that attempt's
 * deadline: an endpoint that stopped answering frees no turn sooner, and each of its jobs
 * fetched again for nothing is work taken from the other endpoints' deliveries.
 */
export function parkUntil(
  typicalAttemptMs: number | undefined,
  timesParked: number,
  attemptTimeoutMs: number,
  now = Date.now(),
  random = Math.random,
  stuckForMs = 0,
): number {
  const backoff = Math.min(Math.max(typicalAttemptMs ?? 1_000, 20) * 2 ** Math.min(timesParked, 10), 2_000, attemptTimeoutMs);
  const wait = Math.max(backoff, Math.min(stuckForMs, attemptTimeoutMs - stuckForMs));
  return now + Math.round(wait * (0.5 + random()));
}
