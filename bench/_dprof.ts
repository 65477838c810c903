import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createEvent } from '@trackway/domain';
import { inTransaction } from '@trackway/db';
import { insertEvents, publishEvents } from '@trackway/outbox';
import { chunk } from '@trackway/queues';
import { startReceiver } from '@trackway/testing';
import request from 'supertest';
import { stackEnv } from '../test/support/processes';
import { startStack } from '../test/support/stack';
import { ROOT, sleep } from './lib';
async function main() {
  const stack = await startStack();
  const receiver = await startReceiver();
  await request(stack.api).post('/v1/webhook-endpoints').set(stack.auth).send({ url: receiver.url, event_types: ['*'] }).expect(201);
  const out = fs.openSync('/tmp/dprof-delivery.log', 'w');
  const child = spawn(process.execPath, [...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof6'] : []), '--import', 'tsx', 'services/delivery/src/main.ts'], { cwd: ROOT, env: { PATH: process.env.PATH, NODE_ENV: 'test', LOG_LEVEL: process.env.LL ?? 'info', ...stackEnv(stack) }, stdio: ['ignore', out, out] });
  await sleep(6000);
  const N = 10000;
  const events = Array.from({ length: N }, (_, i) => createEvent('conversion.approved', { conversion: { id: `cnv_${i}`, amount: '49.90' }, previous_status: null }));
  const cpuOf = () => { const f = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
  const tracer = process.env.STRACE ? spawn('strace', ['-c', '-f', '-p', String(child.pid), '-o', '/tmp/strace.txt'], { stdio: 'ignore' }) : undefined;
  if (tracer) await sleep(1000);
  const c0 = cpuOf();
  const t0 = Date.now();
  for (const part of chunk(events, 500)) { await inTransaction(stack.db.pool, (c) => insertEvents(c, part)); await publishEvents(stack.db.pool, stack.queues.events, part); }
  while (receiver.requests.length < N) await sleep(50);
  const ms = Date.now() - t0;
  const cpu = cpuOf() - c0;
  console.log(`${N} in ${ms} ms = ${(N / ms * 1000).toFixed(0)}/s; delivery process CPU ${cpu} ms = ${(cpu / N * 1000).toFixed(0)} µs per delivery (${(cpu / ms).toFixed(2)} core)`);
  if (tracer) { tracer.kill('SIGINT'); await new Promise((r) => tracer.once('exit', r)); }
  child.kill('SIGINT'); await new Promise((r) => child.once('exit', r));
  await receiver.close(); await stack.close(); process.exit(0);
}
main();
