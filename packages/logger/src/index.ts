import pino from 'pino';

export type Logger = pino.Logger;

// Keys, secrets, signatures and authorization headers never reach a log line.
export const REDACT_PATHS = [
  'key',
  '*.key',
  'postback_key',
  '*.postback_key',
  'secret',
  '*.secret',
  'secrets',
  '*.secrets',
  'password',
  'token',
  '*.token',
  'authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-postback-key"]',
  'req.query.key',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["webhook-signature"]',
  '*.headers["webhook-signature"]',
  'signature',
  '*.signature',
];

export interface LoggerOptions {
  service: string;
  level?: string;
  destination?: pino.DestinationStream;
}

/**
 * Standard output for a service process, written off the main thread: lines logged while a
 * write is under way go out together in the next one (one system call for many lines under
 * load, instead of one per line), and whatever is pending is written out when the process exits.
 */
export function stdoutDestination(): pino.DestinationStream {
  const destination = pino.destination({ dest: 1, sync: false });
  process.once('exit', () => {
    try {
      destination.flushSync();
    } catch {
      // stdout already closed (a pipe whose reader went away): nothing left to save.
    }
  });
  return destination;
}

export function createLogger({ service, level, destination }: LoggerOptions): Logger {
  return pino(
    {
      level: level ?? process.env.LOG_LEVEL ?? 'info',
      base: { service },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type ErrorReporter = (context: Record<string, unknown>, error: unknown, message: string) => void;

/** How often an error that keeps repeating (an outage's reconnects) is logged again at most. */
export const REPEAT_INTERVAL_MS = 10_000;

/** An error as a log field: its kind, code and message, without a stack for every repeat. */
function errorFields(error: unknown) {
  const err = error as { name?: string; message?: string; code?: string };
  return { type: err?.name, code: err?.code, message: err?.message ?? String(error) };
}

/**
 * Structured, rate-limited error lines for errors that repeat while a dependency is down
 * (every reconnect of every Redis client, queue and worker): the first of a kind is logged at
 * once, repeats at most once per `intervalMs` with how many were folded in.
 */
export function errorReporter(logger: Pick<Logger, 'error' | 'warn'>, options: { intervalMs?: number; level?: 'error' | 'warn' } = {}): ErrorReporter {
  const intervalMs = options.intervalMs ?? REPEAT_INTERVAL_MS;
  const level = options.level ?? 'error';
  const seen = new Map<string, { at: number; suppressed: number }>();
  return (context, error, message) => {
    const err = error as { message?: string; code?: string };
    const kind = `${message}|${JSON.stringify(context)}|${err?.code ?? ''}|${err?.message ?? String(error)}`;
    const now = Date.now();
    const last = seen.get(kind);
    if (last && now - last.at < intervalMs) {
      last.suppressed += 1;
      return;
    }
    if (seen.size > 1_000) seen.clear();
    seen.set(kind, { at: now, suppressed: 0 });
    logger[level]({ ...context, err: errorFields(error), ...(last?.suppressed ? { repeated: last.suppressed } : {}) }, message);
  };
}

export interface OutageLog {
  /** An error from one of the dependency's users (a connection, a queue, a worker, a request). */
  report(source: string, error: unknown): void;
  /** The dependency answers again: says so once, with what was folded since the last line. */
  recovered(): void;
  /** Whether an outage is being told (from its first error until `recovered`). */
  readonly down: boolean;
}

const MAX_SOURCES = 20;

/**
 * A dependency's outage told as a few lines, however many clients, queues and workers fail and
 * retry meanwhile: `<dependency> unavailable` at its first error, `<dependency> still
 * unavailable` at most once per interval while errors go on (how many, from which sources, the
 * latest), `<dependency> available again` when it answers. `isUp` lets an interval with no
 * error end the outage too (a recovery no event announced).
 */
export function outageLog(
  logger: Pick<Logger, 'error' | 'info'>,
  options: {
    dependency: string;
    intervalMs?: number;
    isUp?: () => boolean;
    /** Told on the outage's lines, in words: the variable that names the dependency, its address, what to do. */
    about?: { variable: string; address: string; hint: string };
  },
): OutageLog {
  const { dependency } = options;
  const about = options.about ?? {};
  const intervalMs = options.intervalMs ?? REPEAT_INTERVAL_MS;
  let since = 0;
  let down = false;
  let folded = 0;
  let sources = new Set<string>();
  let latest: unknown;
  let timer: NodeJS.Timeout | undefined;

  const endInterval = () => {
    timer = undefined;
    if (folded === 0) {
      if (options.isUp?.()) recovered();
      else arm();
      return;
    }
    logger.error(
      { dependency, ...about, down_ms: Date.now() - since, errors: folded, sources: [...sources].sort(), err: errorFields(latest) },
      `${dependency} still unavailable`,
    );
    folded = 0;
    sources = new Set();
    arm();
  };
  const arm = () => {
    timer = setTimeout(endInterval, intervalMs);
    timer.unref();
  };
  function recovered() {
    if (!down) return;
    clearTimeout(timer);
    timer = undefined;
    logger.info({ dependency, ...about, down_ms: Date.now() - since, ...(folded > 0 ? { errors: folded } : {}) }, `${dependency} available again`);
    down = false;
  }

  return {
    report(source, error) {
      if (!down) {
        down = true;
        since = Date.now();
        folded = 0;
        sources = new Set();
        logger.error({ dependency, ...about, source, err: errorFields(error) }, `${dependency} unavailable`);
        arm();
        return;
      }
      folded += 1;
      latest = error;
      if (sources.size < MAX_SOURCES) sources.add(source);
    },
    recovered,
    get down() {
      return down;
    },
  };
}

// A parameter whose name says it holds a credential, and values shaped like one whatever
// their name: Trackway's postback keys (pk_…) and signing secrets (whsec_…), JWTs (eyJ….….).
const SECRET_NAME = /key|secret|token|passw|signature|auth|session|jwt|credential/i;
const SECRET_VALUE = /(?:pk|whsec|sk)_[A-Za-z0-9+/_=-]{12,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

const decodeLoosely = (text: string) => {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
};

/**
 * A request URL for logs: every query parameter named like a credential, or whose value is
 * shaped like one (under any name, e.g. `api_key=pk_…` or `x=whsec_…`), becomes `[redacted]`;
 * so does a path segment shaped like one (the key of `/postback/{key}`). `known` secrets (an
 * advertiser's own key and signing secrets) are taken out whatever their shape.
 */
export function redactUrl(url: string | undefined, known: readonly string[] = []): string | undefined {
  if (!url) return url;
  /** Whether decoded text holds a secret's shape or a known secret. */
  const holdsSecret = (decoded: string) => SECRET_VALUE.test(decoded) || known.some((k) => decoded.includes(k));
  const secret = (text: string) => holdsSecret(decodeLoosely(text));
  const at = url.indexOf('?');
  const path = redactPath(at === -1 ? url : url.slice(0, at), secret);
  if (at === -1) return path;
  const parts = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq === -1 ? pair : pair.slice(0, eq);
      const value = eq === -1 ? '' : pair.slice(eq + 1);
      const decodedName = decodeLoosely(name);
      const nameIsSecret = holdsSecret(decodedName);
      return nameIsSecret || SECRET_NAME.test(decodedName) || secret(value) ? `${nameIsSecret ? '[redacted]' : name}=[redacted]` : pair;
    });
  return `${path}?${parts.join('&')}`;
}

function redactPath(path: string, secret: (text: string) => boolean): string {
  if (!secret(path)) return path;
  return path
    .split('/')
    .map((segment) => (secret(segment) ? '[redacted]' : segment))
    .join('/');
}
