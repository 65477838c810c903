// The delivery decisions, as pure functions: what an attempt's result means for the delivery,
// for the endpoint's breaker, and for the endpoint's failing clock. The worker loads, sends,
// calls these, and writes.
import { DEFAULT_RETRY_AFTER_MAX_MS, delayBeforeAttempt } from './schedule';
import type { AttemptResult } from './sender';

export interface AttemptDecision {
  /** The delivery's status after this attempt. */
  status: 'succeeded' | 'failed' | 'pending';
  /** No attempt follows (success, 410, SSRF-blocked, or the schedule's last). */
  final: boolean;
  /** Delay before the next attempt; null when final. */
  nextDelayMs: number | null;
  succeeded: boolean;
  /** 410 Gone: the endpoint is disabled at once. */
  gone: boolean;
  /** Refused by the SSRF guard: not retried, and says nothing about the endpoint's health. */
  blocked: boolean;
}

export const isSuccess = (result: Pick<AttemptResult, 'statusCode'>) => result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;

/**
 * An HTTP attempt's result, this job's attempts before it (BullMQ attemptsMade: real HTTP
 * attempts only) and its budget (job.opts.attempts = the schedule's length) → the delivery's fate.
 */
export function decideAttempt(
  result: Pick<AttemptResult, 'statusCode' | 'error' | 'retryAfterMs'>,
  attemptsMade: number,
  attempts: number,
  schedule: readonly number[],
  random: () => number = Math.random,
  retryAfterMaxMs = DEFAULT_RETRY_AFTER_MAX_MS,
): AttemptDecision {
  const succeeded = isSuccess(result);
  const gone = result.statusCode === 410;
  const blocked = result.error === 'ssrf_blocked';
  const final = succeeded || gone || blocked || attemptsMade + 1 >= attempts;
  return {
    status: succeeded ? 'succeeded' : final ? 'failed' : 'pending',
    final,
    nextDelayMs: final ? null : delayBeforeAttempt(schedule, attemptsMade + 2, result.retryAfterMs, random, retryAfterMaxMs),
    succeeded,
    gone,
    blocked,
  };
}

/** What the breaker learns: nothing from an attempt that sent nothing or was SSRF-blocked. */
export function breakerOutcome(result: Pick<AttemptResult, 'statusCode' | 'error'> | undefined): 'succeeded' | 'failed' | 'neutral' {
  if (!result || result.error === 'ssrf_blocked') return 'neutral';
  return isSuccess(result) ? 'succeeded' : 'failed';
}

export interface EndpointAttempt {
  at: Date;
  succeeded: boolean;
  blocked: boolean;
  gone: boolean;
}

export interface FailingClock {
  /** The endpoint's failing_since after these attempts. */
  failingSince: Date | null;
  /** Why the endpoint is to be disabled, if one of these attempts disables it. */
  disableReason: string | null;
}

/**
 * Folds one endpoint's attempts, in the order they were made, into its failing clock: a success
 * clears it, a failure starts it (if not running), an SSRF-blocked attempt leaves it alone. A
 * 410, or a failure at least `disableAfterMs` after the clock started, disables the endpoint
 * (the first such attempt gives the reason).
 */
export function foldFailingSince(current: Date | null, attempts: readonly EndpointAttempt[], disableAfterMs: number): FailingClock {
  let failingSince = current;
  let disableReason: string | null = null;
  for (const attempt of [...attempts].sort((a, b) => a.at.getTime() - b.at.getTime())) {
    if (attempt.blocked) continue;
    if (attempt.succeeded) {
      failingSince = null;
      continue;
    }
    failingSince ??= attempt.at;
    if (disableReason) continue;
    if (attempt.gone) disableReason = 'The endpoint answered 410 Gone.';
    else if (attempt.at.getTime() - failingSince.getTime() >= disableAfterMs) disableReason = `Every attempt failed since ${failingSince.toISOString()}.`;
  }
  return { failingSince, disableReason };
}
