import { breakerOutcome, decideAttempt, foldFailingSince } from '../src/decide';
import { OUTAGE_BACKOFF, outageDelay } from '../src/schedule';

const SCHEDULE = [0, 1_000, 10_000];
const mid = () => 0.5; // no jitter
const http = (statusCode: number, retryAfterMs: number | null = null) => ({ statusCode, error: null, retryAfterMs });
const failure = (error: 'timeout' | 'dns' | 'refused' | 'reset' | 'tls' | 'ssrf_blocked' | 'network') => ({ statusCode: null, error, retryAfterMs: null });

describe('decideAttempt', () => {
  it.each([
    // result, attempts made before, → status, final, next delay
    ['200 on the first attempt', http(200), 0, 'succeeded', true, null],
    ['204 on the last attempt', http(204), 2, 'succeeded', true, null],
    ['500 on the first attempt', http(500), 0, 'pending', false, 1_000],
    ['500 on the second attempt', http(500), 1, 'pending', false, 10_000],
    ['500 on the last attempt: a dead letter', http(500), 2, 'failed', true, null],
    ['a timeout with attempts left', failure('timeout'), 0, 'pending', false, 1_000],
    ['a refused connection on the last attempt', failure('refused'), 2, 'failed', true, null],
    ['410 Gone, attempts left: final', http(410), 0, 'failed', true, null],
    ['SSRF-blocked, attempts left: final', failure('ssrf_blocked'), 0, 'failed', true, null],
    ['a 3xx is not a success', http(302), 0, 'pending', false, 1_000],
    ['429 with Retry-After beyond 2× the step: honoured (up to DELIVERY_RETRY_AFTER_MAX)', http(429, 60_000), 0, 'pending', false, 60_000],
    ['503 with Retry-After below the step: raised to 1×', http(503, 0), 1, 'pending', false, 10_000],
    ['attempts made past the budget (a swept job) is final', http(500), 5, 'failed', true, null],
  ] as const)('%s', (_name, result, attemptsMade, status, final, nextDelayMs) => {
    expect(decideAttempt(result, attemptsMade, SCHEDULE.length, SCHEDULE, mid)).toMatchObject({ status, final, nextDelayMs });
  });

  it('flags what the failing clock needs: success, 410, SSRF-blocked', () => {
    expect(decideAttempt(http(201), 0, 3, SCHEDULE, mid)).toMatchObject({ succeeded: true, gone: false, blocked: false });
    expect(decideAttempt(http(410), 0, 3, SCHEDULE, mid)).toMatchObject({ succeeded: false, gone: true, blocked: false });
    expect(decideAttempt(failure('ssrf_blocked'), 0, 3, SCHEDULE, mid)).toMatchObject({ succeeded: false, gone: false, blocked: true });
  });

  it('a one-attempt schedule makes every failure final', () => {
    expect(decideAttempt(http(500), 0, 1, [0], mid)).toMatchObject({ status: 'failed', final: true, nextDelayMs: null });
  });
});

describe('breakerOutcome', () => {
  it.each([
    [undefined, 'neutral'],
    [failure('ssrf_blocked'), 'neutral'],
    [http(200), 'succeeded'],
    [http(299), 'succeeded'],
    [http(500), 'failed'],
    [http(410), 'failed'],
    [failure('timeout'), 'failed'],
  ] as const)('%j → %s', (result, outcome) => {
    expect(breakerOutcome(result)).toBe(outcome);
  });
});

describe('foldFailingSince', () => {
  const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  const ok = (s: number) => ({ at: t(s), succeeded: true, blocked: false, gone: false });
  const fail = (s: number) => ({ at: t(s), succeeded: false, blocked: false, gone: false });
  const blocked = (s: number) => ({ at: t(s), succeeded: false, blocked: true, gone: false });
  const gone = (s: number) => ({ at: t(s), succeeded: false, blocked: false, gone: true });
  const AFTER = 10_000; // disable after 10 s of failures

  it.each([
    ['no attempts: unchanged', null, [], null, null],
    ['no attempts, clock running: unchanged', t(0), [], t(0), null],
    ['a failure starts the clock', null, [fail(5)], t(5), null],
    ['a failure keeps a running clock', t(1), [fail(5)], t(1), null],
    ['a success clears it', t(1), [ok(5)], null, null],
    ['success then failure: the clock starts at the failure', t(1), [ok(2), fail(3)], t(3), null],
    ['failure then success: cleared', null, [fail(2), ok(3)], null, null],
    ['an SSRF-blocked attempt does not start it', null, [blocked(2)], null, null],
    ['an SSRF-blocked attempt does not clear it', t(1), [blocked(2)], t(1), null],
    ['failing for less than the limit: kept', t(0), [fail(9)], t(0), null],
    ['failing for the limit: disabled', t(0), [fail(10)], t(0), 'Every attempt failed since 2026-01-01T00:00:00.000Z.'],
    ['the limit reached within one batch', null, [fail(0), fail(4), fail(11)], t(0), 'Every attempt failed since 2026-01-01T00:00:00.000Z.'],
    ['a success in between restarts the count', null, [fail(0), ok(6), fail(11)], t(11), null],
    ['410 disables at once', null, [gone(3)], t(3), 'The endpoint answered 410 Gone.'],
    ['the first disabling attempt gives the reason', t(0), [fail(12), gone(13)], t(0), 'Every attempt failed since 2026-01-01T00:00:00.000Z.'],
    ['attempts are folded in the order they were made, not handed in', null, [fail(11), fail(0)], t(0), 'Every attempt failed since 2026-01-01T00:00:00.000Z.'],
  ] as const)('%s', (_name, current, attempts, failingSince, disableReason) => {
    expect(foldFailingSince(current, attempts, AFTER)).toEqual({ failingSince, disableReason });
  });
});

describe('outageDelay', () => {
  it.each([
    [0, 500],
    [1, 1_000],
    [2, 2_000],
    [5, 16_000],
    [6, 30_000],
    [50, 30_000],
    [-1, 500],
  ])('after %i failures: %i ms (no jitter)', (failures, ms) => {
    expect(outageDelay(failures, () => 0.5)).toBe(ms);
  });

  it('jitters ±20 % and never goes past the cap by more', () => {
    expect(outageDelay(0, () => 0)).toBe(400);
    expect(outageDelay(0, () => 1)).toBe(600);
    expect(outageDelay(20, () => 1)).toBe(OUTAGE_BACKOFF.maxMs * 1.2);
  });
});
