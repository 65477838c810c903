// `pnpm chaos [--quick] [--postbacks N] [--rate N] [--kills N] [--seed N] [--keep-logs]`
// The fault run, from the repository: the whole pipeline as child processes (ingest, api, two
// attribution and two delivery workers) on a Redis of its own (AOF) and on Postgres through a
// TCP proxy it can cut, two subscribed receivers (one failing 10 % of requests), a partner
// postback (an affiliate's tracker, failing 5 %), and a stream of postbacks at ingest while it
// kills workers (kill -9), restarts Redis (SHUTDOWN, then kill -9) and cuts Postgres (10 s, then
// longer than the retry schedule). At the end it checks what
// docs/reliability.md lists, prints the figures, and exits 1 on any violation.
// --quick: 1,500 postbacks and fewer kills, every fault kind (CI, ≤ 3 minutes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createClickIdCodec } from '@trackway/clickid';
import { ensureDatabase } from '@trackway/db';
import { createProducerConnection, createQueues, whenReady } from '@trackway/queues';
import { TEST_DATABASE_URL, createFixture, createTestDatabase, ignoreErrors, randomSuffix } from '@trackway/testing';
import { cleanupOnInterrupt, machineNote, once, sleep } from '../bench/lib';
import { signAdminToken } from '../services/api/src/auth';
import { stackEnv } from '../test/support/processes';
import { STACK_SECRET, type Stack } from '../test/support/stack';
import { type TcpProxy, startTcpProxy } from '../test/support/tcp-proxy';
import { type ChaosPartner, type Check, PARTNER_TYPES, finalChecks, progress, quiescent } from './chaos/checks';
import { type ChaosReceiver, type KillRecord, type PartnerReceiver, startChaosReceiver, startPartnerReceiver } from './chaos/receivers';
import { createOwnRedis } from './chaos/redis';
import { createSenderIndex } from './chaos/senders';
import { Supervised, type UnexpectedExit } from './chaos/services';
import { type Answer, planPostbacks, seeded, streamPostbacks } from './chaos/traffic';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: {
    quick: { type: 'boolean', default: false },
    postbacks: { type: 'string' },
    rate: { type: 'string' },
    kills: { type: 'string' },
    seed: { type: 'string' },
    'keep-logs': { type: 'boolean', default: false },
  },
});
const QUICK = args.quick;
const POSTBACKS = Number(args.postbacks ?? (QUICK ? 1_500 : 10_000));
/** New postbacks per second; the stream lasts about POSTBACKS / RATE seconds. */
const REQUESTED_RATE = Number(args.rate ?? (QUICK ? 30 : 100));
const KILLS = Number(args.kills ?? (QUICK ? 6 : 12));
const SEED = Number(args.seed ?? Math.floor(Math.random() * 1e9));
// Four attempts over 7 s (±20 % jitter: at most 8.4 s): the long outage lasts longer than all of them.
const RETRY_SCHEDULE = '0,1s,2s,4s';
const SCHEDULE_MAX_MS = 8_400;
const SHORT_OUTAGE_MS = 10_000;
const LONG_OUTAGE_MS = QUICK ? 15_000 : 30_000;
const REDIS_DOWN_MS = 3_000;
const QUIESCENCE_MS = QUICK ? 75_000 : 240_000;
// The faults take their time whatever the count: the stream lasts long enough to hold them all
// (the long outage starts at 60 % of it and must end before the stream does).
const MIN_STREAM_MS = LONG_OUTAGE_MS / 0.3;
const RATE = Math.max(1, Math.min(REQUESTED_RATE, Math.floor((POSTBACKS * 1_000) / MIN_STREAM_MS)));
const STREAM_MS = (POSTBACKS / RATE) * 1_000;
const DEADLINE_MS = QUICK ? 178_000 : 1_200_000;

if (![POSTBACKS, REQUESTED_RATE, KILLS, SEED].every((v) => Number.isInteger(v) && v >= 0) || POSTBACKS < 100 || REQUESTED_RATE < 1) {
  console.error('usage: pnpm chaos [--quick] [--postbacks N ≥ 100] [--rate N ≥ 1 per second] [--kills N] [--seed N] [--keep-logs]');
  process.exit(2);
}

const started = Date.now();
const say = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const n = (v: number) => v.toLocaleString('en-US');

interface Window {
  kind: string;
  /** The fault began (the Redis process had exited; the proxy refused connections). */
  downAt: number;
  /** Redis started again / the proxy accepted again. */
  upAt: number;
  /** Redis answered PING again (its AOF loaded). */
  readyAt: number;
}

async function main(): Promise<number> {
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  const random = seeded(SEED);
  const workersRandom = seeded(SEED + 1);
  console.log(machineNote());
  console.log(
    `chaos: ${n(POSTBACKS)} postbacks at ${RATE}/s (about ${seconds(STREAM_MS)}), ${KILLS} kill -9s, Redis SHUTDOWN and kill -9 (${seconds(REDIS_DOWN_MS)} down each), ` +
      `Postgres cut for ${seconds(SHORT_OUTAGE_MS)} and ${seconds(LONG_OUTAGE_MS)}; DELIVERY_RETRY_SCHEDULE=${RETRY_SCHEDULE}; seed ${SEED}`,
  );
  if (RATE < REQUESTED_RATE)
    console.log(`chaos: ${RATE}/s instead of ${REQUESTED_RATE}/s, so that the stream lasts the ${seconds(MIN_STREAM_MS)} its faults need`);

  await ensureDatabase(TEST_DATABASE_URL);
  const db = await createTestDatabase();
  const prefix = `chaos-${randomSuffix()}`;
  const redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trackway-chaos-redis-'));
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trackway-chaos-logs-'));
  const redis = await createOwnRedis(redisDir);
  const services: Supervised[] = [];
  const receivers: Array<ChaosReceiver & { endpointId: string }> = [];
  let partnerReceiver: PartnerReceiver | undefined;
  const unexpected: UnexpectedExit[] = [];
  let proxy: TcpProxy | undefined;
  // Service logs are kept after a run with violations (or --keep-logs), for the investigation.
  let keepLogs = args['keep-logs'];
  const own = createProducerConnection(redis.url);
  own.on('error', () => undefined);
  const queues = createQueues(own, prefix, ignoreErrors);
  const cleanup = once(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await Promise.all(receivers.map((r) => r.close()));
    await partnerReceiver?.close();
    await Promise.all(Object.values(queues).map((q) => q.close().catch(() => undefined)));
    own.disconnect();
    await proxy?.stop().catch(() => undefined);
    await redis.kill();
    fs.rmSync(redisDir, { recursive: true, force: true });
    await db.drop().catch((error: unknown) => console.error(`schema ${db.schema} not dropped: ${(error as Error).message}`));
    if (keepLogs) console.log(`service logs kept in ${logDir}`);
    else fs.rmSync(logDir, { recursive: true, force: true });
  });
  cleanupOnInterrupt(cleanup);
  // The backstop: a run that hangs fails, and still cleans up.
  const deadline = setTimeout(() => {
    console.error(`chaos: no result within ${seconds(DEADLINE_MS)}; cleaning up`);
    void cleanup().finally(() => process.exit(1));
  }, DEADLINE_MS);
  deadline.unref();

  try {
    await redis.start();
    proxy = await startTcpProxy(Number(new URL(TEST_DATABASE_URL).port || 5432));
    const pg = proxy;
    const proxiedUrl = new URL(db.url);
    proxiedUrl.port = String(pg.port);
    const env = stackEnv({ db: { url: proxiedUrl.toString() }, prefix } as Stack, {
      REDIS_URL: redis.url,
      DELIVERY_RETRY_SCHEDULE: RETRY_SCHEDULE,
      // A killed worker's jobs go back within ~15 s instead of a minute; still far above a Redis
      // outage (3 s), so no live worker loses its lock meanwhile.
      WORKER_LOCK_DURATION: '10s',
      WORKER_STALLED_INTERVAL: '5s',
      // A breaker opened by the failing receiver (5 × 500 in a row, rare) pauses it for 5 s, not 30.
      DELIVERY_BREAKER_COOLDOWN: '5s',
    });
    const onExit = (exit: UnexpectedExit) => {
      unexpected.push(exit);
      say(`UNEXPECTED EXIT: ${exit.name} (pid ${exit.pid}) exited with ${exit.code}; started again\n${exit.tail}`);
    };
    const ingest = new Supervised('ingest', 'ingest', env, logDir, onExit);
    const api = new Supervised('api', 'api', env, logDir, onExit);
    const workers = ['attribution', 'attribution', 'delivery', 'delivery'].map(
      (s, i) => new Supervised(`${s}-${(i % 2) + 1}`, s as 'attribution' | 'delivery', env, logDir, onExit),
    );
    services.push(ingest, api, ...workers);
    await Promise.all(services.map((s) => s.start()));
    say(
      `services running (pids ${services.map((s) => `${s.name} ${s.pid}`).join(', ')}); Redis ${redis.url} (AOF in ${redisDir}); Postgres through 127.0.0.1:${pg.port}; schema ${db.schema}; prefix ${prefix}`,
    );

    // Fixtures written directly, as the tests do; the endpoints through the API (their secrets are sealed there).
    const fixtures = [await createFixture(db.prisma), await createFixture(db.prisma)];
    const senders = createSenderIndex(() => workers.filter((w) => w.service === 'delivery').map((w) => w.pid));
    for (const [name, failRate] of [
      ['receiver-a', 0],
      ['receiver-b (fails 10 %)', 0.1],
    ] as const) {
      const receiver = await startChaosReceiver(name, { failRate, maxFailuresPerId: 2, random: seeded(SEED + 2 + receivers.length), sender: senders.lookup });
      const res = await fetch(`http://127.0.0.1:${api.port()}/v1/webhook-endpoints`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await signAdminToken(STACK_SECRET)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: receiver.url, event_types: ['*'], description: name }),
      });
      if (res.status !== 201) throw new Error(`creating the endpoint for ${name}: ${res.status} ${await res.text()}`);
      const endpoint = (await res.json()) as { id: string; secret: string };
      receiver.secret = endpoint.secret;
      receivers.push(Object.assign(receiver, { endpointId: endpoint.id }));
    }
    // The first fixture's affiliate runs its own tracker: a partner postback of its approvals and
    // reversals (failing 5 % of requests), through the same delivery engine.
    partnerReceiver = await startPartnerReceiver('partner (fails 5 %)', { failRate: 0.05, maxFailuresPerId: 2, random: seeded(SEED + 9) });
    const partnerRes = await fetch(`http://127.0.0.1:${api.port()}/v1/partner-postbacks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await signAdminToken(STACK_SECRET)}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        affiliate_id: fixtures[0].affiliateId,
        url: `${partnerReceiver.url}?conv={conversion_id}&type={event_type}&sub={sub1}&payout={payout}`,
        event_types: PARTNER_TYPES,
      }),
    });
    if (partnerRes.status !== 201) throw new Error(`creating the partner postback: ${partnerRes.status} ${await partnerRes.text()}`);
    const partner: ChaosPartner = {
      affiliateId: fixtures[0].affiliateId,
      endpointId: ((await partnerRes.json()) as { id: string }).id,
      receiver: partnerReceiver,
    };

    const clickIds = createClickIdCodec(STACK_SECRET);
    const plan = planPostbacks(POSTBACKS, fixtures.length, random, (a) =>
      clickIds.issue({
        offerId: fixtures[a].offerId,
        affiliateId: fixtures[a].affiliateId,
        clickedAt: new Date(Date.now() - (60 + Math.floor(random() * 3_600)) * 1_000),
      }),
    );
    const kinds = { new: 0, duplicate: 0, status_change: 0 };
    for (const p of plan) kinds[p.kind] += 1;

    // The faults, in stream time; never two outages at once.
    const windows: Window[] = [];
    const sentinels: string[] = [];
    let redisDown = false;
    let redisBackAt = 0;
    const streamStart = Date.now();
    const at = (share: number) => sleep(Math.max(0, streamStart + share * STREAM_MS - Date.now()));
    const redisFault = async (kind: 'SHUTDOWN' | 'kill -9') => {
      // An acknowledged write just before the fault: the AOF must bring it back.
      const sentinel = `${kind}@${Date.now()}`;
      const written = await own.set(`chaos:sentinel:${kind}`, sentinel).then(
        () => true,
        () => false,
      );
      redisDown = true;
      say(`Redis: ${kind}`);
      await (kind === 'SHUTDOWN' ? redis.shutdown() : redis.kill());
      const downAt = Date.now();
      await sleep(REDIS_DOWN_MS);
      const upAt = Date.now();
      await redis.start();
      const readyAt = Date.now();
      redisDown = false;
      redisBackAt = readyAt;
      windows.push({ kind: `Redis ${kind}`, downAt, upAt, readyAt });
      await whenReady(own, 10_000);
      const back = await own.get(`chaos:sentinel:${kind}`).catch(() => null);
      if (written && back !== sentinel)
        sentinels.push(`the write acknowledged just before Redis ${kind} is ${back === null ? 'gone' : `"${back}"`} after its restart`);
      say(`Redis: back after ${kind} (down ${seconds(upAt - downAt)}, AOF loaded and answering ${seconds(readyAt - upAt)} later)`);
    };
    const postgresFault = async (ms: number) => {
      await pg.stop();
      const downAt = Date.now();
      say(`Postgres: unreachable through the proxy for ${seconds(ms)}`);
      await sleep(ms);
      await pg.start();
      windows.push({ kind: 'Postgres', downAt, upAt: Date.now(), readyAt: Date.now() });
      say(`Postgres: reachable again (${seconds(Date.now() - downAt)})`);
    };
    const faults = (async () => {
      await at(0.12);
      await redisFault('SHUTDOWN');
      await at(0.22);
      await postgresFault(SHORT_OUTAGE_MS);
      await at(0.48);
      await redisFault('kill -9');
      await at(0.6);
      await postgresFault(LONG_OUTAGE_MS);
    })();

    // kill -9 of random workers, spread over the stream, each at least once when there are enough.
    const kills: KillRecord[] = [];
    const victims = Array.from({ length: KILLS }, (_, i) => (i < workers.length ? i : Math.floor(workersRandom() * workers.length)));
    for (let i = victims.length - 1; i > 0; i--) {
      const j = Math.floor(workersRandom() * (i + 1));
      [victims[i], victims[j]] = [victims[j], victims[i]];
    }
    const killing = (async () => {
      for (let i = 0; i < victims.length; i++) {
        await at(0.05 + (0.9 * (i + 0.2 + 0.6 * workersRandom())) / victims.length);
        // Not while Redis is down: a worker cannot start then (it would exit, and be started again).
        while (redisDown || Date.now() < redisBackAt + 2_000) await sleep(100);
        const target = workers[victims[i]];
        const pid = target.pid;
        const killed = target.kill();
        kills.push({ at: Date.now(), pid, service: target.service });
        const kill = await killed;
        senders.forget(pid);
        say(`kill -9 ${target.name} (pid ${pid}); pid ${target.pid} running ${kill.readyAt ? `${seconds(kill.readyAt - kill.at)} later` : '(not yet)'}`);
      }
    })();

    const counts = { all: 0, 202: 0, 503: 0, other: 0 };
    const reporter = setInterval(
      () => {
        const logs = receivers.map((r) => `${r.name.split(' ')[0]} ${n(r.log.length)}`).join(', ');
        say(`stream: ${n(counts.all)} answers (202 ${n(counts[202])}, 503 ${n(counts[503])}, other ${counts.other}); webhooks received: ${logs}`);
      },
      QUICK ? 10_000 : 15_000,
    );
    // Clicks beside the postbacks, through ingest (its clicks queue and the attribution workers'
    // click writer live through the same faults): the reports check counts them.
    let streaming = true;
    const clickAnswers = { sent: 0, redirected: 0 };
    const clicking = (async () => {
      for (let i = 0; streaming; i++) {
        const f = fixtures[i % fixtures.length];
        clickAnswers.sent += 1;
        const res = await fetch(`http://127.0.0.1:${ingest.port()}/click?offer_id=${f.offerId}&affiliate_id=${f.affiliateId}&sub1=k${i}&sub2=camp${i % 5}`, {
          redirect: 'manual',
          signal: AbortSignal.timeout(5_000),
        }).catch(() => null);
        if (res?.status === 302) clickAnswers.redirected += 1;
        await res?.body?.cancel();
        await sleep(1_000 / Math.max(1, RATE / 2));
      }
    })();
    const stream = await streamPostbacks(
      {
        origin: `http://127.0.0.1:${ingest.port()}`,
        plan,
        keys: fixtures.map((f) => f.postbackKey),
        rate: RATE,
        maxInFlight: 64,
        maxAttempts: 60,
        random,
        deadline: streamStart + 3 * STREAM_MS + 120_000,
      },
      (answer) => {
        counts.all += 1;
        if (answer.status === 202 || answer.status === 503) counts[answer.status] += 1;
        else counts.other += 1;
      },
    );
    const answers = stream.answers;
    streaming = false;
    await Promise.all([faults, killing, clicking]);
    say(`clicks: ${n(clickAnswers.sent)} sent, ${n(clickAnswers.redirected)} redirected`);
    const last202 = Math.max(...answers.filter((a) => a.status === 202).map((a) => a.answeredAt));
    say(`stream done: every postback answered 202 but ${stream.gaveUp.length}; waiting for quiescence (at most ${seconds(QUIESCENCE_MS)})`);

    // Quiescence: every outcome, event and delivery done, no job left.
    const acceptedIds = [...stream.accepted.values()];
    let quietAt: number | null = null;
    let lastReport = 0;
    const quietDeadline = Date.now() + QUIESCENCE_MS;
    while (Date.now() < quietDeadline) {
      const p = await progress(db.pool, queues, acceptedIds, receivers, partner);
      if (quiescent(p, acceptedIds.length, receivers.length)) {
        quietAt = Date.now();
        break;
      }
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        const work =
          Object.entries(p.queues.work)
            .filter(([, v]) => v > 0)
            .map(([q, v]) => `${q} ${v}`)
            .join(', ') || 'none';
        say(
          `waiting: outcomes ${n(p.outcomes)}/${n(acceptedIds.length)}, events ${n(p.events)} (unpublished ${p.unpublished}), deliveries ${n(p.deliveries)} (pending ${p.pendingDeliveries}), delivered ${p.delivered.join('/')} of ${n(p.events)}, partner ${n(p.partnerDelivered)} of ${n(p.partnerEvents)}; jobs: ${work}`,
        );
      }
      await sleep(1_000);
    }
    clearInterval(reporter);
    say(quietAt ? `quiescent ${seconds(quietAt - last202)} after the last 202` : `NOT quiescent within ${seconds(QUIESCENCE_MS)}`);

    // The checks.
    const { checks, figures } = await finalChecks({
      pool: db.pool,
      queues,
      plan,
      advertiserIds: fixtures.map((f) => f.advertiserId),
      accepted: stream.accepted,
      gaveUp: stream.gaveUp,
      receivers,
      partner,
      kills,
    });
    checks.unshift({
      name: `quiescent within ${seconds(QUIESCENCE_MS)} of the last 202`,
      violations: quietAt ? [] : ['the pipeline did not settle; see the checks below'],
    });
    checks.push(await apiSample(api.port(), db.pool, acceptedIds, random));

    // While Redis was down: 503, never 202.
    const redisWindows = windows.filter((w) => w.kind.startsWith('Redis'));
    const inside = (w: Window) => answers.filter((a) => a.sentAt >= w.downAt && a.answeredAt <= w.upAt);
    const redisViolations = redisWindows.flatMap((w) => {
      const list = inside(w);
      const wrong = list.filter((a) => a.status !== 503);
      return [
        ...(list.length === 0 ? [`no postback was answered while Redis was down (${w.kind}): the check saw nothing`] : []),
        ...wrong.map(
          (a) =>
            `while Redis was down (${w.kind}) ingest answered ${a.status || 'no answer'} to postback seq ${a.seq} (sent ${new Date(a.sentAt).toISOString()})`,
        ),
      ];
    });
    checks.push({ name: 'ingest answered 503, never 202, while Redis was down', violations: redisViolations });
    checks.push({ name: 'Redis restarted from its AOF kept every acknowledged write', violations: sentinels });
    const others = answers.filter((a) => a.status !== 202 && a.status !== 503 && a.status !== 0);
    checks.push({ name: 'ingest answered only 202 or 503', violations: others.map((a) => `seq ${a.seq}: ${a.status} ${a.body ?? ''}`).slice(0, 10) });
    const pgWindows = windows.filter((w) => w.kind.startsWith('Postgres'));
    checks.push({
      name: 'every fault was injected',
      violations: [
        ...(kills.length < KILLS ? [`${kills.length} of ${KILLS} kills made`] : []),
        ...(redisWindows.length < 2 ? [`${redisWindows.length} of 2 Redis restarts made`] : []),
        ...(pgWindows.length < 2 ? [`${pgWindows.length} of 2 Postgres outages made`] : []),
        ...(pgWindows.some((w) => w.upAt - w.downAt > SCHEDULE_MAX_MS) ? [] : ['no Postgres outage outlasted the retry schedule']),
      ],
    });

    // The figures.
    const connectionErrors = answers.filter((a) => a.status === 0).length;
    const during = (list: Window[], a: Answer) => list.some((w) => a.answeredAt >= w.downAt && a.answeredAt <= w.readyAt);
    const fives = answers.filter((a) => a.status === 503);
    const rows: Array<[string, string]> = [
      ['postbacks planned', `${n(POSTBACKS)} (${n(kinds.new)} new, ${n(kinds.duplicate)} duplicates, ${n(kinds.status_change)} status changes), seed ${SEED}`],
      ['requests sent (with re-sends)', `${n(answers.length)} over ${seconds(stream.endedAt - stream.startedAt)} (${RATE}/s planned)`],
      ['answered 202', n(answers.filter((a) => a.status === 202).length)],
      [
        'answered 503',
        `${n(fives.length)} (${n(fives.filter((a) => during(redisWindows, a)).length)} while Redis was down, ${n(fives.filter((a) => during(pgWindows, a)).length)} while Postgres was, ${n(fives.filter((a) => !during(redisWindows, a) && !during(pgWindows, a)).length)} otherwise)`,
      ],
      [
        "503 reasons (ingest's message)",
        Object.entries(countBy(fives, (a) => reasonOf(a.body)))
          .map(([k, v]) => `"${k}" ${n(v)}`)
          .join(', '),
      ],
      ['other answers / connection errors', `${others.length} / ${connectionErrors}`],
      [
        'answers inside Redis outages',
        redisWindows.map((w) => `${w.kind}: ${inside(w).length} (${[...new Set(inside(w).map((a) => a.status))].join(', ') || '-'})`).join('; '),
      ],
      [
        'outcomes of the 202s',
        Object.entries(figures.outcomes)
          .map(([k, v]) => `${k} ${n(v)}`)
          .join(', '),
      ],
      ['postbacks queued despite a non-202', n(figures.queuedDespiteNon202)],
      ['conversions / commissions', `${n(figures.conversions)} / ${n(figures.commissions)}`],
      [
        'outbox events',
        Object.entries(figures.events)
          .map(([k, v]) => `${k} ${n(v)}`)
          .join(', '),
      ],
      [
        'deliveries',
        Object.entries(figures.deliveries)
          .map(([k, v]) => `${k} ${n(v)}`)
          .join(', '),
      ],
      ['attempts logged / lost with a killed sender', `${n(figures.attemptsLogged)} / ${n(figures.attemptsLost)}`],
      ...figures.analyses.map((a, i): [string, string] => [
        `${receivers[i].name}`,
        `${n(a.requests)} requests, ${n(a.answered500)} answered 500, ${n(a.delivered.size)} events delivered; repeats: ${n(a.repeatsAfterFailure)} after a 500, ${n(a.repeatsAfterKill)} after a killed sender, ${a.unexplained.length} unexplained; ${a.untraced} untraced`,
      ]),
      [
        partner.receiver.name,
        `${n(partner.receiver.log.length)} requests, ${n(partner.receiver.log.filter((x) => x.status === 500).length)} answered 500, ${n(new Set(partner.receiver.log.filter((x) => x.status === 200).map((x) => x.key)).size)} events delivered`,
      ],
      [
        'kill -9s',
        `${kills.length}: ${Object.entries(countBy(kills, (k) => k.service))
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      ],
      ['unexpected exits', `${unexpected.length}${unexpected.length ? `: ${unexpected.map((u) => `${u.name} (${u.code})`).join(', ')}` : ''}`],
      [
        'outages',
        windows.map((w) => `${w.kind} ${seconds(w.upAt - w.downAt)}${w.readyAt > w.upAt ? ` (+${seconds(w.readyAt - w.upAt)} to load)` : ''}`).join('; '),
      ],
      ['scheduler ticks failed in outages', `${figures.failedTicks} (the next tick runs again)`],
      ['time to quiescence after the last 202', quietAt ? seconds(quietAt - last202) : `not within ${seconds(QUIESCENCE_MS)}`],
      [
        'this process: event-loop delay',
        `p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)} ms, max ${(loopDelay.max / 1e6).toFixed(0)} ms (receivers, proxy and load share it)`,
      ],
      ['wall time', seconds(Date.now() - started)],
    ];
    console.log('\nchaos figures');
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
    console.log('\nchaos checks');
    for (const c of checks) console.log(`  ${c.violations.length === 0 ? 'ok  ' : 'FAIL'}  ${c.name}`);
    const violations = checks.flatMap((c) => c.violations.map((v) => `${c.name}: ${v}`));
    for (const v of violations) console.log(`VIOLATION ${v}`);
    if (connectionErrors > 0) console.log(`note: ${connectionErrors} postbacks got no answer (connection error) and were sent again`);
    console.log(
      violations.length === 0
        ? `\nchaos: all ${checks.length} checks passed`
        : `\nchaos: ${violations.length} violations in ${checks.filter((c) => c.violations.length).length} of ${checks.length} checks`,
    );
    if (violations.length > 0) {
      keepLogs = true;
      // Everything the checks read, beside the service logs, for the investigation.
      const run = {
        seed: SEED,
        prefix,
        schema: db.schema,
        kills,
        windows,
        unexpected,
        answers,
        receivers: receivers.map((r) => ({ name: r.name, endpointId: r.endpointId, log: r.log })),
        partner: { endpointId: partner.endpointId, log: partner.receiver.log },
      };
      fs.writeFileSync(path.join(logDir, 'run.json'), JSON.stringify(run));
    }
    return violations.length === 0 ? 0 : 1;
  } catch (error) {
    keepLogs = true;
    throw error;
  } finally {
    await cleanup();
  }
}

const countBy = <T>(list: readonly T[], key: (item: T) => string) => {
  const counts: Record<string, number> = {};
  for (const item of list) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
};
const reasonOf = (body: string | undefined) => {
  try {
    return (JSON.parse(body ?? '') as { error: { message: string } }).error.message;
  } catch {
    return body ?? '';
  }
};

/** A sample of the 202s read back as an advertiser would, `GET /v1/postbacks/{id}`, against the table. */
async function apiSample(port: number, pool: import('@trackway/db').PgPool, ids: readonly string[], random: () => number): Promise<Check> {
  const sample = Array.from({ length: Math.min(ids.length, 50) }, () => ids[Math.floor(random() * ids.length)]);
  const rows = new Map(
    (await pool.query<{ id: string; status: string }>('SELECT id, status FROM postbacks WHERE id = ANY($1::varchar[])', [sample])).rows.map((r) => [
      r.id,
      r.status,
    ]),
  );
  const token = await signAdminToken(STACK_SECRET);
  const violations: string[] = [];
  for (const id of sample) {
    const res = await fetch(`http://127.0.0.1:${port}/v1/postbacks/${id}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { status?: string };
    if (res.status !== 200 || body.status !== rows.get(id))
      violations.push(`GET /v1/postbacks/${id}: ${res.status} ${JSON.stringify(body)}, table says ${rows.get(id)}`);
  }
  return { name: `GET /v1/postbacks/{id} agrees with the table (${sample.length} sampled)`, violations };
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
