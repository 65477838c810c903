import { MicroBatcher, type Settled } from '../src/batcher';

const ok = <R>(value: R): Settled<R> => ({ ok: true, value });
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A writer that records each batch and answers when told to. */
function recorder<T>(answer: (item: T) => Settled<string> = (item) => ok(`done:${item}`)) {
  const batches: T[][] = [];
  const gates: Array<() => void> = [];
  let hold = false;
  const write = async (items: T[]) => {
    batches.push(items);
    if (hold) await new Promise<void>((resolve) => gates.push(resolve));
    return items.map(answer);
  };
  return {
    batches,
    write,
    hold: (on: boolean) => (hold = on),
    release: () => {
      for (const g of gates.splice(0)) g();
    },
  };
}

describe('MicroBatcher', () => {
  it('writes what one turn hands in as one batch (maxWaitMs 0), each caller getting its own result', async () => {
    const r = recorder<number>();
    const batcher = new MicroBatcher(r.write, { maxSize: 100, maxWaitMs: 0 });
    const results = await Promise.all([1, 2, 3].map((n) => batcher.add(n)));
    expect(r.batches).toEqual([[1, 2, 3]]);
    expect(results).toEqual(['done:1', 'done:2', 'done:3']);
  });

  it('writes a full batch at once and keeps the order items came in', async () => {
    const r = recorder<number>();
    const batcher = new MicroBatcher(r.write, { maxSize: 2, maxWaitMs: 50, maxInFlight: 5 });
    const all = Promise.all([1, 2, 3, 4, 5].map((n) => batcher.add(n)));
    await tick();
    // 1–4 went out as two full batches without waiting; 5 waits for company or its timer.
    expect(r.batches).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(await all).toEqual([1, 2, 3, 4, 5].map((n) => `done:${n}`));
    expect(r.batches[2]).toEqual([5]);
  });

  it('waits maxWaitMs for company, then writes a partial batch', async () => {
    const r = recorder<string>();
    const batcher = new MicroBatcher(r.write, { maxSize: 10, maxWaitMs: 30 });
    const started = Date.now();
    await batcher.add('a');
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(r.batches).toEqual([['a']]);
  });

  it('gathers what arrives while a batch is in flight into the next one (group commit)', async () => {
    const r = recorder<number>();
    r.hold(true);
    const batcher = new MicroBatcher(r.write, { maxSize: 100, maxWaitMs: 0, maxInFlight: 1 });
    const first = batcher.add(1);
    await tick();
    const later = [2, 3, 4].map((n) => batcher.add(n));
    await tick();
    expect(r.batches).toEqual([[1]]);
    r.hold(false);
    r.release();
    await Promise.all([first, ...later]);
    expect(r.batches).toEqual([[1], [2, 3, 4]]);
  });

  it('settles each item as the writer says, and fails the whole batch when the writer throws', async () => {
    const mixed = new MicroBatcher<number, string>(async (items) => items.map((n) => (n % 2 ? ok(`odd ${n}`) : { ok: false, error: new Error(`even ${n}`) })), {
      maxSize: 10,
      maxWaitMs: 0,
    });
    const settled = await Promise.allSettled([1, 2, 3].map((n) => mixed.add(n)));
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual(['odd 1', 'even 2', 'odd 3']);

    const broken = new MicroBatcher<number, string>(
      async () => {
        throw new Error('database down');
      },
      { maxSize: 10, maxWaitMs: 0 },
    );
    const failed = await Promise.allSettled([1, 2].map((n) => broken.add(n)));
    expect(failed.map((s) => s.status === 'rejected' && (s.reason as Error).message)).toEqual(['database down', 'database down']);
  });

  it('rejects an item the writer gave no result for, rather than leaving it hanging', async () => {
    const short = new MicroBatcher<number, string>(async () => [ok('only one')], { maxSize: 10, maxWaitMs: 0 });
    const settled = await Promise.allSettled([1, 2].map((n) => short.add(n)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected']);
  });
});
