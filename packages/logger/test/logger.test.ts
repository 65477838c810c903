import { Writable } from 'node:stream';
import { REPEAT_INTERVAL_MS, createLogger, outageLog } from '../src';

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

describe('outageLog', () => {
  beforeEach(() => jest.useFakeTimers({ now: new Date('2026-12-01T00:00:00Z') }));
  afterEach(() => jest.useRealTimers());
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });

  it('tells an outage in one line per interval whatever the number of sources and retries, and its end in one', () => {
    const { lines, logger } = capture();
    const outage = outageLog(logger, { dependency: 'redis' });
    // A minute of every connection, queue and worker failing ten times a second.
    for (let tick = 0; tick < 600; tick++) {
      for (const source of ['producer connection', 'queue error (postbacks)', 'worker error (postbacks)']) outage.report(source, refused);
      jest.advanceTimersByTime(100);
    }
    expect(lines.map((l) => l.msg)).toEqual(['redis unavailable', ...Array.from({ length: 60_000 / REPEAT_INTERVAL_MS }, () => 'redis still unavailable')]);
    expect(lines[0]).toMatchObject({
      level: 'error',
      dependency: 'redis',
      source: 'producer connection',
      err: { code: 'ECONNREFUSED', message: refused.message },
    });
    expect(lines[1]).toMatchObject({
      level: 'error',
      down_ms: REPEAT_INTERVAL_MS,
      errors: 3 * (REPEAT_INTERVAL_MS / 100) - 1,
      sources: ['producer connection', 'queue error (postbacks)', 'worker error (postbacks)'],
    });
    outage.report('producer connection', refused);
    outage.recovered();
    outage.recovered();
    expect(lines.slice(7)).toEqual([expect.objectContaining({ level: 'info', msg: 'redis available again', dependency: 'redis', errors: 1 })]);
    expect(outage.down).toBe(false);
    // Nothing is left armed: no line without a new error.
    jest.advanceTimersByTime(5 * REPEAT_INTERVAL_MS);
    expect(lines).toHaveLength(8);
  });

  it('ends an outage no event announced once an interval passes without errors and the dependency is up', () => {
    const { lines, logger } = capture();
    let up = false;
    const outage = outageLog(logger, { dependency: 'redis', isUp: () => up });
    outage.report('worker connection', refused);
    jest.advanceTimersByTime(3 * REPEAT_INTERVAL_MS);
    expect(lines.map((l) => l.msg)).toEqual(['redis unavailable']);
    up = true;
    jest.advanceTimersByTime(REPEAT_INTERVAL_MS);
    expect(lines.map((l) => l.msg)).toEqual(['redis unavailable', 'redis available again']);
    expect(lines[1].down_ms).toBe(4 * REPEAT_INTERVAL_MS);
  });
});
