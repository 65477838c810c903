import type { PrismaClient } from '@trackway/db';
import type { ClickJob } from '@trackway/queues';

type Pending = { job: ClickJob; resolve: () => void; reject: (error: unknown) => void };

/**
 * Collects click jobs that a high-concurrency worker is processing at once and writes them with
 * one multi-row insert. Each job completes only when its batch commits, so nothing is
 * acknowledged before it is written; a failed batch fails (and retries) every job in it.
 */
export class ClickBatcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly options: { maxBatch: number; maxWaitMs: number } = { maxBatch: 500, maxWaitMs: 25 },
  ) {}

  add(job: ClickJob): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ job, resolve, reject });
      if (this.pending.length >= this.options.maxBatch) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), this.options.maxWaitMs);
    });
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    try {
      await this.write(batch.map(({ job }) => job));
      for (const p of batch) p.resolve();
    } catch {
      // One bad row must not fail its neighbours: write them one by one, each job its own outcome.
      await Promise.all(batch.map((p) => this.write([p.job]).then(p.resolve, p.reject)));
    }
  }

  private async write(jobs: ClickJob[]): Promise<void> {
    await this.prisma.click.createMany({
      data: jobs.map((job) => ({
        id: job.clickId,
        offerId: job.offerId,
        affiliateId: job.affiliateId,
        ...job.subs,
        ip: job.ip,
        userAgent: job.userAgent,
        createdAt: new Date(job.clickedAt),
      })),
      // A click re-delivered after a crash is already written: idempotent by click id.
      skipDuplicates: true,
    });
  }
}
