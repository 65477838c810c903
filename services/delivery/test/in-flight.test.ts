// A job whose request is out gives its worker slot back, and the requests in flight are bounded.
// The worker is a real BullMQ Worker on the real Redis.
import { createWorkerConnection } from '@trackway/queues';
import { TEST_REDIS_URL, deleteRedisPrefix, randomPrefix, waitFor } from '@trackway/testing';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { InFlightRequests } from '../src/in-flight';

describe('InFlightRequests: the bound', () => {
  it('lets `max` requests out at once; the next waits for one to end (FIFO); ending twice frees one', async () => {
    const requests = new InFlightRequests(2);
    const first = await requests.begin();
    await requests.begin();
    const order: string[] = [];
    const queued = (name: string) =>
      requests.begin().then((end) => {
        order.push(name);
        return end;
      });
    const third = queued('third');
    const fourth = queued('fourth');
    await new Promise((resolve) => setImmediate(resolve));
    expect([requests.inFlight, requests.waiting, order]).toEqual([2, 2, []]);
    first();
    first();
    await third;
    await new Promise((resolve) => setImmediate(resolve));
    expect([requests.inFlight, requests.waiting, order]).toEqual([2, 1, ['third']]);
    (await third)();
    (await fourth)();
    expect([requests.inFlight, requests.waiting, order]).toEqual([1, 0, ['third', 'fourth']]);
  });
});

describe('InFlightRequests: lending a real worker its slots', () => {
  let connection: Redis;
  let prefix: string;
  let queue: Queue;
  const workers: Worker[] = [];
  const connections: Redis[] = [];
  const answers: Array<() => void> = [];
  beforeEach(() => {
    connection = createWorkerConnection(TEST_REDIS_URL);
    prefix = randomPrefix();
    queue = new Queue('lend', { connection, prefix });
  });
  afterEach(async () => {
    for (const answer of answers.splice(0)) answer();
    await Promise.all(workers.splice(0).map((w) => w.close()));
    await queue.close();
    for (const c of [connection, ...connections.splice(0)]) c.disconnect();
    await deleteRedisPrefix(prefix);
  });

  /** A worker of `slots` whose 'hang' jobs keep a request out until `answer()`; 'quick' jobs only note they ran. */
  function start(slots: number, max: number) {
    const requests = new InFlightRequests(max);
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    answers.push(answer);
    const ran: string[] = [];
    const own = createWorkerConnection(TEST_REDIS_URL);
    connections.push(own);
    const worker = new Worker(
      'lend',
      async (job) => {
        if (job.name === 'quick') return ran.push(job.id!);
        // As a delivery reads its row and takes its endpoint's turn: the worker's loop is back
        // to awaiting its jobs before the request goes out.
        await job.updateProgress(1);
        const ended = await requests.begin();
        await answered;
        ended();
      },
      { connection: own, prefix, concurrency: slots },
    );
    workers.push(worker);
    requests.lendSlotsOf(worker);
    return { requests, worker, ran, answer };
  }

  it('starts other jobs while more requests are out than the worker has slots; the jobs stay active and locked', async () => {
    const { requests, worker, ran, answer } = start(2, 100);
    await queue.addBulk(Array.from({ length: 6 }, (_, i) => ({ name: 'hang', data: {}, opts: { jobId: `hang-${i}` } })));
    await waitFor(() => requests.inFlight === 6, { what: 'six requests out with two slots' });
    await queue.addBulk(Array.from({ length: 3 }, (_, i) => ({ name: 'quick', data: {}, opts: { jobId: `quick-${i}` } })));
    await waitFor(() => ran.length === 3, { what: 'the quick jobs, while the six hang' });
    expect(requests.inFlight).toBe(6);
    expect(worker.concurrency).toBe(2 + 6);
    // Still active, each under its worker's lock: a crash now would put them back (stalled), not lose them.
    expect(await queue.getActiveCount()).toBe(6);
    for (let i = 0; i < 6; i++) expect(await connection.exists(`${prefix}:lend:hang-${i}:lock`)).toBe(1);

    answer();
    await waitFor(async () => (await queue.getCompletedCount()) === 9, { what: 'every job completed' });
    expect([requests.inFlight, worker.concurrency]).toEqual([0, 2]);
  });

  it('past `max`, a job waits holding its slot: with every slot waiting, nothing else starts', async () => {
    const { requests, worker, ran, answer } = start(2, 3);
    await queue.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: 'hang', data: {}, opts: { jobId: `hang-${i}` } })));
    await waitFor(() => requests.inFlight === 3 && requests.waiting === 2, { what: 'three out, two waiting in the two slots' });
    await queue.add('quick', {}, { jobId: 'quick' });
    // The quick job stays in Redis until a request ends (the worker's 2 + 3 are all taken):
    // checked after giving the worker time to fetch it, were it free to.
    expect(worker.concurrency).toBe(2 + 3);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect([ran, await queue.getWaitingCount()]).toEqual([[], 1]);
    answer();
    await waitFor(() => ran.length === 1, { what: 'the quick job, once requests ended' });
    await waitFor(async () => (await queue.getCompletedCount()) === 6, { what: 'every job completed' });
    expect(requests.inFlight).toBe(0);
  });
});

describe('InFlightRequests: one worker per delivery shard', () => {
  it("lends each job's own worker its slot: a shard whose endpoints hang does not take the other shard's slots", async () => {
    const prefix = randomPrefix();
    const connection = createWorkerConnection(TEST_REDIS_URL);
    const requests = new InFlightRequests(100);
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const [hanging, quiet] = ['deliveries', 'deliveries-1'].map((name) => new Queue(name, { connection, prefix: `{${prefix}:${name}}` }));
    const workers = [hanging, quiet].map(
      (queue) =>
        new Worker(
          queue.name,
          async (job) => {
            await job.updateProgress(1);
            const ended = await requests.begin(true, job.queueQualifiedName);
            await answered;
            ended();
          },
          { connection: createWorkerConnection(TEST_REDIS_URL), prefix: queue.opts.prefix, concurrency: 2 },
        ),
    );
    for (const worker of workers) requests.lendSlotsOf(worker);
    try {
      await hanging.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: 'hang', data: {}, opts: { jobId: `hang-${i}` } })));
      await waitFor(() => requests.inFlight === 5, { what: 'five requests out on the first shard' });
      expect(workers.map((w) => w.concurrency)).toEqual([2 + 5, 2]);
      await quiet.add('hang', {}, { jobId: 'other' });
      await waitFor(() => requests.inFlight === 6, { what: "the other shard's request" });
      expect(workers.map((w) => w.concurrency)).toEqual([2 + 5, 2 + 1]);
      answer();
      await waitFor(async () => (await hanging.getCompletedCount()) === 5 && (await quiet.getCompletedCount()) === 1, { what: 'every job completed' });
      expect(workers.map((w) => w.concurrency)).toEqual([2, 2]);
    } finally {
      answer();
      await Promise.all(
        workers.map(async (w) => {
          await w.close();
          (w.opts.connection as Redis).disconnect();
        }),
      );
      await Promise.all([hanging, quiet].map((q) => q.close()));
      connection.disconnect();
      await deleteRedisPrefix(prefix);
    }
  });
});
