// `pnpm run receiver --secret whsec_… [--port 4000] [--fail 2] [--status 500]`
// A local webhook subscriber for trying Trackway out: verifies every request with the published
// `standardwebhooks` library and prints the event. --fail N answers 500 to the first N
// requests (to watch retries); --status S answers S to every request (to make dead letters).
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Webhook } from 'standardwebhooks';

const { values } = parseArgs({
  // pnpm passes a literal "--" through: accept both `pnpm run receiver --secret …` and `… -- --secret …`.
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: { secret: { type: 'string' }, port: { type: 'string', default: '4000' }, fail: { type: 'string', default: '0' }, status: { type: 'string' } },
});
if (!values.secret) {
  console.error('usage: pnpm run receiver --secret whsec_… [--port 4000] [--fail N] [--status S]');
  process.exit(2);
}
const hook = new Webhook(values.secret);
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
