// `pnpm run receiver [--port 4000] [--fail 2] [--status 500]`, the endpoint's signing secret in
// TRACKWAY_WEBHOOK_SECRET or typed at the prompt (hidden; read from standard input when it is not a
// terminal). `--secret whsec_…` still works, but shows the secret to anyone running `ps`.
// A local webhook subscriber for trying Trackway out: verifies every request with the published
// `standardwebhooks` library and prints the event. --fail N answers 500 to the first N
// requests (to watch retries); --status S answers S to every request (to make dead letters).
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { read } from 'read';
import { Webhook } from 'standardwebhooks';

const USAGE = 'usage: TRACKWAY_WEBHOOK_SECRET=whsec_… pnpm run receiver [--port 4000] [--fail N] [--status S] (or type the secret at its prompt)';
const { values } = parseArgs({
  // pnpm passes a literal "--" through: accept both `pnpm run receiver --port …` and `… -- --port …`.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: { secret: { type: 'string' }, port: { type: 'string', default: '4000' }, fail: { type: 'string', default: '0' }, status: { type: 'string' } },
});

async function signingSecret(): Promise<string> {
  const given = values.secret ?? process.env.TRACKWAY_WEBHOOK_SECRET;
  if (given) return given.trim();
  if (process.stdin.isTTY) return (await read({ prompt: "The endpoint's signing secret (whsec_…): ", silent: true, replace: '*' })).trim();
  // Piped: the first line of standard input.
  for await (const line of createInterface({ input: process.stdin })) return line.trim();
  return '';
}

function verifier(secret: string): Webhook {
  if (!secret) {
    console.error(USAGE);
    process.exit(2);
  }
  try {
    return new Webhook(secret);
  } catch (error) {
    console.error(
      `receiver: that is not a signing secret (${(error as Error).message}); it looks like whsec_… and is shown once, when the endpoint is created`,
    );
    process.exit(2);
  }
}

async function main() {
  const hook = verifier(await signingSecret().catch(() => ''));
  let received = 0;

  createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received += 1;
      const body = Buffer.concat(chunks).toString('utf8');
      const id = req.headers['webhook-id'];
      let verdict: string;
      try {
        const event = hook.verify(body, req.headers as Record<string, string>) as { type: string; data: unknown };
        verdict = `verified ${event.type} ${JSON.stringify(event.data)}`;
      } catch (error) {
        verdict = `NOT VERIFIED (${(error as Error).message})`;
      }
      const status = values.status ? Number(values.status) : received <= Number(values.fail) ? 500 : 200;
      console.log(`#${received} webhook-id=${id} → ${status}  ${verdict}`);
      res.writeHead(status).end(status < 300 ? 'ok' : 'failing on purpose');
    });
  }).listen(Number(values.port), '127.0.0.1', () => console.log(`receiver listening on http://127.0.0.1:${values.port}/`));
}

main();
