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
  /** Slots lent now: one per job with a request out (a batch's lanes lend their job's one slot once). */
  private lent = 0;
  private readonly waiters: Array<() => void> = [];
  private worker: Worker | undefined;
  private slots = 0;

  constructor(readonly max: number) {}

  /** Requests out now, and jobs waiting for one of the `max`. */
  get inFlight(): number {
    return this.count;
  }
  get waiting(): number {
    return this.waiters.length;
  }

  /** The worker whose slots the requests lend: its concurrency becomes its own plus the slots lent. */
  lendSlotsOf(worker: Worker): void {
    if (!('mainLoopQueue' in worker)) throw new Error('this BullMQ has no Worker.mainLoopQueue: delivery cannot lend slots (BullMQ 6.7 has it)');
    this.worker = worker;
    this.slots = worker.concurrency;
  }

  /**
   * Waits for one of the `max` requests (FIFO), then, if `lend` (the job has no other request
   * out), lends the caller's slot until the returned function is called (once the answer or the
   * deadline came; later calls do nothing).
   */
  async begin(lend = true): Promise<() => void> {
    if (this.count < this.max) this.count += 1;
    // Handed over by a request that ended: as many in flight.
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    const lent = lend ? this.lend() : undefined;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      lent?.();
      const next = this.waiters.shift();
      if (next) next();
      else this.count -= 1;
      this.resize();
    };
  }

  /** Lends a job's slot until the returned function is called (later calls do nothing). */
  private lend(): () => void {
    this.lent += 1;
    this.resize();
    // The loop may be waiting for a job to finish before it fetches again: the slot is free now.
    (this.worker as unknown as MainLoop | undefined)?.mainLoopQueue?.add(Promise.resolve());
    let returned = false;
    return () => {
      if (returned) return;
      returned = true;
      this.lent -= 1;
      this.resize();
    };
  }

  private resize() {
    if (this.worker) this.worker.concurrency = this.slots + this.lent;
  }
}
