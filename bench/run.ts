// Runs the three benchmark programs in sequence, each in a child process of its own (fresh
// heap, its own Postgres schema and BullMQ prefix), then prints one compact summary table.
//   bench/ingest.ts       GET /postback through the ingest app vs a bare Express 202 app
//   bench/attribution.ts  postback jobs through the attribution worker vs a no-op BullMQ worker
//   bench/delivery.ts     webhook deliveries through outbox/fan-out/delivery vs direct send(),
//                         plus the hanging-endpoint isolation figure
// Usage: pnpm bench  (or: npx tsx bench/run.ts [ingest|attribution|delivery ...])
import { type SummaryRow, forkTs, machineNote, printTable } from './lib';

const ALL = ['ingest', 'attribution', 'delivery'] as const;

async function runOne(name: string): Promise<{ rows: SummaryRow[]; code: number | null; ms: number }> {
  const started = performance.now();
  const child = forkTs(`bench/${name}.ts`);
  const rows: SummaryRow[] = [];
  child.on('message', (m: { type?: string; rows?: SummaryRow[] }) => {
    if (m.type === 'summary' && m.rows) rows.push(...m.rows);
  });
  // Each program bounds itself (~55 s); this is the backstop: SIGTERM lets it clean up first.
  const term = setTimeout(() => child.kill('SIGTERM'), 80_000);
  const kill = setTimeout(() => child.kill('SIGKILL'), 95_000);
  const forward = () => child.kill('SIGTERM');
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(term);
  clearTimeout(kill);
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  return { rows, code, ms: performance.now() - started };
}

async function main() {
  const selected = process.argv.slice(2).filter((a) => (ALL as readonly string[]).includes(a));
  const names = selected.length > 0 ? selected : [...ALL];
  console.log(machineNote());
  const rows: SummaryRow[] = [];
  const status: string[] = [];
  for (const name of names) {
    console.log(`\n=== ${name} ${'='.repeat(60 - name.length)}`);
    const result = await runOne(name);
    rows.push(...result.rows);
    status.push(`${name} ${result.code === 0 ? 'ok' : `FAILED (exit ${result.code})`} in ${(result.ms / 1000).toFixed(1)} s`);
    if (result.code !== 0) process.exitCode = 1;
  }
  console.log('\n=== summary (measured vs baseline in the same run; ratio = measured / baseline) ===');
  console.log(machineNote());
  printTable(rows);
  console.log(status.join('; '));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
