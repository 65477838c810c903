// What a conversion costs end to end, in CPU: the whole system as separate processes (bench/system.ts:
// ingest, attribution, delivery with their defaults), receivers subscribed to every event, postbacks
// offered over HTTP at a fixed rate (open loop, fresh orders, approved: three events each). Every
// process's CPU time is read from the operating system before the load and after its last webhook
// arrived: each service, redis-server, every PostgreSQL process, this process (the receivers) and
// the load generator. Printed as CPU ms per postback per component, at 2 endpoints (150/s) and at
// 20 (30/s: sixty webhooks per postback), beside the same system idle for as long (its timers,
// polls and housekeeping) and the receivers' and load generator's own share.
import { runHttpLoadInChild } from './http-load';
import { type Row, cleanupOnInterrupt, machineNote, ms, once, report, row, runBench, size, sleep, withDeadline } from './lib';
import { EVENTS_PER_POSTBACK, startSystem } from './system';

interface Scenario {
  endpoints: number;
  perSecond: number;
  seconds: number;
}

const SCENARIOS: Scenario[] = [
  { endpoints: 2, perSecond: size(150, 60), seconds: size(20, 3) },
  { endpoints: 20, perSecond: size(30, 10), seconds: size(20, 3) },
];
if (process.env.COST_SCENARIOS)
  SCENARIOS.splice(
    0,
    SCENARIOS.length,
    ...process.env.COST_SCENARIOS.split(',').map((s) => {
      const [endpoints, perSecond, seconds] = s.split(':').map(Number);
      return { endpoints, perSecond, seconds };
    }),
  );

/** The components whose CPU is Trackway's: the services, Redis and PostgreSQL. */
const TRACKWAY = (name: string) => name !== 'receivers' && name !== 'load generator';

const delta = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(Object.entries(after).map(([name, used]) => [name, used - (before[name] ?? 0)]));

async function measure(scenario: Scenario): Promise<Row[]> {
  const system = await startSystem({ endpoints: scenario.endpoints, env: process.env.PIPELINE_ENV ? JSON.parse(process.env.PIPELINE_ENV) : {} });
  const cleanup = once(system.close);
  cleanupOnInterrupt(cleanup);
  const webhooksPerPostback = EVENTS_PER_POSTBACK * scenario.endpoints;
  const label = `${scenario.endpoints} endpoints at ${scenario.perSecond}/s`;
  try {
    const run = async (count: number) => {
      const list = system.postbacks(count);
      const before = system.arrivals.total;
      const load = await runHttpLoadInChild({ port: system.port, warmup: [], paths: list.map((p) => p.path), concurrency: 32, perSecond: scenario.perSecond });
      const accepted = load.statuses['202'] ?? 0;
      const drained = await system.drain(before + accepted * webhooksPerPostback, 60_000);
      return { accepted, drained, load, sent: list.length };
    };
    // Warm-up: JIT, pools, keep-alive connections, prepared statements; then the statistics a
    // running system has, and a second warm-up that plans with them.
    await run(Math.max(scenario.perSecond * size(3, 1), 20));
    await system.analyze();
    await run(Math.max(scenario.perSecond * size(2, 1), 20));
    await sleep(1_000);

    // The same system idle, as long as the load will run: what it costs without a postback.
    const idleMs = scenario.seconds * 1000;
    const idleBefore = system.usage();
    await sleep(idleMs);
    const idle = delta(system.usage(), idleBefore);

    const before = system.usage();
    const started = performance.now();
    // Read every 200 ms meanwhile: a server process that exits (an autovacuum worker) keeps what
    // it had used when last read.
    const sampler = setInterval(() => system.usage(), 200);
    const { accepted, drained, load, sent } = await run(scenario.perSecond * scenario.seconds);
    // Work left after the last webhook (marks, the attempts' records) belongs to this load too.
    await sleep(500);
    clearInterval(sampler);
    const elapsed = performance.now() - started;
    const used: Record<string, number> = { ...delta(system.usage(), before), 'load generator': load.clientCpu * load.durationMs };
    if (accepted !== sent || !drained) throw new Error(`${label}: ${accepted}/${sent} accepted, webhooks ${drained ? 'all' : 'not all'} arrived within 60 s`);

    const per = (name: string) => used[name] / accepted;
    const trackway = Object.keys(used)
      .filter(TRACKWAY)
      .reduce((sum, name) => sum + per(name), 0);
    const idleShare =
      Object.keys(idle)
        .filter(TRACKWAY)
        .reduce((sum, name) => sum + idle[name], 0) / idleMs;
    const outside = per('receivers') + per('load generator');
    console.log(`\n${label}: ${accepted} postbacks, ${accepted * webhooksPerPostback} webhooks in ${(elapsed / 1000).toFixed(1)} s`);
    console.log(`${'component'.padEnd(16)} ${'CPU ms/postback'.padStart(16)} ${'ms/webhook'.padStart(11)} ${'cores'.padStart(6)} ${'idle cores'.padStart(11)}`);
    for (const name of Object.keys(used))
      console.log(
        `${name.padEnd(16)} ${per(name).toFixed(3).padStart(16)} ${(per(name) / webhooksPerPostback).toFixed(4).padStart(11)} ${(used[name] / elapsed).toFixed(2).padStart(6)} ${name in idle ? (idle[name] / idleMs).toFixed(3).padStart(11) : '-'.padStart(11)}`,
      );
    console.log(`${'Trackway'.padEnd(16)} ${trackway.toFixed(3).padStart(16)} ${(trackway / webhooksPerPostback).toFixed(4).padStart(11)}`);
    const values = { ...Object.fromEntries(Object.keys(used).map((name) => [name, per(name)])), trackway, idle_cores: idleShare, postbacks: accepted };
    const breakdown = Object.keys(used)
      .filter(TRACKWAY)
      .map((name) => `${name} ${per(name).toFixed(2)}`)
      .join(', ');
    console.log(`  (${breakdown})`);
    const baseline = `receivers + load generator ${ms(outside)}; idle system ${idleShare.toFixed(3)} cores`;
    if (scenario.endpoints <= 2)
      return [
        row('cost', `Trackway CPU per postback, ${label}`, {
          measured: ms(trackway),
          baseline,
          target: '≤ 3 ms',
          met: trackway <= 3,
          values,
        }),
      ];
    return [
      row('cost', `Trackway CPU per webhook, ${label}`, {
        measured: `${ms(trackway / webhooksPerPostback)} (${ms(trackway)} per postback)`,
        baseline,
        target: '≤ 0.3 ms per webhook',
        met: trackway / webhooksPerPostback <= 0.3,
        values: { ...values, per_webhook: trackway / webhooksPerPostback },
      }),
    ];
  } finally {
    await cleanup();
  }
}

async function main() {
  await withDeadline('cost bench', size(420_000, 70_000), async () => {
    console.log(machineNote());
    const rows: Row[] = [];
    for (const scenario of SCENARIOS) rows.push(...(await measure(scenario)));
    report('cost', rows);
  });
}

runBench(main);
