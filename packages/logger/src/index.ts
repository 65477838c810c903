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

/**
 * Structured, rate-limited error lines for errors that repeat while a dependency is down
 * (every reconnect of every Redis client, queue and worker): the first of a kind is logged at
 * once, repeats at most once per `intervalMs` with how many were folded in.
 */
export function errorReporter(logger: Pick<Logger, 'error' | 'warn'>, options: { intervalMs?: number; level?: 'error' | 'warn' } = {}): ErrorReporter {
  const intervalMs = options.intervalMs ?? 10_000;
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
    const line = {
      ...context,
      err: { type: (error as Error)?.name, code: err?.code, message: err?.message ?? String(error) },
      ...(last?.suppressed ? { repeated: last.suppressed } : {}),
    };
    logger[level](line, message);
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
 * so does a path segment shaped like one (the key of `/postback/{key}`).
 */
export function redactUrl(url: string | undefined): string | undefined {
  if (!url) return url;
  const at = url.indexOf('?');
  const path = redactPath(at === -1 ? url : url.slice(0, at));
  if (at === -1) return path;
  const parts = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq === -1 ? pair : pair.slice(0, eq);
      const value = eq === -1 ? '' : pair.slice(eq + 1);
      const decodedName = decodeLoosely(name);
      const nameIsSecret = SECRET_VALUE.test(decodedName);
      const secret = nameIsSecret || SECRET_NAME.test(decodedName) || SECRET_VALUE.test(decodeLoosely(value));
      return secret ? `${nameIsSecret ? '[redacted]' : name}=[redacted]` : pair;
    });
  return `${path}?${parts.join('&')}`;
}

function redactPath(path: string): string {
  if (!SECRET_VALUE.test(decodeLoosely(path))) return path;
  return path
    .split('/')
    .map((segment) => (SECRET_VALUE.test(decodeLoosely(segment)) ? '[redacted]' : segment))
    .join('/');
}
