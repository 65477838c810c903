import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import ms from 'ms';
import { z } from 'zod';

/** A duration such as `250`, `50ms`, `5s`, `30min`, `2h`, `5d`, parsed to milliseconds. */
export function parseDuration(input: string): number | undefined {
  const trimmed = input.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  if (!/^(\d+|\d*\.\d+)\s*[a-zA-Z]+$/.test(trimmed)) return undefined;
  const value = ms(trimmed as ms.StringValue);
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const parsed = parseDuration(value);
      if (parsed === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration (e.g. 500ms, 5s, 30min, 2h, 5d)` });
        return z.NEVER;
      }
      return parsed;
    });

// Node's HTTP server timeouts take whole milliseconds, and 0 would switch them off.
const positiveDuration = (fallback: string) => duration(fallback).pipe(z.number().int('must be whole milliseconds').min(1, 'must be more than 0'));

// Digits only: " ", "0x10" or "1e3" are typos, not numbers.
const int = (fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER, maxMessage?: string) =>
  z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max, maxMessage)).default(fallback);

// A decimal such as `2` or `0.5`: digits, at most one point.
const ratio = (fallback: number, max: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'must be a number such as 2 or 0.5')
    .transform(Number)
    .pipe(z.number().min(0).max(max))
    .default(fallback);

const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .default(fallback ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

const cidrList = z
  .string()
  .default('')
  .transform((value, ctx) => {
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const item of items) {
      const [address, bits] = item.split('/');
      const version = isIP(address ?? '');
      const max = version === 4 ? 32 : 128;
      if (!version || !/^\d{1,3}$/.test(bits ?? '') || Number(bits) > max) {
        ctx.addIssue({ code: 'custom', message: `"${item}" is not a CIDR such as 127.0.0.0/8` });
      }
    }
    return items;
  });

const TRUST_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const trustProxy = z
  .string()
  .default('false')
  .transform((value, ctx): boolean | number | string => {
    const trimmed = value.trim().toLowerCase();
    if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
    if (/^\d+$/.test(trimmed)) return Number(trimmed);
    for (const item of trimmed.split(',').map((s) => s.trim())) {
      const [address, bits] = item.split('/');
      const max = isIP(address ?? '') === 4 ? 32 : 128;
      const ok = TRUST_NAMES.has(item) || (isIP(address ?? '') !== 0 && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max)));
      if (!ok) ctx.addIssue({ code: 'custom', message: `"${item}" is not loopback, linklocal, uniquelocal, an address or a CIDR` });
    }
    return trimmed;
  });

const retrySchedule = z
  .string()
  .default('0,5s,5min,30min,2h,5h,10h,10h')
  .transform((value, ctx) => {
    const parts = value.split(',').map((s) => s.trim());
    const out: number[] = [];
    for (const part of parts) {
      const parsed = parseDuration(part);
      if (parsed === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${part}" is not a duration` });
        return z.NEVER;
      }
      out.push(parsed);
    }
    return out;
  });

/**
 * This process's limit on open files (sockets included): the soft limit, which Node raises to the
 * hard limit at start-up. Read from /proc on Linux; elsewhere 1024, a common default, is assumed.
 */
export function openFileLimit(): number {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (line) return line === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(line);
  } catch {
    // Not Linux: fall through.
  }
  return 1024;
}

/** Files kept for what a delivery process holds besides its requests: Postgres and Redis connections, logs, the health port. */
export const RESERVED_FILES = 256;
/** Above this, a process's memory, not its sockets, is what runs out first (docs/operations.md). */
const MAX_IN_FLIGHT_CEILING = 4096;

/**
 * DELIVERY_MAX_IN_FLIGHT's default: half the open files left beside the reserved ones (each
 * request holds a socket, and as many idle kept-alive ones may linger after), at most 4,096.
 */
export function defaultMaxInFlight(files = openFileLimit()): number {
  return Math.max(1, Math.min(MAX_IN_FLIGHT_CEILING, Math.floor((files - RESERVED_FILES) / 2)));
}

const openFiles = openFileLimit();
// More requests in flight than the process has sockets for would fail as attempts (EMFILE), not wait.
const inFlightCeiling = Math.max(1, openFiles - RESERVED_FILES);

export const SECRET_NAMES = ['ADMIN_JWT_SECRET', 'CLICK_SECRET', 'SECRETS_KEY'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];

const secret = (minLength: number) => z.string().min(minLength, `must be at least ${minLength} characters`).optional();

/** Every variable Trackway reads, each once. A process parses only its own part (below). */
export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// URL')
    .default('postgresql://postgres@127.0.0.1:5432/trackway'),
  // With REDIS_CLUSTER=true: the cluster's seed nodes, comma-separated redis:// URLs.
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\/[^,]+(,\s*rediss?:\/\/[^,]+)*$/, 'must be a redis:// URL (or, with REDIS_CLUSTER, a comma-separated list)')
    .default('redis://127.0.0.1:6379'),
  REDIS_CLUSTER: bool(false),
  // Ingest answers a postback 202 only once its job reached this many replicas of its Redis
  // master (WAIT): a failover then loses no acknowledged postback. 0: once the master has it.
  REDIS_WAIT_REPLICAS: int(0, 0, 16),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}.-]+$/, 'letters, digits, _ . - and {} (a Redis Cluster hash tag) only')
    .default('trackway'),
  INGEST_PORT: int(3000, 0, 65535),
  API_PORT: int(3001, 0, 65535),
  HEALTH_PORT: int(9464, 0, 65535),
  // Where clients reach ingest (the OpenAPI document's ingest server, the printed demo URLs):
  // default http://127.0.0.1:$INGEST_PORT (publicIngestUrl).
  PUBLIC_INGEST_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  // Every HTTP server (ingest, api, the workers' health ports): a request's headers, then the
  // whole request, must arrive within these or it is answered 408 and closed (the headers'
  // limit is capped by the request's); an idle keep-alive connection closes after
  // HTTP_KEEP_ALIVE_TIMEOUT (set it above a load balancer's idle timeout); connections past
  // HTTP_MAX_CONNECTIONS are refused.
  HTTP_REQUEST_TIMEOUT: positiveDuration('10s'),
  HTTP_HEADERS_TIMEOUT: positiveDuration('10s'),
  HTTP_KEEP_ALIVE_TIMEOUT: positiveDuration('5s'),
  HTTP_MAX_CONNECTIONS: int(10_000, 1),
  // Bearer token for /metrics on ingest and api (their ports are public); unset, they do not
  // serve /metrics at all. The workers' health ports serve it without a token.
  METRICS_TOKEN: z
    .string()
    .regex(/^[A-Za-z0-9._~+/-]{32,}=*$/, 'must be at least 32 characters: letters, digits and - . _ ~ + / (a bearer token)')
    .optional(),

  ADMIN_JWT_SECRET: secret(32),
  ADMIN_JWKS_URL: z.url().optional(),
  // With an identity provider, tokens must be for Trackway: its audience (required) and issuer.
  ADMIN_JWT_AUDIENCE: z.string().min(1).optional(),
  ADMIN_JWT_ISSUER: z.string().min(1).optional(),
  // The longest an admin token may live (exp − iat), and the oldest its iat may be.
  ADMIN_JWT_MAX_AGE: duration('24h'),
  CLICK_SECRET: secret(32),
  // 32 bytes as base64 or 64 hex characters: the AES-256-GCM key for webhook signing secrets.
  SECRETS_KEY: z
    .string()
    .refine((v) => decodeKey(v) !== undefined, 'must be 32 bytes, as 64 hex characters or base64')
    .optional(),

  SHUTDOWN_TIMEOUT_MS: int(25_000, 100),
  // HTTP services answer /readyz 503 this long before they stop accepting, so load balancers
  // take them out of rotation first (set it above the balancer's health-check interval).
  SHUTDOWN_DRAIN_MS: int(1_000, 0, 600_000),
  // Postback jobs a worker holds at once; their postbacks are written in batches of up to
  // ATTRIBUTION_BATCH_SIZE, one transaction each, the first waiting ATTRIBUTION_BATCH_WAIT for more.
  ATTRIBUTION_CONCURRENCY: int(2000, 1, 10_000),
  ATTRIBUTION_BATCH_SIZE: int(500, 1, 10_000),
  ATTRIBUTION_BATCH_WAIT: duration('50ms'),
  CLICKS_CONCURRENCY: int(200, 1, 5000),
  DELIVERY_CONCURRENCY: int(50, 1, 5000),
  DELIVERY_FANOUT_CONCURRENCY: int(20, 1, 1000),
  DELIVERY_ENDPOINT_CONCURRENCY: int(10, 1, 5000),
  // HTTP requests in flight at once per delivery process; a job whose request is out does not
  // count against DELIVERY_CONCURRENCY. Default: from the open-file limit (defaultMaxInFlight).
  DELIVERY_MAX_IN_FLIGHT: int(
    defaultMaxInFlight(openFiles),
    1,
    inFlightCeiling,
    `at most ${inFlightCeiling}: this process may open ${inFlightCeiling + RESERVED_FILES} files (ulimit -n), ${RESERVED_FILES} of them kept for its other connections`,
  ),
  ATTRIBUTION_QUEUES: z.string().default('postbacks,clicks,outbox'),
  DELIVERY_QUEUES: z.string().default('events,deliveries,housekeeping'),
  // Delivery jobs are spread over this many queues (`deliveries`, `deliveries-1`, …), each on its
  // own Redis Cluster hash tag, by endpoint: an endpoint's jobs all go to one. At most 64
  // (DELIVERY_QUEUE_SHARDS_MAX in @trackway/queues). docs/operations.md: what a change does.
  DELIVERY_QUEUE_SHARDS: int(1, 1, 64),
  OUTBOX_RELAY_INTERVAL: duration('5s'),
  // How long a worker's job lock lasts without renewal, and how often stalled jobs (their
  // worker died) are looked for and put back: BullMQ's lockDuration and stalledInterval.
  WORKER_LOCK_DURATION: duration('30s'),
  WORKER_STALLED_INTERVAL: duration('30s'),

  DELIVERY_TIMEOUT_MS: int(15_000, 1),
  DELIVERY_RETRY_SCHEDULE: retrySchedule,
  // A 429/503's Retry-After is honoured up to this long (never sooner than the schedule's delay).
  DELIVERY_RETRY_AFTER_MAX: duration('1h'),
  DELIVERY_BREAKER_THRESHOLD: int(5, 1),
  DELIVERY_BREAKER_COOLDOWN: duration('30s'),
  DELIVERY_DISABLE_AFTER: duration('5d'),
  DELIVERY_LOG_RETENTION_DAYS: int(30, 1),
  // Days clicks are kept: longer than any offer's attribution window (at most 365 days), so a
  // conversion always finds its click's sub IDs. Reports keep their counts after clicks go.
  CLICK_RETENTION_DAYS: int(366, 1),
  // Days postbacks' outcome rows are kept (GET /v1/postbacks/{id}); conversions stay.
  POSTBACK_RETENTION_DAYS: int(90, 1),
  // After each batch of 1,000 commissions a payout's build rests this many times as long as the
  // batch took (gh-ost's nice-ratio): 2 leaves the cores to postbacks two thirds of the time, and
  // the build takes three times as long. 0: full speed.
  PAYOUT_NICE_RATIO: ratio(2, 10),
  WEBHOOK_ALLOW_HTTP: bool(false),
  WEBHOOK_ALLOWED_CIDRS: cidrList,

  // Whom to believe about a client's address (allowlists, auth-failure limits, click IPs):
  // Express's `trust proxy` values. `false` (the default): the socket's address, X-Forwarded-For
  // ignored. `loopback`, `uniquelocal`, addresses or CIDRs (comma-separated): proxies at those
  // addresses are trusted. A number: that many hops. `true`: every hop (only behind a proxy
  // that overwrites the header).
  TRUST_PROXY: trustProxy,
  // Postbacks per second per advertiser, across all ingest replicas; 0 = no limit. An
  // advertiser's postback_rate_limit_per_second overrides it.
  POSTBACK_RATE_LIMIT: int(0, 0, 1_000_000),
  // Failed authentications (unknown postback key, bad signature, bad admin token, failed
  // /admin/login) allowed per client address per minute; then 429 until the minute is over.
  AUTH_FAILURE_LIMIT: int(30, 1, 1_000_000),
});

type Variable = keyof typeof envSchema.shape;
const names = <K extends Variable>(...keys: K[]) => Object.fromEntries(keys.map((key) => [key, true])) as { [P in K]: true };

// Each service parses only the variables it reads, so a bad DELIVERY_* value stops delivery
// (and the api, for the two it shares), never ingest. docs/operations.md lists them ("used by").
/** Every process: its stores, logging, the limits of every HTTP server (health ports too), shutdown. */
const COMMON = names(
  'NODE_ENV',
  'LOG_LEVEL',
  'DATABASE_URL',
  'REDIS_URL',
  'REDIS_CLUSTER',
  'QUEUE_PREFIX',
  'HTTP_REQUEST_TIMEOUT',
  'HTTP_HEADERS_TIMEOUT',
  'HTTP_KEEP_ALIVE_TIMEOUT',
  'HTTP_MAX_CONNECTIONS',
  'SHUTDOWN_TIMEOUT_MS',
);
/** The public HTTP services, ingest and api. */
const FRONT_DOOR = names('METRICS_TOKEN', 'SHUTDOWN_DRAIN_MS', 'TRUST_PROXY', 'AUTH_FAILURE_LIMIT');
/** The BullMQ worker processes, attribution and delivery. */
const WORKER = names('HEALTH_PORT', 'WORKER_LOCK_DURATION', 'WORKER_STALLED_INTERVAL');

/** What a process that only needs the stores reads (the migrate entry point). */
export const commonEnvSchema = envSchema.pick(COMMON);

/** Each service's variables. Its secrets (ADMIN_JWT_SECRET, CLICK_SECRET, SECRETS_KEY) are required of it. */
export const serviceEnvSchemas = {
  ingest: envSchema.pick({ ...COMMON, ...FRONT_DOOR, ...names('INGEST_PORT', 'POSTBACK_RATE_LIMIT', 'REDIS_WAIT_REPLICAS', 'CLICK_SECRET', 'SECRETS_KEY') }),
  attribution: envSchema.pick({
    ...COMMON,
    ...WORKER,
    ...names(
      'ATTRIBUTION_CONCURRENCY',
      'ATTRIBUTION_BATCH_SIZE',
      'ATTRIBUTION_BATCH_WAIT',
      'CLICKS_CONCURRENCY',
      'ATTRIBUTION_QUEUES',
      'OUTBOX_RELAY_INTERVAL',
      'CLICK_SECRET',
    ),
  }),
  delivery: envSchema.pick({
    ...COMMON,
    ...WORKER,
    ...names(
      'DELIVERY_CONCURRENCY',
      'DELIVERY_FANOUT_CONCURRENCY',
      'DELIVERY_ENDPOINT_CONCURRENCY',
      'DELIVERY_MAX_IN_FLIGHT',
      'DELIVERY_QUEUES',
      'DELIVERY_QUEUE_SHARDS',
      'DELIVERY_TIMEOUT_MS',
      'DELIVERY_RETRY_SCHEDULE',
      'DELIVERY_RETRY_AFTER_MAX',
      'DELIVERY_BREAKER_THRESHOLD',
      'DELIVERY_BREAKER_COOLDOWN',
      'DELIVERY_DISABLE_AFTER',
      'DELIVERY_LOG_RETENTION_DAYS',
      'CLICK_RETENTION_DAYS',
      'POSTBACK_RETENTION_DAYS',
      'WEBHOOK_ALLOWED_CIDRS',
      'SECRETS_KEY',
    ),
  }),
  // The api checks endpoint URLs when they are saved, and shows the retry schedule.
  api: envSchema.pick({
    ...COMMON,
    ...FRONT_DOOR,
    ...names(
      'API_PORT',
      'PUBLIC_INGEST_URL',
      'INGEST_PORT',
      'ADMIN_JWT_SECRET',
      'ADMIN_JWKS_URL',
      'ADMIN_JWT_AUDIENCE',
      'ADMIN_JWT_ISSUER',
      'ADMIN_JWT_MAX_AGE',
      'SECRETS_KEY',
      'DELIVERY_RETRY_SCHEDULE',
      'DELIVERY_QUEUE_SHARDS',
      'WEBHOOK_ALLOW_HTTP',
      'WEBHOOK_ALLOWED_CIDRS',
      'PAYOUT_NICE_RATIO',
    ),
  }),
};
export type ServiceName = keyof typeof serviceEnvSchemas;
export const SERVICE_NAMES = Object.keys(serviceEnvSchemas) as ServiceName[];

type AnyEnvSchema = z.ZodObject<z.ZodRawShape>;
/** A parsed schema, its secrets present: required ones are set or generated (see LoadOptions). */
export type ConfigOf<S extends AnyEnvSchema> = z.output<S> & Required<Pick<z.output<S>, Extract<keyof z.output<S>, SecretName>>>;
/** Every variable (the scripts: setup, seed, token). */
export type Config = ConfigOf<typeof envSchema>;
export type CommonConfig = ConfigOf<typeof commonEnvSchema>;
export type ServiceConfig<N extends ServiceName> = ConfigOf<(typeof serviceEnvSchemas)[N]>;

/** Where clients reach ingest: PUBLIC_INGEST_URL, else this host at INGEST_PORT (both defaulted as the schema says). */
export function publicIngestUrl(config: { PUBLIC_INGEST_URL?: string; INGEST_PORT?: number }): string {
  const url = config.PUBLIC_INGEST_URL ?? `http://127.0.0.1:${config.INGEST_PORT ?? envSchema.shape.INGEST_PORT.parse(undefined)}`;
  return url.replace(/\/+$/, '');
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid environment:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function decodeKey(value: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  // Strict base64 of exactly 32 bytes: Node's decoder would silently skip stray characters.
  if (/^[A-Za-z0-9+/]{43}=$/.test(value)) return Buffer.from(value, 'base64');
  return undefined;
}

/**
 * Loads `.env` from the repository root (variables already in the environment win), so that
 * every process started from a checkout shares the secrets `pnpm start` wrote there.
 */
export function loadDotEnv(start = process.cwd()): void {
  // Tests set every variable they mean; a developer's .env must not leak into them.
  if (process.env.NODE_ENV === 'test') return;
  let dir = start;
  for (;;) {
    const candidate = path.join(dir, '.env');
    if (existsSync(candidate) && existsSync(path.join(dir, 'pnpm-workspace.yaml'))) {
      process.loadEnvFile(candidate);
      return;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

export interface LoadOptions<S extends AnyEnvSchema = typeof envSchema> {
  /** The variables to parse (default: all of them); any others are ignored. */
  schema?: S;
  /** Secrets this process needs. Required in production; generated (per process) otherwise. */
  require?: readonly SecretName[];
  env?: NodeJS.ProcessEnv;
  onGeneratedSecret?: (name: SecretName) => void;
}

/** Parses the environment once, naming every bad variable of the schema. */
export function loadConfig<S extends AnyEnvSchema = typeof envSchema>(options: LoadOptions<S> = {}): ConfigOf<S> {
  const schema: AnyEnvSchema = options.schema ?? envSchema;
  const source = options.env ?? process.env;
  const raw = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(raw);
  const problems: string[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  const env = (result.success ? result.data : {}) as Record<string, unknown>;
  const production = raw.NODE_ENV === 'production';
  // An identity provider issues tokens for many applications: without an audience, any of its
  // tokens with an "admin" scope would be an admin token here.
  if ('ADMIN_JWKS_URL' in schema.shape && raw.ADMIN_JWKS_URL && !raw.ADMIN_JWT_AUDIENCE)
    problems.push('ADMIN_JWT_AUDIENCE: required with ADMIN_JWKS_URL (the audience of tokens meant for Trackway)');
  for (const name of options.require ?? []) {
    if (name === 'ADMIN_JWT_SECRET' && raw.ADMIN_JWKS_URL) continue;
    if (raw[name] !== undefined) continue;
    if (production) {
      problems.push(`${name}: required when NODE_ENV=production`);
    } else if (result.success) {
      env[name] = generateSecret(name);
      options.onGeneratedSecret?.(name);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return env as ConfigOf<S>;
}

/** A service's variables, and only those; the secrets in its schema are required of it. */
export function loadServiceConfig<N extends ServiceName>(service: N, options: Omit<LoadOptions, 'schema' | 'require'> = {}): ServiceConfig<N> {
  const schema = serviceEnvSchemas[service];
  return loadConfig({ ...options, schema, require: SECRET_NAMES.filter((name) => name in schema.shape) }) as ServiceConfig<N>;
}

export function generateSecret(name: SecretName): string {
  return name === 'SECRETS_KEY' ? randomBytes(32).toString('base64') : randomBytes(32).toString('base64url');
}
