import type { Settled } from '@trackway/db';

export type { Settled };

export interface BatcherOptions {
  /** A batch is written as soon as this many items are waiting. */
  maxSize: number;
  /** How long the first item of a batch waits for company; 0 = until the end of this event-loop turn. */
  maxWaitMs: number;
  /**
   * Batches written at once. While they are, new items gather into the next batch, so batches
   * grow with the load (group commit) and, at 1, batches are written in the order items came.
   */
  maxInFlight?: number;
}

interface Pending<T, R> {
  item: T;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Collects items that many concurrent callers (e.g. the jobs a BullMQ worker runs at once)
 * hand in, and writes them together. Each caller's promise settles with its own item's result,
 * and only once its batch was written: nothing is acknowledged before it is durable. BullMQ's
 * open-source edition has no batch processing; this is the piece in between.
 */
export class MicroBatcher<T, R> {
  private pending: Pending<T, R>[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private due = false;
  private readonly maxInFlight: number;

  constructor(
    private readonly write: (items: T[]) => Promise<Settled<R>[]>,
    private readonly options: BatcherOptions,
  ) {
    this.maxInFlight = options.maxInFlight ?? 1;
  }

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.options.maxSize) this.fire();
      else this.arm();
    });
  }

  private arm() {
    if (this.timer || this.due) return;
    const fire = () => {
      this.timer = undefined;
      this.fire();
    };
    this.timer = this.options.maxWaitMs <= 0 ? setImmediate(fire) : setTimeout(fire, this.options.maxWaitMs);
  }

  private fire() {
    if (this.timer) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = undefined;
    }
    this.due = true;
    while (this.due && this.inFlight < this.maxInFlight && this.pending.length > 0) void this.flushOne();
  }

  private take(): Pending<T, R>[] {
    const batch = this.pending.splice(0, this.options.maxSize);
    // What is left waits for its own turn: a full batch at once, a partial one after maxWaitMs.
    this.due = this.pending.length >= this.options.maxSize;
    return batch;
  }

  private async flushOne(): Promise<void> {
    const batch = this.take();
    this.inFlight += 1;
    try {
      let results: Settled<R>[];
      try {
        results = await this.write(batch.map((p) => p.item));
      } catch (error) {
        results = batch.map(() => ({ ok: false, error }));
      }
      batch.forEach((p, i) => {
        const result = results[i] ?? { ok: false, error: new Error('the batch writer returned no result for this item') };
        if (result.ok) p.resolve(result.value);
        else p.reject(result.error);
      });
    } finally {
      this.inFlight -= 1;
      if (this.pending.length > 0) {
        if (this.due || this.pending.length >= this.options.maxSize) this.fire();
        else this.arm();
      }
    }
  }
}
