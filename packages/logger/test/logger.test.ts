import { Writable } from 'node:stream';
import { createLogger } from '../src';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { lines, logger: createLogger({ service: 'test', level: 'debug', destination }) };
}

describe('logger', () => {
  it('writes JSON lines with the service, an ISO time and the level name', () => {
    const { lines, logger } = capture();
    logger.info({ postback_id: 'pb_1' }, 'hello');
    expect(lines[0]).toMatchObject({ level: 'info', service: 'test', postback_id: 'pb_1', msg: 'hello' });
    expect(new Date(lines[0].time as string).toISOString()).toBe(lines[0].time);
  });

  it('redacts keys, secrets, signatures, tokens, cookies and authorization headers', () => {
    const { lines, logger } = capture();
    logger.info(
      {
        key: 'pk_secret',
        postback_key: 'pk_secret2',
        secret: 'whsec_abc',
        endpoint: { secret: 'whsec_def', signature: 'v1,xyz' },
        token: 'eyJ.jwt',
        req: { headers: { authorization: 'Bearer eyJ.jwt', cookie: 'trackway_admin=abc', 'x-postback-key': 'pk_header' }, query: { key: 'pk_query' } },
        headers: { authorization: 'Bearer x', 'webhook-signature': 'v1,abc' },
        res: { headers: { 'set-cookie': 'trackway_admin=abc' } },
        kept: 'visible',
      },
      'request',
    );
    const text = JSON.stringify(lines[0]);
    for (const secret of [
      'pk_secret',
      'pk_secret2',
      'whsec_abc',
      'whsec_def',
      'v1,xyz',
      'eyJ.jwt',
      'trackway_admin=abc',
      'pk_header',
      'pk_query',
      'Bearer x',
      'v1,abc',
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('[redacted]');
    expect(lines[0].kept).toBe('visible');
  });

  it('respects the level', () => {
    const destination = new Writable({ write: (_c, _e, done) => done() });
    const logger = createLogger({ service: 'test', level: 'warn', destination });
    expect(logger.isLevelEnabled('info')).toBe(false);
    expect(logger.isLevelEnabled('warn')).toBe(true);
  });
});
