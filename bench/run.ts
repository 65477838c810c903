// `pnpm bench [--quick] [tier ...]`: runs the benchmark programs in sequence, each in a child
// process of its own (fresh heap, its own Postgres schema and BullMQ prefix), then prints one
// table, every figure beside the baseline measured in the same run and the issue's target, and
// writes it to bench/results/latest.json.
//   bench/ingest.ts       ingest and clicks vs bare Express / node:http, the naive design, Redis bytes
//   bench/attribution.ts  50,000 postbacks through the attribution worker vs a no-op BullMQ worker
//   bench/delivery.ts     10,000 events to one endpoint vs direct signed POSTs, same keep-alive client;
//                         a light load's latency beside 20 hanging endpoints vs without them
//   bench/pipeline.ts     one process per service, two endpoints: the highest sustained rate, e2e latency
//   bench/cost.ts         the same system at a fixed rate: every process's CPU ms per postback (2 and 20 endpoints)
//   bench/conversion.ts   the partitioning migration on 5 × 1 M rows of history vs copying the rows
//   bench/reports.ts      reports over 20 M clicks and 1 M conversions in an embedded PostgreSQL of its own
//                         (built in minutes): p99 of the API's reports, CSV rows/s (`pnpm bench reports`)
//   bench/scale.ts        three months of history (20 M clicks, 6 M deliveries, …) beside an empty database, in an
//                         embedded PostgreSQL of its own: retention, the admin list routes, a payout beside a drain,
//                         click rows/s (`pnpm bench scale`)
// --quick: the same table from small counts (≤ 60 s a tier; reports and scale build small data
// sets first, ≤ 4 min), as CI's smoke test. A run fails (exit 1) only when a figure could not be
// measured or a correctness check failed, never for a slow machine.
import fs from 'node:fs';
import path from 'node:path';
import { ensureDatabase } from '@trackway/db';
import { TEST_DATABASE_URL } from '@trackway/testing';
import { ROOT, type Row, forkTs, machineNote, printTable } from './lib';

const ALL = ['ingest', 'attribution', 'delivery', 'pipeline', 'cost', 'conversion', 'reports', 'scale'] as const;

async function runOne(name: string, quick: boolean): Promise<{ rows: Row[]; code: number | null; ms: number }> {
  const started = performance.now();
  const child = forkTs(`bench/${name}.ts`, quick ? { BENCH_QUICK: '1' } : {});
  const rows: Row[] = [];
  child.on('message', (m: { type?: string; rows?: Row[] }) => {
    if (m.type === 'summary' && m.rows) rows.push(...m.rows);
  });
  // Each program bounds itself; this is the backstop: SIGTERM lets it clean up first. The reports
  // and scale tiers build their data sets first (minutes for the full ones).
  const atVolume = name === 'reports' || name === 'scale';
  const limit = quick ? (atVolume ? 240_000 : 85_000) : name === 'scale' ? 7_300_000 : atVolume ? 3_700_000 : 600_000;
  const term = setTimeout(() => child.kill('SIGTERM'), limit);
  const kill = setTimeout(() => child.kill('SIGKILL'), limit + 15_000);
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
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const selected = args.filter((a) => (ALL as readonly string[]).includes(a));
  const names = selected.length > 0 ? selected : [...ALL];
  const started = performance.now();
  // Each program migrates its own schema in this database (as the tests do): make sure it exists.
  await ensureDatabase(TEST_DATABASE_URL);
  console.log(machineNote());
  const rows: Row[] = [];
  const status: string[] = [];
  for (const name of names) {
    console.log(`\n=== ${name} ${'='.repeat(60 - name.length)}`);
    const result = await runOne(name, quick);
    rows.push(...result.rows);
    status.push(`${name} ${result.code === 0 ? 'ok' : `FAILED (exit ${result.code})`} in ${(result.ms / 1000).toFixed(1)} s`);
    if (result.code !== 0) process.exitCode = 1;
  }
  console.log(
    `\n=== summary${quick ? ' (quick: small counts, for the smoke test)' : ''}: measured vs the baseline measured in the same run; ratio = measured / baseline ===`,
  );
  console.log(machineNote());
  printTable(rows);
  console.log(status.join('; '));
  const missed = rows.filter((r) => r.met === false).map((r) => `${r.tier}: ${r.metric}`);
  if (missed.length > 0) console.log(`targets missed: ${missed.join('; ')}`);
  const out = path.join(ROOT, 'bench/results', quick ? 'latest-quick.json' : 'latest.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(
    out,
    `${JSON.stringify({ at: new Date().toISOString(), quick, machine: machineNote(), seconds: (performance.now() - started) / 1000, status, rows }, null, 2)}\n`,
  );
  console.log(`written: ${path.relative(ROOT, out)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
