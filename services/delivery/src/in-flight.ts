import type { Worker } from 'bullmq';

// What BullMQ's own Worker.resume() uses to wake its main loop: the FIFO of fetches and jobs the
// loop awaits. Raising `concurrency` alone is read only when one of those settles, which may be
// a hanging request's deadline away.
interface MainLoop {
  mainLoopQueue: { add(promise: Promise<unknown>): void } | null;
}

/**
 * A delivery process's HTTP requests in flight, and the worker slots they give back.
 *
 * A job awaits its receiver's answer for up to DELIVERY_TIMEOUT_MS. Were it to hold its BullMQ
 * slot all that time, a few endpoints that never answer (each up to its cap) would hold every
 * slot and no other endpoint's delivery could start. So while its request is out a job lends
 * its slot back: the worker's concurrency is its slots (DELIVERY_CONCURRENCY) plus the slots
 * lent (one per job with a request out: of a batch's lanes, only the first request out lends), and the job,
 * still active and locked, runs again after a crash as before. What bounds the requests is `max` (DELIVERY_MAX_IN_FLIGHT, from the sockets the process may open):
 * past it, a job waits for one to end, holding its slot.
 */
export class InFlightRequests {
  private count = 0;
  private readonly waiters: Array<() => void> = [];
  /**
   * The workers whose slots requests lend (one per delivery shard, and per queue being drained),
   * by their queue's qualified name: a job lends its own worker's slot. Each has its slots, and
   * the slots lent now: one per job with a request out (a batch's lanes lend their job's one slot once).
   */
  private readonly workers = new Map<string, { worker: Worker; slots: number; lent: number }>();

  constructor(readonly max: number) {}

  /** Requests out now, and jobs waiting for one of the `max`. */
  get inFlight(): number {
    return this.count;
  }
  get waiting(): number {
    return this.waiters.length;
  }

  /** A worker whose slots the requests of its jobs lend: its concurrency becomes its own plus the slots lent. */
  lendSlotsOf(worker: Worker): void {
    if (!('mainLoopQueue' in worker)) throw new Error('this BullMQ has no Worker.mainLoopQueue: delivery cannot lend slots (BullMQ 6.7 has it)');
    this.workers.set(worker.qualifiedName, { worker, slots: worker.concurrency, lent: 0 });
  }

  /**
   * Waits for one of the `max` requests (FIFO), then, if `lend` (the job has no other request
   * out), lends the slot of the job's worker (`queue`: the job's queueQualifiedName; the only
   * worker when omitted) until the returned function is called (once the answer or the deadline
   * came; later calls do nothing).
   */
  async begin(lend = true, queue?: string): Promise<() => void> {
    if (this.count < this.max) this.count += 1;
    // Handed over by a request that ended: as many in flight.
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    const owner = queue === undefined && this.workers.size === 1 ? [...this.workers.values()][0] : this.workers.get(queue ?? '');
    const lent = lend && owner ? this.lend(owner) : undefined;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      lent?.();
      const next = this.waiters.shift();
      if (next) next();
      else this.count -= 1;
    };
  }

  /** Lends a job's slot until the returned function is called (later calls do nothing). */
  private lend(owner: { worker: Worker; slots: number; lent: number }): () => void {
    const resize = () => void (owner.worker.concurrency = owner.slots + owner.lent);
    owner.lent += 1;
    resize();
    // The loop may be waiting for a job to finish before it fetches again: the slot is free now.
    (owner.worker as unknown as MainLoop).mainLoopQueue?.add(Promise.resolve());
    let returned = false;
    return () => {
      if (returned) return;
      returned = true;
      owner.lent -= 1;
      resize();
    };
  }
}
