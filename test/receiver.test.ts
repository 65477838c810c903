// `pnpm run receiver` takes the endpoint's signing secret from TRACKWAY_WEBHOOK_SECRET or a prompt
// (hidden on a terminal, a line of standard input otherwise), so it never has to be in argv where
// `ps` shows it; it verifies what it receives with the published standardwebhooks library.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from '@trackway/testing';
import { Webhook } from 'standardwebhooks';

const ROOT = path.resolve(__dirname, '..');
const SECRET = `whsec_${Buffer.from('a receiver test secret, 32 bytes').toString('base64')}`;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

function receiver(port: number, opts: { env?: Record<string, string>; stdin?: string; terminal?: boolean; args?: string[] }) {
  const command = [process.execPath, '--import', 'tsx', 'scripts/receiver.ts', '--port', String(port), ...(opts.args ?? [])];
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ...opts.env };
  // A terminal: script(1) runs it on a pseudo-terminal fed from our pipe.
  const child = opts.terminal
    ? spawn('script', ['-qfec', command.map((part) => `'${part}'`).join(' '), '/dev/null'], { cwd: ROOT, env })
    : spawn(command[0], command.slice(1), { cwd: ROOT, env });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const send = (text: string) => child.stdin!.write(text);
  if (opts.stdin !== undefined) {
    send(opts.stdin);
    if (!opts.terminal) child.stdin!.end();
  }
  const waitFor = async (text: string) => {
    for (const end = Date.now() + 20_000; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 50))) {
      if (output.includes(text)) return;
    }
    throw new Error(`no "${text}" in:\n${output}`);
  };
  return { output: () => output, exited, waitFor, send };
}

async function deliver(port: number, secret: string) {
  const body = JSON.stringify({ type: 'conversion.created', timestamp: new Date().toISOString(), data: { id: 'cnv_1' } });
  const at = new Date();
  const signature = new Webhook(secret).sign('msg_1', at, body);
  const response = await fetch(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    headers: { 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature },
    body,
  });
  return response.status;
}

it('reads the secret from TRACKWAY_WEBHOOK_SECRET and verifies with it', async () => {
  const port = await freePort();
  const run = receiver(port, { env: { TRACKWAY_WEBHOOK_SECRET: SECRET } });
  await run.waitFor('receiver listening');
  expect(await deliver(port, SECRET)).toBe(200);
  await run.waitFor('verified conversion.created {"id":"cnv_1"}');
  // Signed with another secret: received, reported as not verified.
  expect(await deliver(port, `whsec_${Buffer.from('another secret of thirty-two b!!').toString('base64')}`)).toBe(200);
  await run.waitFor('NOT VERIFIED');
}, 30_000);

it('still takes --secret (which `ps` shows: the README does not use it)', async () => {
  const port = await freePort();
  const run = receiver(port, { args: ['--secret', SECRET], stdin: '' });
  await run.waitFor('receiver listening');
  expect(await deliver(port, SECRET)).toBe(200);
  await run.waitFor('verified conversion.created');
}, 30_000);

it('reads it from standard input when that is not a terminal', async () => {
  const port = await freePort();
  const run = receiver(port, { stdin: `${SECRET}\n` });
  await run.waitFor('receiver listening');
  expect(await deliver(port, SECRET)).toBe(200);
  await run.waitFor('verified conversion.created');
}, 30_000);

it('asks for it on a terminal without echoing it', async () => {
  const port = await freePort();
  const run = receiver(port, { terminal: true });
  await run.waitFor("The endpoint's signing secret (whsec_…): ");
  run.send(`${SECRET}\r`);
  await run.waitFor('receiver listening');
  expect(await deliver(port, SECRET)).toBe(200);
  await run.waitFor('verified conversion.created');
  expect(run.output()).not.toContain(SECRET);
}, 30_000);

it('without a secret, or with something that is not one, exits 2 saying how to give it', async () => {
  const none = receiver(await freePort(), { stdin: '' });
  expect(await none.exited).toBe(2);
  expect(none.output()).toContain('usage: TRACKWAY_WEBHOOK_SECRET=whsec_… pnpm run receiver');
  const wrong = receiver(await freePort(), { env: { TRACKWAY_WEBHOOK_SECRET: 'whsec_!!!' } });
  expect(await wrong.exited).toBe(2);
  expect(wrong.output()).toContain('receiver: that is not a signing secret');
}, 30_000);
