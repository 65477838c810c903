import { setTimeout as sleep } from 'node:timers/promises';
import { cachedLookup } from '../src/cache';

describe('cachedLookup', () => {
  it('shares one load between concurrent misses and caches misses for missTtlMs', async () => {
    let loads = 0;
    const lookup = cachedLookup(
      async (key) => {
        loads += 1;
        return key === 'known' ? { id: 1 } : null;
      },
      { ttlMs: 1_000, missTtlMs: 1_000 },
    );
    await Promise.all([lookup.get('known'), lookup.get('known'), lookup.get('unknown'), lookup.get('unknown')]);
    expect(loads).toBe(2);
    expect(await lookup.get('unknown')).toBeNull();
    expect(loads).toBe(2);
  });

  it('serves the last value read when a refresh fails, until one succeeds; clear() still forgets it', async () => {
    let failing = false;
    let version = 1;
    const lookup = cachedLookup(
      async () => {
        if (failing) throw new Error('connection refused');
        return { version };
      },
      { ttlMs: 30, staleOnError: true },
    );
    expect(await lookup.get('k')).toEqual({ version: 1 });
    failing = true;
    await sleep(50);
    // Expired, and the refresh fails: the stale value, not the error.
    expect(await lookup.get('k')).toEqual({ version: 1 });
    await sleep(50);
    expect(await lookup.get('k')).toEqual({ version: 1 });
    failing = false;
    version = 2;
    await sleep(50);
    expect(await lookup.get('k')).toEqual({ version: 2 });
    failing = true;
    lookup.clear();
    await expect(lookup.get('k')).rejects.toThrow('connection refused');
  });
});

it('without staleOnError, a failed refresh is the caller’s error', async () => {
  let failing = false;
  const lookup = cachedLookup(
    async () => {
      if (failing) throw new Error('connection refused');
      return { ok: true };
    },
    { ttlMs: 20 },
  );
  await lookup.get('k');
  failing = true;
  await sleep(40);
  await expect(lookup.get('k')).rejects.toThrow('connection refused');
});

it('a stream of unknown keys never pushes known ones out, even when the cache is full', async () => {
  const loads = new Map<string, number>();
  const lookup = cachedLookup(
    async (key) => {
      loads.set(key, (loads.get(key) ?? 0) + 1);
      return key.startsWith('known') ? { key } : null;
    },
    { ttlMs: 60_000, missTtlMs: 60_000, max: 3 },
  );
  for (const key of ['known-1', 'known-2', 'known-3']) await lookup.get(key);
  for (let i = 0; i < 20; i++) expect(await lookup.get(`random-${i}`)).toBeNull();
  for (const key of ['known-1', 'known-2', 'known-3']) expect(await lookup.get(key)).toEqual({ key });
  expect([loads.get('known-1'), loads.get('known-2'), loads.get('known-3')]).toEqual([1, 1, 1]);
  expect(lookup.peek('known-1')).toEqual({ key: 'known-1' });
});
