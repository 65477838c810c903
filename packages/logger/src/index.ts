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
    const line = { ...context, err: { type: (error as Error)?.name, code: err?.code, message: err?.message ?? String(error) }, ...(last?.suppressed ? { repeated: last.suppressed } : {}) };
    logger[level](line, message);
  };
}
