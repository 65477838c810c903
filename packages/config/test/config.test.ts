import fc from 'fast-check';
import {
  type Config,
  ConfigError,
  type LoadOptions,
  SECRET_NAMES,
  SERVICE_NAMES,
  publicIngestUrl,
  type SecretName,
  type ServiceName,
  RESERVED_FILES,
  commonEnvSchema,
  decodeKey,
  defaultMaxInFlight,
  envSchema,
  generateSecret,
  loadConfig,
  loadServiceConfig,
  openFileLimit,
  parseDuration,
  serviceEnvSchemas,
} from '../src';

// Every test passes an explicit `env`: process.env is never read or mutated here.
type Env = Record<string, string | undefined>;

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const HEX_KEY = 'ab'.repeat(32);
const B64_KEY = Buffer.alloc(32, 7).toString('base64');
const GOOD_SECRETS = {
  ADMIN_JWT_SECRET: 'a'.repeat(32),
  CLICK_SECRET: 'c'.repeat(40),
  SECRETS_KEY: HEX_KEY,
};

function configError(env: Env, options: Omit<LoadOptions, 'env'> = {}): ConfigError {
  try {
    loadConfig({ ...options, env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected loadConfig to throw a ConfigError');
}

const problemNames = (error: ConfigError) => error.problems.map((p) => p.slice(0, p.indexOf(':')));

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['250', 250],
    ['007', 7],
    ['50ms', 50],
    ['500ms', 500],
    ['1s', SECOND],
    ['5s', 5 * SECOND],
    ['5 s', 5 * SECOND],
    ['5sec', 5 * SECOND],
    ['30min', 30 * MINUTE],
    ['1m', MINUTE],
    ['2h', 2 * HOUR],
    ['1.5h', 1.5 * HOUR],
    ['5d', 5 * DAY],
    ['1w', 7 * DAY],
    ['  5s  ', 5 * SECOND],
    ['\t250 ', 250],
    ['.5s', 500],
  ])('%p -> %p ms', (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  it.each(['soon', 'abc', '-5s', '-1', '5 parsecs', '1e3', '5s5', 's', 'ms', '5,000', 'Infinity', 'NaN', `${'9'.repeat(101)}s`])(
    '%p is not a duration',
    (input) => {
      expect(parseDuration(input)).toBeUndefined();
    },
  );

  it('parses any plain non-negative integer as milliseconds (property)', () => {
    fc.assert(
      fc.property(fc.nat(), (n) => {
        expect(parseDuration(String(n))).toBe(n);
        expect(parseDuration(`${n}ms`)).toBe(n);
        expect(parseDuration(`${n}s`)).toBe(n * SECOND);
      }),
    );
  });
});

describe('loadConfig: defaults', () => {
  const config = loadConfig({ env: {} });

  it.each([
    ['NODE_ENV', 'development'],
    ['LOG_LEVEL', 'info'],
    ['DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/trackway'],
    ['REDIS_URL', 'redis://127.0.0.1:6379'],
    ['QUEUE_PREFIX', 'trackway'],
    ['INGEST_PORT', 3000],
    ['API_PORT', 3001],
    ['HEALTH_PORT', 9464],
    ['SHUTDOWN_TIMEOUT_MS', 25_000],
    ['OUTBOX_RELAY_INTERVAL', 5 * SECOND],
    ['DELIVERY_TIMEOUT_MS', 15_000],
    ['DELIVERY_RETRY_SCHEDULE', [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]],
    ['DELIVERY_BREAKER_THRESHOLD', 5],
    ['DELIVERY_BREAKER_COOLDOWN', 30_000],
    ['DELIVERY_DISABLE_AFTER', 5 * DAY],
    ['DELIVERY_LOG_RETENTION_DAYS', 30],
    ['WEBHOOK_ALLOW_HTTP', false],
    ['WEBHOOK_ALLOWED_CIDRS', []],
  ] as Array<[keyof Config, unknown]>)('%s defaults to %p', (name, expected) => {
    expect(config[name]).toEqual(expected);
  });

  it('the default retry schedule is 0, 5s, 5min, 30min, 2h, 5h, 10h, 10h', () => {
    expect(config.DELIVERY_RETRY_SCHEDULE).toEqual([0, 5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR]);
  });

  it('does not read process.env when env is given (jest sets NODE_ENV=test there)', () => {
    expect(process.env.NODE_ENV).toBe('test');
    expect(config.NODE_ENV).toBe('development');
  });

  it('has no secrets unless required', () => {
    for (const name of SECRET_NAMES) expect(config[name]).toBeUndefined();
  });

  it('treats empty strings and undefined as unset', () => {
    const blank = loadConfig({ env: { INGEST_PORT: '', REDIS_URL: '', DELIVERY_RETRY_SCHEDULE: '', NODE_ENV: undefined, SECRETS_KEY: '' } });
    expect(blank.INGEST_PORT).toBe(3000);
    expect(blank.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(blank.DELIVERY_RETRY_SCHEDULE).toEqual(config.DELIVERY_RETRY_SCHEDULE);
    expect(blank.NODE_ENV).toBe('development');
    expect(blank.SECRETS_KEY).toBeUndefined();
  });

  it('drops variables it does not know', () => {
    const withExtras = loadConfig({ env: { PATH: '/usr/bin', HOME: '/root', TRACKWAY_UNKNOWN: 'x' } });
    expect(withExtras).not.toHaveProperty('PATH');
    expect(withExtras).not.toHaveProperty('TRACKWAY_UNKNOWN');
  });
});

describe('loadConfig: values', () => {
  it.each([
    ['0,50ms,100ms', [0, 50, 100]],
    ['0, 50ms , 100ms', [0, 50, 100]],
    ['1s', [1_000]],
    ['250,1s,1m,1h,1d', [250, SECOND, MINUTE, HOUR, DAY]],
    ['0', [0]],
  ])('DELIVERY_RETRY_SCHEDULE=%p -> %p', (value, expected) => {
    expect(loadConfig({ env: { DELIVERY_RETRY_SCHEDULE: value } }).DELIVERY_RETRY_SCHEDULE).toEqual(expected);
  });

  it.each([
    ['DELIVERY_BREAKER_COOLDOWN', '1min', MINUTE],
    ['DELIVERY_BREAKER_COOLDOWN', '500', 500],
    ['DELIVERY_DISABLE_AFTER', '2d', 2 * DAY],
    ['OUTBOX_RELAY_INTERVAL', '250ms', 250],
  ] as const)('%s=%p -> %i ms', (name, value, expected) => {
    expect(loadConfig({ env: { [name]: value } })[name]).toBe(expected);
  });

  it.each([
    ['INGEST_PORT', '8080', 8080],
    ['INGEST_PORT', '0', 0],
    ['API_PORT', '65535', 65535],
    ['SHUTDOWN_TIMEOUT_MS', '100', 100],
    ['DELIVERY_TIMEOUT_MS', '1', 1],
    ['DELIVERY_BREAKER_THRESHOLD', '10', 10],
    ['DELIVERY_LOG_RETENTION_DAYS', '7', 7],
    ['ATTRIBUTION_CONCURRENCY', '1000', 1000],
  ] as const)('%s=%p -> %i', (name, value, expected) => {
    expect(loadConfig({ env: { [name]: value } })[name]).toBe(expected);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('WEBHOOK_ALLOW_HTTP=%p -> %p', (value, expected) => {
    expect(loadConfig({ env: { WEBHOOK_ALLOW_HTTP: value } }).WEBHOOK_ALLOW_HTTP).toBe(expected);
  });

  it.each([
    ['127.0.0.0/8', ['127.0.0.0/8']],
    ['10.0.0.0/8, 192.168.0.0/16 ,::1/128', ['10.0.0.0/8', '192.168.0.0/16', '::1/128']],
    ['10.0.0.0/8,,', ['10.0.0.0/8']],
  ])('WEBHOOK_ALLOWED_CIDRS=%p -> %p', (value, expected) => {
    expect(loadConfig({ env: { WEBHOOK_ALLOWED_CIDRS: value } }).WEBHOOK_ALLOWED_CIDRS).toEqual(expected);
  });

  it.each(['postgres://u:p@db:5432/x', 'postgresql://db/x'])('DATABASE_URL %p is accepted', (value) => {
    expect(loadConfig({ env: { DATABASE_URL: value } }).DATABASE_URL).toBe(value);
  });

  it.each(['redis://cache:6379/2', 'rediss://user:pass@cache:6380'])('REDIS_URL %p is accepted', (value) => {
    expect(loadConfig({ env: { REDIS_URL: value } }).REDIS_URL).toBe(value);
  });

  describe('QUEUE_PREFIX', () => {
    it.each(['{trackway}', 'trackway', 'tw-1.a_b', '{tw}.prod', 'A9'])('accepts %p', (value) => {
      expect(loadConfig({ env: { QUEUE_PREFIX: value } }).QUEUE_PREFIX).toBe(value);
    });

    it.each(['track way', 'a:b', 'tw/1', 'tw*', 'préfixe'])('rejects %p', (value) => {
      expect(problemNames(configError({ QUEUE_PREFIX: value }))).toEqual(['QUEUE_PREFIX']);
    });
  });

  describe('DELIVERY_QUEUE_SHARDS', () => {
    it('is 1 by default: the one deliveries queue', () => {
      expect(loadServiceConfig('delivery', { env: {} }).DELIVERY_QUEUE_SHARDS).toBe(1);
    });

    it.each([
      ['1', 1],
      ['4', 4],
      ['64', 64],
    ])('accepts %p', (value, parsed) => {
      expect(loadServiceConfig('delivery', { env: { DELIVERY_QUEUE_SHARDS: value } }).DELIVERY_QUEUE_SHARDS).toBe(parsed);
      expect(loadServiceConfig('api', { env: { DELIVERY_QUEUE_SHARDS: value } }).DELIVERY_QUEUE_SHARDS).toBe(parsed);
    });

    it.each(['0', '65', '2.5', '-1', 'four', ' 4'])('rejects %p, in delivery and api (which must agree on it) only', (value) => {
      expect(problemNames(configError({ DELIVERY_QUEUE_SHARDS: value }))).toEqual(['DELIVERY_QUEUE_SHARDS']);
      for (const service of ['delivery', 'api'] as const)
        expect(() => loadServiceConfig(service, { env: { DELIVERY_QUEUE_SHARDS: value } })).toThrow(/DELIVERY_QUEUE_SHARDS/);
      for (const service of ['ingest', 'attribution'] as const)
        expect(() => loadServiceConfig(service, { env: { DELIVERY_QUEUE_SHARDS: value } })).not.toThrow();
    });
  });
});

describe('loadConfig: SECRETS_KEY', () => {
  it.each([
    ['64 lowercase hex characters', HEX_KEY],
    ['64 uppercase hex characters', 'AB'.repeat(32)],
    ['64 mixed-case hex characters', '0123456789abcdefABCDEF'.padEnd(64, '0')],
    ['base64 of 32 bytes', B64_KEY],
    ['base64 of 32 random bytes', generateSecret('SECRETS_KEY')],
  ])('accepts %s', (_label, value) => {
    expect(loadConfig({ env: { SECRETS_KEY: value } }).SECRETS_KEY).toBe(value);
    expect(decodeKey(value)).toHaveLength(32);
  });

  it('decodes hex as hex, not as base64', () => {
    expect(decodeKey(HEX_KEY)).toEqual(Buffer.alloc(32, 0xab));
    expect(decodeKey(B64_KEY)).toEqual(Buffer.alloc(32, 7));
  });

  it.each([
    ['63 hex characters', 'a'.repeat(63)],
    ['65 hex characters', 'a'.repeat(65)],
    ['62 hex characters', 'ab'.repeat(31)],
    ['64 non-hex characters', 'g'.repeat(64)],
    ['base64 of 31 bytes', Buffer.alloc(31, 1).toString('base64')],
    ['base64 of 33 bytes', Buffer.alloc(33, 1).toString('base64')],
    ['base64 of 16 bytes', Buffer.alloc(16, 1).toString('base64')],
    ['a passphrase', 'correct horse battery staple'],
    ['a single character', 'x'],
  ])('rejects %s', (_label, value) => {
    const error = configError({ SECRETS_KEY: value });
    expect(error.problems).toEqual(['SECRETS_KEY: must be 32 bytes, as 64 hex characters or base64']);
  });
});

describe('loadConfig: errors name every bad variable at once', () => {
  it('REDIS_URL, INGEST_PORT, DELIVERY_RETRY_SCHEDULE and WEBHOOK_ALLOWED_CIDRS together', () => {
    const error = configError({ REDIS_URL: 'http://cache:6379', INGEST_PORT: 'abc', DELIVERY_RETRY_SCHEDULE: 'soon', WEBHOOK_ALLOWED_CIDRS: 'nope' });
    expect(error.name).toBe('ConfigError');
    expect(error).toBeInstanceOf(Error);
    expect(problemNames(error).sort()).toEqual(['DELIVERY_RETRY_SCHEDULE', 'INGEST_PORT', 'REDIS_URL', 'WEBHOOK_ALLOWED_CIDRS']);
    for (const name of ['REDIS_URL', 'INGEST_PORT', 'DELIVERY_RETRY_SCHEDULE', 'WEBHOOK_ALLOWED_CIDRS']) expect(error.message).toContain(`  - ${name}: `);
    expect(error.message.startsWith('Invalid environment:\n')).toBe(true);
    expect(error.problems).toEqual(
      expect.arrayContaining([
        'REDIS_URL: must be a redis:// URL (or, with REDIS_CLUSTER, a comma-separated list)',
        'DELIVERY_RETRY_SCHEDULE: "soon" is not a duration',
        'WEBHOOK_ALLOWED_CIDRS: "nope" is not a CIDR such as 127.0.0.0/8',
      ]),
    );
  });

  it('every kind of bad variable, plus the missing production secrets, in one error', () => {
    const error = configError(
      {
        NODE_ENV: 'production',
        LOG_LEVEL: 'loud',
        DATABASE_URL: 'mysql://db/x',
        QUEUE_PREFIX: 'a b',
        API_PORT: '65536',
        HEALTH_PORT: '-1',
        PUBLIC_INGEST_URL: 'not a url',
        ADMIN_JWKS_URL: 'nope',
        CLICK_SECRET: 'short',
        SHUTDOWN_TIMEOUT_MS: '99',
        DELIVERY_TIMEOUT_MS: '1.5',
        DELIVERY_BREAKER_THRESHOLD: '0',
        DELIVERY_BREAKER_COOLDOWN: 'later',
        WEBHOOK_ALLOW_HTTP: 'TRUE',
      },
      { require: ['ADMIN_JWT_SECRET', 'CLICK_SECRET', 'SECRETS_KEY'] },
    );
    expect(problemNames(error).sort()).toEqual(
      [
        'API_PORT',
        'ADMIN_JWKS_URL',
        'ADMIN_JWT_AUDIENCE',
        'CLICK_SECRET',
        'DATABASE_URL',
        'DELIVERY_BREAKER_COOLDOWN',
        'DELIVERY_BREAKER_THRESHOLD',
        'DELIVERY_TIMEOUT_MS',
        'HEALTH_PORT',
        'LOG_LEVEL',
        'PUBLIC_INGEST_URL',
        'QUEUE_PREFIX',
        'SECRETS_KEY', // missing: required in production
        'SHUTDOWN_TIMEOUT_MS',
        'WEBHOOK_ALLOW_HTTP',
      ].sort(),
    );
    // ADMIN_JWKS_URL is set (if badly), so ADMIN_JWT_SECRET is not also demanded.
    expect(error.problems).toContain('SECRETS_KEY: required when NODE_ENV=production');
    expect(error.problems).toContain('CLICK_SECRET: must be at least 32 characters');
    expect(error.problems.join('\n')).not.toContain('ADMIN_JWT_SECRET');
  });

  it.each([
    ['INGEST_PORT', 'abc'],
    ['INGEST_PORT', '65536'],
    ['INGEST_PORT', '-1'],
    ['INGEST_PORT', '80.5'],
    ['API_PORT', '3001x'],
    ['NODE_ENV', 'staging'],
    ['NODE_ENV', 'Production'],
    ['DATABASE_URL', 'postgres:/db'],
    ['REDIS_URL', '127.0.0.1:6379'],
    ['DELIVERY_RETRY_SCHEDULE', '0,5s,later'],
    ['DELIVERY_RETRY_SCHEDULE', '0,-5s'],
    ['DELIVERY_DISABLE_AFTER', 'forever'],
    ['WEBHOOK_ALLOWED_CIDRS', '10.0.0.0/8,nope'],
    ['WEBHOOK_ALLOWED_CIDRS', '10.0.0.0'],
    ['WEBHOOK_ALLOW_HTTP', 'on'],
    ['ATTRIBUTION_CONCURRENCY', '0'],
    ['DELIVERY_LOG_RETENTION_DAYS', '0'],
  ])('%s=%p alone is named', (name, value) => {
    expect(problemNames(configError({ [name]: value }))).toEqual([name]);
  });

  it('names a bad CIDR once per bad item', () => {
    const error = configError({ WEBHOOK_ALLOWED_CIDRS: 'nope, 10.0.0.0/8, also-bad' });
    expect(error.problems).toEqual([
      'WEBHOOK_ALLOWED_CIDRS: "nope" is not a CIDR such as 127.0.0.0/8',
      'WEBHOOK_ALLOWED_CIDRS: "also-bad" is not a CIDR such as 127.0.0.0/8',
    ]);
  });

  // BUG (packages/config/src/index.ts:74-78): parseDuration('') calls ms(''), which throws
  // "val is not a non-empty string or a valid number" instead of returning undefined. So an empty
  // item in DELIVERY_RETRY_SCHEDULE (a trailing comma, '0,,5s') or a whitespace-only duration
  // variable escapes loadConfig as a plain Error: not a ConfigError, and no other bad variable is named.
  it('a trailing comma in DELIVERY_RETRY_SCHEDULE is a ConfigError naming it, alongside other bad variables', () => {
    const error = configError({ DELIVERY_RETRY_SCHEDULE: '0,5s,', INGEST_PORT: 'abc' });
    expect(problemNames(error).sort()).toEqual(['DELIVERY_RETRY_SCHEDULE', 'INGEST_PORT']);
  });
});

describe('loadConfig: secrets in production', () => {
  const production = { NODE_ENV: 'production' };

  it('names every missing required secret', () => {
    const onGeneratedSecret = jest.fn();
    const error = configError(production, { require: ['ADMIN_JWT_SECRET', 'CLICK_SECRET', 'SECRETS_KEY'], onGeneratedSecret });
    expect(error.problems).toEqual([
      'ADMIN_JWT_SECRET: required when NODE_ENV=production',
      'CLICK_SECRET: required when NODE_ENV=production',
      'SECRETS_KEY: required when NODE_ENV=production',
    ]);
    expect(onGeneratedSecret).not.toHaveBeenCalled();
  });

  it.each(SECRET_NAMES.map((name) => [name]))('names %s alone when it alone is required and missing', (name) => {
    expect(configError(production, { require: [name] }).problems).toEqual([`${name}: required when NODE_ENV=production`]);
  });

  it('an empty string does not count as set', () => {
    expect(configError({ ...production, CLICK_SECRET: '' }, { require: ['CLICK_SECRET'] }).problems).toEqual([
      'CLICK_SECRET: required when NODE_ENV=production',
    ]);
  });

  it('does not require ADMIN_JWT_SECRET when ADMIN_JWKS_URL is set', () => {
    const error = configError(
      { ...production, ADMIN_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json', ADMIN_JWT_AUDIENCE: 'trackway' },
      { require: ['ADMIN_JWT_SECRET', 'CLICK_SECRET', 'SECRETS_KEY'] },
    );
    expect(problemNames(error)).toEqual(['CLICK_SECRET', 'SECRETS_KEY']);
  });

  it('loads when all required secrets are given, and generates nothing', () => {
    const onGeneratedSecret = jest.fn();
    const config = loadConfig({ env: { ...production, ...GOOD_SECRETS }, require: SECRET_NAMES, onGeneratedSecret });
    expect(config).toMatchObject({ NODE_ENV: 'production', ...GOOD_SECRETS });
    expect(onGeneratedSecret).not.toHaveBeenCalled();
  });

  it('loads with ADMIN_JWKS_URL instead of ADMIN_JWT_SECRET', () => {
    const config = loadConfig({
      env: {
        ...production,
        ADMIN_JWKS_URL: 'https://idp.example.com/jwks',
        ADMIN_JWT_AUDIENCE: 'trackway',
        CLICK_SECRET: GOOD_SECRETS.CLICK_SECRET,
        SECRETS_KEY: B64_KEY,
      },
      require: SECRET_NAMES,
    });
    expect(config.ADMIN_JWKS_URL).toBe('https://idp.example.com/jwks');
    expect(config.ADMIN_JWT_SECRET).toBeUndefined();
    expect(config.SECRETS_KEY).toBe(B64_KEY);
  });

  it('secrets that are not required are not demanded', () => {
    expect(loadConfig({ env: production, require: [] }).NODE_ENV).toBe('production');
    expect(loadConfig({ env: production }).CLICK_SECRET).toBeUndefined();
  });

  it('a required secret that is given but too short is named for its length', () => {
    expect(configError({ ...production, ...GOOD_SECRETS, CLICK_SECRET: 'x'.repeat(31) }, { require: SECRET_NAMES }).problems).toEqual([
      'CLICK_SECRET: must be at least 32 characters',
    ]);
  });
});

describe('loadConfig: secrets outside production', () => {
  describe.each(['development', 'test', undefined])('NODE_ENV=%p', (nodeEnv) => {
    it('generates every missing required secret, and reports each one', () => {
      const onGeneratedSecret = jest.fn();
      const config = loadConfig({ env: { NODE_ENV: nodeEnv }, require: SECRET_NAMES, onGeneratedSecret });
      expect(onGeneratedSecret.mock.calls).toEqual([['ADMIN_JWT_SECRET'], ['CLICK_SECRET'], ['SECRETS_KEY']]);
      expect(config.ADMIN_JWT_SECRET.length).toBeGreaterThanOrEqual(32);
      expect(config.CLICK_SECRET.length).toBeGreaterThanOrEqual(32);
      expect(decodeKey(config.SECRETS_KEY)).toHaveLength(32);
    });
  });

  it('generated secrets would themselves pass validation (in production too)', () => {
    const generated = loadConfig({ env: {}, require: SECRET_NAMES });
    const reloaded = loadConfig({
      env: { NODE_ENV: 'production', ADMIN_JWT_SECRET: generated.ADMIN_JWT_SECRET, CLICK_SECRET: generated.CLICK_SECRET, SECRETS_KEY: generated.SECRETS_KEY },
      require: SECRET_NAMES,
    });
    expect(reloaded.CLICK_SECRET).toBe(generated.CLICK_SECRET);
  });

  it('generates fresh secrets on every load', () => {
    const a = loadConfig({ env: {}, require: SECRET_NAMES });
    const b = loadConfig({ env: {}, require: SECRET_NAMES });
    for (const name of SECRET_NAMES) expect(a[name]).not.toBe(b[name]);
  });

  it('keeps given secrets and generates only the missing ones', () => {
    const onGeneratedSecret = jest.fn();
    const config = loadConfig({ env: { CLICK_SECRET: GOOD_SECRETS.CLICK_SECRET }, require: SECRET_NAMES, onGeneratedSecret });
    expect(config.CLICK_SECRET).toBe(GOOD_SECRETS.CLICK_SECRET);
    expect(onGeneratedSecret.mock.calls).toEqual([['ADMIN_JWT_SECRET'], ['SECRETS_KEY']]);
  });

  it('generates only the required secrets', () => {
    const onGeneratedSecret = jest.fn();
    const config = loadConfig({ env: {}, require: ['CLICK_SECRET'], onGeneratedSecret });
    expect(onGeneratedSecret.mock.calls).toEqual([['CLICK_SECRET']]);
    expect(config.CLICK_SECRET).toEqual(expect.any(String));
    expect(config.ADMIN_JWT_SECRET).toBeUndefined();
    expect(config.SECRETS_KEY).toBeUndefined();
  });

  it('does not generate ADMIN_JWT_SECRET when ADMIN_JWKS_URL is set', () => {
    const onGeneratedSecret = jest.fn();
    const config = loadConfig({
      env: { ADMIN_JWKS_URL: 'https://idp.example.com/jwks', ADMIN_JWT_AUDIENCE: 'trackway' },
      require: SECRET_NAMES,
      onGeneratedSecret,
    });
    expect(config.ADMIN_JWT_SECRET).toBeUndefined();
    expect(onGeneratedSecret.mock.calls).toEqual([['CLICK_SECRET'], ['SECRETS_KEY']]);
  });

  it('works without an onGeneratedSecret callback', () => {
    expect(loadConfig({ env: {}, require: ['SECRETS_KEY'] }).SECRETS_KEY).toEqual(expect.any(String));
  });

  it('generates nothing, and reports nothing, when another variable is bad', () => {
    const onGeneratedSecret = jest.fn();
    const error = configError({ INGEST_PORT: 'abc' }, { require: SECRET_NAMES, onGeneratedSecret });
    expect(problemNames(error)).toEqual(['INGEST_PORT']);
    expect(onGeneratedSecret).not.toHaveBeenCalled();
  });
});

describe('generateSecret', () => {
  it.each(SECRET_NAMES.map((name) => [name]))('%s: 32 random bytes, long enough, never repeated', (name: SecretName) => {
    const secrets = Array.from({ length: 100 }, () => generateSecret(name));
    expect(new Set(secrets).size).toBe(100);
    for (const s of secrets) {
      expect(s.length).toBeGreaterThanOrEqual(32);
      if (name === 'SECRETS_KEY') {
        expect(s).toMatch(/^[A-Za-z0-9+/]{43}=$/);
        expect(decodeKey(s)).toHaveLength(32);
      } else {
        expect(s).toMatch(/^[A-Za-z0-9_-]{43}$/);
      }
    }
  });
});

describe('strict parsing of numbers, keys and CIDRs', () => {
  it.each([' ', '0x10', '1e3', '12.5', '-1'])('rejects INGEST_PORT=%p', (value) => {
    expect(() => loadConfig({ env: { INGEST_PORT: value } })).toThrow(/INGEST_PORT/);
  });
  it.each([`!!!!${Buffer.alloc(32, 7).toString('base64')}`, Buffer.alloc(32, 7).toString('base64url'), Buffer.alloc(32, 7).toString('base64').slice(0, 43)])(
    'rejects SECRETS_KEY=%p',
    (value) => {
      expect(() => loadConfig({ env: { SECRETS_KEY: value } })).toThrow(/SECRETS_KEY/);
    },
  );
  it.each(['999.999.999.999/8', '10.0.0.0/33', 'fc00::/129', 'host/8'])('rejects WEBHOOK_ALLOWED_CIDRS=%p', (value) => {
    expect(() => loadConfig({ env: { WEBHOOK_ALLOWED_CIDRS: value } })).toThrow(/WEBHOOK_ALLOWED_CIDRS/);
  });
  it('accepts IPv4 and IPv6 CIDRs', () => {
    expect(loadConfig({ env: { WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8, ::1/128' } }).WEBHOOK_ALLOWED_CIDRS).toEqual(['127.0.0.0/8', '::1/128']);
  });
});

describe('documentation', () => {
  const root = require('node:path').resolve(__dirname, '../../..');
  const read = (file: string) => require('node:fs').readFileSync(require('node:path').join(root, file), 'utf8') as string;
  const names = Object.keys(envSchema.shape);
  it.each(names)('%s is listed in .env.example and described in docs/operations.md', (name) => {
    expect(read('.env.example')).toMatch(new RegExp(`^${name}=`, 'm'));
    expect(read('docs/operations.md')).toContain(`| \`${name}\` |`);
  });

  // The "used by" column is what an operator goes by when a service refuses to start.
  it.each(names)('%s: docs/operations.md\'s "used by" names exactly the services that parse it', (name) => {
    const row = read('docs/operations.md')
      .split('\n')
      .find((line) => line.startsWith(`| \`${name}\` |`))!;
    const usedBy = row.split(' | ')[2];
    // `all`, or a list of services (`seed`: the demo seed of `pnpm start` and `pnpm db:seed`).
    const words = usedBy === 'all' ? [...SERVICE_NAMES] : usedBy.split(', ');
    for (const word of words) expect([...SERVICE_NAMES, 'seed']).toContain(word);
    const documented = words.filter((word) => word !== 'seed');
    expect(documented.sort()).toEqual(SERVICE_NAMES.filter((service) => name in serviceEnvSchemas[service].shape).sort());
  });
});

describe('each service parses only its own variables', () => {
  const parses = (service: ServiceName, env: Env) => {
    try {
      loadServiceConfig(service, { env });
      return 'ok';
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).problems;
    }
  };
  const outcomes = (env: Env) => Object.fromEntries(SERVICE_NAMES.map((service) => [service, parses(service, env)]));

  it('a bad DELIVERY_* value stops delivery, naming it, and not ingest, attribution or api', () => {
    expect(outcomes({ DELIVERY_ENDPOINT_CONCURRENCY: 'abc' })).toEqual({
      ingest: 'ok',
      attribution: 'ok',
      delivery: ['DELIVERY_ENDPOINT_CONCURRENCY: must be a whole number'],
      api: 'ok',
    });
    expect(outcomes({ DELIVERY_TIMEOUT_MS: '1.5', DELIVERY_BREAKER_COOLDOWN: 'later' })).toEqual({
      ingest: 'ok',
      attribution: 'ok',
      delivery: ['DELIVERY_TIMEOUT_MS: must be a whole number', 'DELIVERY_BREAKER_COOLDOWN: "later" is not a duration (e.g. 500ms, 5s, 30min, 2h, 5d)'],
      api: 'ok',
    });
  });

  it('a bad ingest-only value stops ingest, naming it, and no other service', () => {
    expect(outcomes({ CLICK_SECRET: 'short', POSTBACK_RATE_LIMIT: '-1' })).toEqual({
      ingest: ['POSTBACK_RATE_LIMIT: must be a whole number', 'CLICK_SECRET: must be at least 32 characters'],
      attribution: ['CLICK_SECRET: must be at least 32 characters'],
      delivery: 'ok',
      api: 'ok',
    });
    // INGEST_PORT is read by the api too (its document's ingest server, unless PUBLIC_INGEST_URL is set).
    expect(outcomes({ INGEST_PORT: 'abc' })).toEqual({
      ingest: ['INGEST_PORT: must be a whole number'],
      attribution: 'ok',
      delivery: 'ok',
      api: ['INGEST_PORT: must be a whole number'],
    });
  });

  it('an attribution-only and an api-only value stop only their service', () => {
    expect(outcomes({ ATTRIBUTION_BATCH_WAIT: 'soon' })).toEqual({
      ingest: 'ok',
      attribution: ['ATTRIBUTION_BATCH_WAIT: "soon" is not a duration (e.g. 500ms, 5s, 30min, 2h, 5d)'],
      delivery: 'ok',
      api: 'ok',
    });
    expect(outcomes({ ADMIN_JWKS_URL: 'https://idp.example/jwks.json' })).toEqual({
      ingest: 'ok',
      attribution: 'ok',
      delivery: 'ok',
      api: ['ADMIN_JWT_AUDIENCE: required with ADMIN_JWKS_URL (the audience of tokens meant for Trackway)'],
    });
    expect(outcomes({ API_PORT: '65536' })).toMatchObject({ ingest: 'ok', attribution: 'ok', delivery: 'ok', api: [expect.stringMatching(/^API_PORT: /)] });
  });

  it('a shared value stops every service that reads it, and only those', () => {
    expect(outcomes({ REDIS_URL: 'http://cache:6379' })).toEqual(
      Object.fromEntries(SERVICE_NAMES.map((s) => [s, ['REDIS_URL: must be a redis:// URL (or, with REDIS_CLUSTER, a comma-separated list)']])),
    );
    expect(outcomes({ DELIVERY_RETRY_SCHEDULE: 'soon' })).toEqual({
      ingest: 'ok',
      attribution: 'ok',
      delivery: ['DELIVERY_RETRY_SCHEDULE: "soon" is not a duration'],
      api: ['DELIVERY_RETRY_SCHEDULE: "soon" is not a duration'],
    });
    expect(outcomes({ TRUST_PROXY: 'localhost' })).toMatchObject({
      ingest: [expect.stringMatching(/^TRUST_PROXY: /)],
      attribution: 'ok',
      delivery: 'ok',
      api: [expect.stringMatching(/^TRUST_PROXY: /)],
    });
    expect(outcomes({ HEALTH_PORT: '-1' })).toMatchObject({
      ingest: 'ok',
      attribution: [expect.stringMatching(/^HEALTH_PORT: /)],
      delivery: [expect.stringMatching(/^HEALTH_PORT: /)],
      api: 'ok',
    });
  });

  it("gives a service its own variables and no one else's", () => {
    const env = { INGEST_PORT: '4000', DELIVERY_CONCURRENCY: '7', ATTRIBUTION_BATCH_SIZE: '9', API_PORT: '4001', DATABASE_URL: 'postgresql://db/x' };
    const ingest = loadServiceConfig('ingest', { env });
    expect(ingest).toMatchObject({ INGEST_PORT: 4000, DATABASE_URL: 'postgresql://db/x' });
    expect(ingest).not.toHaveProperty('DELIVERY_CONCURRENCY');
    expect(ingest).not.toHaveProperty('API_PORT');
    const delivery = loadServiceConfig('delivery', { env });
    expect(delivery).toMatchObject({ DELIVERY_CONCURRENCY: 7, DATABASE_URL: 'postgresql://db/x' });
    expect(delivery).not.toHaveProperty('INGEST_PORT');
    expect(delivery).not.toHaveProperty('ATTRIBUTION_BATCH_SIZE');
  });

  it('requires of a service, in production, exactly the secrets it uses', () => {
    const missing = (service: ServiceName) => (parses(service, { NODE_ENV: 'production' }) as string[]).map((p) => p.slice(0, p.indexOf(':')));
    expect(Object.fromEntries(SERVICE_NAMES.map((s) => [s, missing(s)]))).toEqual({
      ingest: ['CLICK_SECRET', 'SECRETS_KEY'],
      attribution: ['CLICK_SECRET'],
      delivery: ['SECRETS_KEY'],
      api: ['ADMIN_JWT_SECRET', 'SECRETS_KEY'],
    });
    // …and, outside production, generates those and no others.
    const onGeneratedSecret = jest.fn();
    const attribution = loadServiceConfig('attribution', { env: {}, onGeneratedSecret });
    expect(onGeneratedSecret.mock.calls).toEqual([['CLICK_SECRET']]);
    expect(attribution.CLICK_SECRET.length).toBeGreaterThanOrEqual(32);
    expect(attribution).not.toHaveProperty('SECRETS_KEY');
  });

  it('keeps every variable as the full schema defines it: same defaults, same messages', () => {
    for (const service of SERVICE_NAMES) {
      for (const [name, type] of Object.entries(serviceEnvSchemas[service].shape))
        expect({ service, name, same: type === envSchema.shape[name as keyof typeof envSchema.shape] }).toEqual({ service, name, same: true });
    }
    const all = loadConfig({ env: {} });
    for (const service of SERVICE_NAMES) {
      const own = loadServiceConfig(service, { env: {}, onGeneratedSecret: () => undefined });
      for (const [name, value] of Object.entries(own))
        if (!(SECRET_NAMES as readonly string[]).includes(name)) expect({ service, name, value }).toEqual({ service, name, value: all[name as keyof Config] });
    }
  });

  it('every variable is read by some service', () => {
    const read = new Set(SERVICE_NAMES.flatMap((service) => Object.keys(serviceEnvSchemas[service].shape)));
    expect(Object.keys(envSchema.shape).filter((name) => !read.has(name))).toEqual([]);
  });

  it("the api's ingest URL (its OpenAPI document's ingest server): PUBLIC_INGEST_URL, else this host at INGEST_PORT", () => {
    expect(publicIngestUrl(loadServiceConfig('api', { env: {}, onGeneratedSecret: () => undefined }))).toBe('http://127.0.0.1:3000');
    expect(publicIngestUrl(loadServiceConfig('api', { env: { INGEST_PORT: '4100' }, onGeneratedSecret: () => undefined }))).toBe('http://127.0.0.1:4100');
    const env = { PUBLIC_INGEST_URL: 'https://track.example.com/', INGEST_PORT: '4100' };
    expect(publicIngestUrl(loadServiceConfig('api', { env, onGeneratedSecret: () => undefined }))).toBe('https://track.example.com');
    expect(outcomes({ PUBLIC_INGEST_URL: 'ftp://track.example.com' })).toMatchObject({ api: ['PUBLIC_INGEST_URL: must be an http(s) URL'], ingest: 'ok' });
  });

  it('the common part is what every service reads, and what the migrate entry point parses', () => {
    const common = Object.keys(commonEnvSchema.shape);
    expect(common).toEqual(expect.arrayContaining(['NODE_ENV', 'LOG_LEVEL', 'DATABASE_URL', 'REDIS_URL', 'QUEUE_PREFIX']));
    for (const service of SERVICE_NAMES) expect(Object.keys(serviceEnvSchemas[service].shape)).toEqual(expect.arrayContaining(common));
    const everywhere = Object.keys(envSchema.shape).filter((name) => SERVICE_NAMES.every((service) => name in serviceEnvSchemas[service].shape));
    expect(everywhere.sort()).toEqual([...common].sort());
    expect(() => loadConfig({ schema: commonEnvSchema, env: { DELIVERY_ENDPOINT_CONCURRENCY: 'abc', INGEST_PORT: 'abc' } })).not.toThrow();
    expect(() => loadConfig({ schema: commonEnvSchema, env: { DATABASE_URL: 'mysql://db/x' } })).toThrow('DATABASE_URL: must be a postgresql:// URL');
  });
});

describe('an identity provider for admin tokens', () => {
  it('requires ADMIN_JWT_AUDIENCE with ADMIN_JWKS_URL', () => {
    expect(() => loadConfig({ env: { ADMIN_JWKS_URL: 'https://idp.example/jwks.json' } })).toThrow(/ADMIN_JWT_AUDIENCE: required with ADMIN_JWKS_URL/);
    expect(loadConfig({ env: { ADMIN_JWKS_URL: 'https://idp.example/jwks.json', ADMIN_JWT_AUDIENCE: 'trackway' } }).ADMIN_JWT_AUDIENCE).toBe('trackway');
  });
});

describe('loadConfig: the front door', () => {
  it('defaults: TRUST_PROXY false, POSTBACK_RATE_LIMIT 0, AUTH_FAILURE_LIMIT 30, ADMIN_JWT_MAX_AGE 24 h', () => {
    const config = loadConfig({ env: {} });
    expect({ trust: config.TRUST_PROXY, rate: config.POSTBACK_RATE_LIMIT, failures: config.AUTH_FAILURE_LIMIT, maxAge: config.ADMIN_JWT_MAX_AGE }).toEqual({
      trust: false,
      rate: 0,
      failures: 30,
      maxAge: DAY,
    });
  });

  it.each([
    ['false', false],
    ['true', true],
    ['TRUE', true],
    ['2', 2],
    ['loopback', 'loopback'],
    ['loopback, 10.0.0.0/8', 'loopback, 10.0.0.0/8'],
    ['uniquelocal,linklocal,192.0.2.7,2001:db8::/32', 'uniquelocal,linklocal,192.0.2.7,2001:db8::/32'],
  ])('TRUST_PROXY=%p -> %p', (value, expected) => {
    expect(loadConfig({ env: { TRUST_PROXY: value } }).TRUST_PROXY).toEqual(expected);
  });

  it.each(['yes please', '10.0.0.0/33', 'loopback,', 'localhost', '-1', '::1/129'])('TRUST_PROXY=%p is refused, naming it', (value) => {
    expect(problemNames(configError({ TRUST_PROXY: value }))).toEqual(['TRUST_PROXY']);
  });

  it.each([
    ['POSTBACK_RATE_LIMIT', '-1'],
    ['POSTBACK_RATE_LIMIT', '1.5'],
    ['AUTH_FAILURE_LIMIT', '0'],
    ['AUTH_FAILURE_LIMIT', 'lots'],
  ])('%s=%p is refused, naming it', (name, value) => {
    expect(problemNames(configError({ [name]: value }))).toEqual([name]);
  });
});

describe('PAYOUT_NICE_RATIO: how long a payout build rests after each batch', () => {
  it.each([
    [undefined, 2],
    ['0', 0],
    ['0.5', 0.5],
    ['3', 3],
    ['10', 10],
  ])('PAYOUT_NICE_RATIO=%p -> %p', (value, expected) => {
    expect(loadConfig({ env: value === undefined ? {} : { PAYOUT_NICE_RATIO: value } }).PAYOUT_NICE_RATIO).toBe(expected);
  });

  it.each(['-1', '1e3', '.5', '2,5', 'fast', '10.5'])('PAYOUT_NICE_RATIO=%p is refused, naming it', (value) => {
    expect(problemNames(configError({ PAYOUT_NICE_RATIO: value }))).toEqual(['PAYOUT_NICE_RATIO']);
  });
});

describe('DELIVERY_MAX_IN_FLIGHT: requests in flight per delivery process, bounded by its sockets', () => {
  it.each([
    ['a common 1024', 1024, 384],
    ['Docker and systemd services (1048576): the memory ceiling', 1_048_576, 4096],
    ['just enough for the ceiling', 8448, 4096],
    ['a small limit', 300, 22],
    ['fewer files than the reserve: still one', 100, 1],
  ])('the default from the open-file limit, %s', (_name, files, expected) => {
    expect(defaultMaxInFlight(files)).toBe(expected);
  });

  it('defaults to what this process may open (Node raised its soft limit to the hard one)', () => {
    const files = openFileLimit();
    expect(files).toBeGreaterThanOrEqual(1);
    expect(loadConfig({ env: {} }).DELIVERY_MAX_IN_FLIGHT).toBe(defaultMaxInFlight(files));
    expect(loadConfig({ env: { DELIVERY_MAX_IN_FLIGHT: '100' } }).DELIVERY_MAX_IN_FLIGHT).toBe(100);
  });

  it('refuses more than the process has sockets for, and nonsense, naming it (delivery only)', () => {
    const tooMany = String(openFileLimit() - RESERVED_FILES + 1);
    const error = configError({ DELIVERY_MAX_IN_FLIGHT: tooMany });
    expect(error.problems).toEqual([expect.stringMatching(/^DELIVERY_MAX_IN_FLIGHT: at most \d+: this process may open \d+ files \(ulimit -n\)/)]);
    for (const value of ['0', '-1', 'many']) expect(problemNames(configError({ DELIVERY_MAX_IN_FLIGHT: value }))).toEqual(['DELIVERY_MAX_IN_FLIGHT']);
    expect(() => loadServiceConfig('ingest', { env: { DELIVERY_MAX_IN_FLIGHT: '0' } })).not.toThrow();
  });
});
