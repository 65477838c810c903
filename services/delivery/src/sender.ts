import http from 'node:http';
import https from 'node:https';
import { type AddressPolicy, SsrfBlockedError, checkLiteralHost, guardedLookup } from '@trackway/webhooks';

export const MAX_RESPONSE_BYTES = 4096;

export type ErrorClass = 'timeout' | 'dns' | 'refused' | 'reset' | 'tls' | 'ssrf_blocked' | 'network';

export interface AttemptResult {
  statusCode: number | null;
  error: ErrorClass | null;
  responseBody: string | null;
  durationMs: number;
  /** From a Retry-After header on 429/503, in milliseconds. */
  retryAfterMs: number | null;
}

export interface SendOptions {
  timeoutMs: number;
  policy: AddressPolicy;
}

// EPROTO is OpenSSL's "wrong version number": https spoken to a plain-http port.
const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_|HOSTNAME_MISMATCH|ERR_OSSL|EPROTO$)/;

export function classifyError(error: unknown): ErrorClass {
  const err = error as { code?: string; name?: string };
  if (error instanceof SsrfBlockedError || err.code === 'ESSRFBLOCKED') return 'ssrf_blocked';
  if (err.name === 'AbortError' || err.name === 'TimeoutError' || err.code === 'ABORT_ERR' || err.code === 'ETIMEDOUT') return 'timeout';
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' || err.code === 'EAI_NONAME') return 'dns';
  if (err.code === 'ECONNREFUSED') return 'refused';
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'UND_ERR_SOCKET') return 'reset';
  if (err.code && TLS_CODES.test(err.code)) return 'tls';
  return 'network';
}

// Retry-After is delay-seconds or an HTTP-date in one of the three forms RFC 9110 §5.6.7 asks
// recipients to accept; anything else is ignored, not guessed at by a lenient date parser.
const HTTP_DATE = [
  /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, // IMF-fixdate
  /^[A-Z][a-z]+, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/, // RFC 850
  /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/, // asctime
];

export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  const trimmed = value?.trim();
  if (!trimmed) return null;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!HTTP_DATE.some((form) => form.test(trimmed))) return null;
  // asctime carries no zone: it is GMT.
  const at = Date.parse(/GMT$/.test(trimmed) ? trimmed : `${trimmed} GMT`);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * One POST attempt: the address checked at connect time, a total deadline, no redirects
 * followed (a 3xx is not a success), and at most 4 KiB of the response kept.
 */
export function send(url: string, body: string, headers: Record<string, string>, options: SendOptions): Promise<AttemptResult> {
  const started = performance.now();
  const done = (partial: Omit<AttemptResult, 'durationMs'>): AttemptResult => ({ ...partial, durationMs: Math.round(performance.now() - started) });
  const failure = (error: unknown) => done({ statusCode: null, error: classifyError(error), responseBody: null, retryAfterMs: null });

  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
      checkLiteralHost(target.hostname, options.policy);
    } catch (error) {
      resolve(failure(error));
      return;
    }
    const client = target.protocol === 'https:' ? https : http;
    const signal = AbortSignal.timeout(options.timeoutMs);
    let req: http.ClientRequest;
    try {
      req = client.request(
      target,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup: guardedLookup(options.policy),
        signal,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (chunk: Buffer) => {
          if (kept < MAX_RESPONSE_BYTES) {
            const slice = chunk.subarray(0, MAX_RESPONSE_BYTES - kept);
            chunks.push(slice);
            kept += slice.length;
          }
          // Beyond 4 KiB the body is dropped: we stop reading instead of buffering it.
          if (kept >= MAX_RESPONSE_BYTES) res.destroy();
        });
        const finish = () => {
          const status = res.statusCode ?? 0;
          resolve(
            done({
              statusCode: status,
              error: null,
              // Stored in a text column: NUL and broken UTF-8 (a multi-byte character cut at 4 KiB)
              // become U+FFFD instead of failing the insert.
              responseBody: Buffer.concat(chunks).toString('utf8').replace(/\u0000/g, '\uFFFD').toWellFormed(),
              retryAfterMs: status === 429 || status === 503 ? parseRetryAfter(res.headers['retry-after']) : null,
            }),
          );
        };
        res.once('end', finish);
        res.once('close', finish);
        res.once('error', () => finish());
      },
    );
    } catch (error) {
      // Node refuses some header values synchronously (ERR_INVALID_CHAR): a failed attempt, not a crash.
      resolve(failure(error));
      return;
    }
    req.once('error', (error) => resolve(failure(signal.aborted ? Object.assign(new Error('timeout'), { name: 'TimeoutError' }) : error)));
    req.end(body);
  });
}
