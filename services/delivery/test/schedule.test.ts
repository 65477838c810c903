import { envSchema } from '@trackway/config';
import fc from 'fast-check';
import { JITTER, delayBeforeAttempt } from '../src/schedule';

const S = 1_000;
const MIN = 60 * S;
const H = 60 * MIN;
/** The default DELIVERY_RETRY_SCHEDULE: the delay before attempts 1..8. */
const SCHEDULE = [0, 5 * S, 5 * MIN, 30 * MIN, 2 * H, 5 * H, 10 * H, 10 * H] as const;

const fixed = (value: number) => () => value;

describe('delayBeforeAttempt with the default schedule', () => {
  it('the hardcoded schedule is the config default (0,5s,5min,30min,2h,5h,10h,10h)', () => {
    expect(envSchema.shape.DELIVERY_RETRY_SCHEDULE.parse(undefined)).toEqual([...SCHEDULE]);
  });

  it('jitter is ±20 %', () => {
    expect(JITTER).toBe(0.2);
  });

  it.each(SCHEDULE.map((base, i) => [i + 1, base] as const))('attempt %i (base %i ms): random 0 → −20 %, 0.5 → exact, 1 → +20 %', (attempt, base) => {
    expect(delayBeforeAttempt(SCHEDULE, attempt, null, fixed(0))).toBe(Math.round(base * 0.8));
    expect(delayBeforeAttempt(SCHEDULE, attempt, null, fixed(0.5))).toBe(base);
    expect(delayBeforeAttempt(SCHEDULE, attempt, null, fixed(1))).toBe(Math.round(base * 1.2));
  });

  it('concrete values', () => {
    expect(delayBeforeAttempt(SCHEDULE, 2, null, fixed(0))).toBe(4_000);
    expect(delayBeforeAttempt(SCHEDULE, 2, null, fixed(1))).toBe(6_000);
    expect(delayBeforeAttempt(SCHEDULE, 3, null, fixed(0.25))).toBe(270_000); // 5 min × 0.9
    expect(delayBeforeAttempt(SCHEDULE, 5, null, fixed(0.75))).toBe(7_920_000); // 2 h × 1.1
    expect(delayBeforeAttempt(SCHEDULE, 8, null, fixed(1))).toBe(43_200_000); // 10 h × 1.2
  });

  it('the first attempt (0) stays 0 whatever the jitter or Retry-After', () => {
    for (const r of [0, 0.3, 0.5, 0.999, 1]) expect(delayBeforeAttempt(SCHEDULE, 1, null, fixed(r))).toBe(0);
    expect(delayBeforeAttempt(SCHEDULE, 1, 60_000, fixed(1))).toBe(0);
  });

  it('attempt numbers past the end reuse the last entry', () => {
    for (const attempt of [9, 10, 50, 1_000]) {
      expect(delayBeforeAttempt(SCHEDULE, attempt, null, fixed(0.5))).toBe(10 * H);
      expect(delayBeforeAttempt(SCHEDULE, attempt, null, fixed(0))).toBe(8 * H);
      expect(delayBeforeAttempt(SCHEDULE, attempt, null, fixed(1))).toBe(12 * H);
    }
    expect(delayBeforeAttempt([1_000, 2_000], 7, null, fixed(0.5))).toBe(2_000);
  });

  it('property: the delay stays within ±20 % of the base for any attempt and any random value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, r) => {
        const base = SCHEDULE[Math.min(attempt, SCHEDULE.length) - 1];
        const delay = delayBeforeAttempt(SCHEDULE, attempt, null, () => r);
        expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
        expect(delay).toBeLessThanOrEqual(Math.ceil(base * 1.2));
        expect(Number.isInteger(delay)).toBe(true);
      }),
    );
  });

  it('uses Math.random by default, staying within the bounds and actually varying', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const delay = delayBeforeAttempt(SCHEDULE, 4, null);
      expect(delay).toBeGreaterThanOrEqual(24 * MIN);
      expect(delay).toBeLessThanOrEqual(36 * MIN);
      seen.add(delay);
    }
    expect(seen.size).toBeGreaterThan(50);
  });

  describe('Retry-After is honoured as sent, from the base up to DELIVERY_RETRY_AFTER_MAX (1 h)', () => {
    it.each([
      // attempt, retryAfterMs, expected
      [2, 0, 5 * S], // below → base
      [2, 1 * S, 5 * S],
      [2, 5 * S, 5 * S], // at the lower bound
      [2, 7_500, 7_500], // within → as given
      [2, 10 * S + 1, 10 * S + 1], // past 2× the base: still as given (it used to be clamped to 10 s)
      [2, 3_600 * S, 3_600 * S], // Retry-After: 3600 on attempt 2 → an hour
      [2, 3_601 * S, 3_600 * S], // above the maximum → the maximum
      [3, 6 * MIN, 6 * MIN],
      [3, 60 * MIN, 60 * MIN],
      [4, 45 * MIN, 45 * MIN],
      [6, 0, 5 * H],
      [6, 2 * H, 5 * H], // the base is above the maximum: the base
      [8, 48 * H, 10 * H],
      [20, 48 * H, 10 * H], // past the end: the last entry's base
    ] as const)('attempt %i, Retry-After %i ms → %i ms', (attempt, retryAfterMs, expected) => {
      expect(delayBeforeAttempt(SCHEDULE, attempt, retryAfterMs, fixed(0))).toBe(expected);
      // No jitter on top of an honoured Retry-After.
      expect(delayBeforeAttempt(SCHEDULE, attempt, retryAfterMs, fixed(1))).toBe(expected);
    });

    it('takes another maximum', () => {
      expect(delayBeforeAttempt(SCHEDULE, 2, 3_600 * S, fixed(0), 10 * MIN)).toBe(10 * MIN);
      expect(delayBeforeAttempt(SCHEDULE, 2, 3_600 * S, fixed(0), 2 * H)).toBe(3_600 * S);
    });

    it('property: the result is the Retry-After within [base, max(base, 1 h)]', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 100 * H }), (attempt, retryAfterMs) => {
          const base = SCHEDULE[Math.min(attempt, SCHEDULE.length) - 1];
          const delay = delayBeforeAttempt(SCHEDULE, attempt, retryAfterMs, Math.random);
          expect(delay).toBeGreaterThanOrEqual(base);
          expect(delay).toBeLessThanOrEqual(Math.max(base, H));
          // (The first attempt follows no answer: there is nothing to defer.)
          if (attempt > 1 && retryAfterMs >= base && retryAfterMs <= H) expect(delay).toBe(retryAfterMs);
        }),
      );
    });
  });
});

describe('delayBeforeAttempt with other schedules', () => {
  it('an empty schedule gives 0', () => {
    expect(delayBeforeAttempt([], 1, null, fixed(1))).toBe(0);
    expect(delayBeforeAttempt([], 5, 30_000, fixed(1))).toBe(0);
  });

  it('rounds the jittered delay to whole milliseconds', () => {
    expect(delayBeforeAttempt([7], 1, null, fixed(0))).toBe(6); // 5.6 → 6
    expect(delayBeforeAttempt([7], 1, null, fixed(1))).toBe(8); // 8.4 → 8
    expect(delayBeforeAttempt([1_001], 1, null, fixed(0.123))).toBe(Math.round(1_001 * (0.8 + 0.4 * 0.123)));
  });
});
