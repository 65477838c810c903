import { type AddressPolicy, SsrfBlockedError, checkLiteralHost, guardedLookup } from '@trackway/webhooks';
import { Agent, buildConnector } from 'undici';

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

// EPROTO is OpenSSL's "wrong version number": https spoken to a plain-http port.
const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_|HOSTNAME_MISMATCH|ERR_OSSL|EPROTO$)/;
const TIMEOUT_CODES = new Set(['ABORT_ERR', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export function classifyError(error: unknown): ErrorClass {
  const err = error as { code?: string; name?: string };
  if (error instanceof SsrfBlockedError || err.code === 'ESSRFBLOCKED') return 'ssrf_blocked';
  if (err.name === 'AbortError' || err.name === 'TimeoutError' || (err.code && TIMEOUT_CODES.has(err.code))) return 'timeout';
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

export interface Sender {
  /**
   * One attempt (a POST of `body`, or a GET when `method` says so and `body` is null): a total
   * deadline (connect to last byte kept), no redirects followed (a 3xx is not a success), at
   * most 4 KiB of the response kept. Never rejects.
   */
  send(url: string, body: string | null, headers: Record<string, string>, options: { timeoutMs: number; method?: 'GET' | 'POST' }): Promise<AttemptResult>;
  close(): Promise<void>;
}

/**
 * A keep-alive sender (undici Agent: a pool of connections per origin). The SSRF guard runs on
 * every new connection, in the connector: an address literal is checked there, a name is
 * resolved by the guarded lookup, which hands the socket exactly the address it checked. A
 * reused connection goes to an address that was checked when it opened, so DNS rebinding has
 * no window. One sender serves one policy: connections are never shared across policies.
 */
export function createSender(policy: AddressPolicy, options: { connectionsPerOrigin?: number } = {}): Sender {
  const connector = buildConnector({ lookup: guardedLookup(policy) });
  const agent = new Agent({
    connect(options, callback) {
      try {
        checkLiteralHost(options.hostname, policy);
      } catch (error) {
        callback(error as Error, null);
        return;
      }
      connector(options, callback);
    },
    // The deadline is the per-attempt AbortSignal; undici's own timers must not cut it shorter.
    headersTimeout: 0,
    bodyTimeout: 0,
    // A bound keeps undici's pool reusing its connections (unbounded, it opens spare ones
    // eagerly). The worker passes DELIVERY_MAX_IN_FLIGHT, which its requests never exceed, so
    // nothing queues behind it.
    connections: options.connectionsPerOrigin ?? 64,
  });

  async function send(
    url: string,
    body: string | null,
    headers: Record<string, string>,
    options: { timeoutMs: number; method?: 'GET' | 'POST' },
  ): Promise<AttemptResult> {
    const started = performance.now();
    const done = (partial: Omit<AttemptResult, 'durationMs'>): AttemptResult => ({ ...partial, durationMs: Math.round(performance.now() - started) });
    const signal = AbortSignal.timeout(options.timeoutMs);
    try {
      const target = new URL(url);
      const res = await agent.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: options.method ?? 'POST',
        headers: body === null ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        body: body ?? undefined,
        signal,
      });
      const chunks: Buffer[] = [];
      let kept = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const slice = chunk.subarray(0, MAX_RESPONSE_BYTES - kept);
        chunks.push(slice);
        kept += slice.length;
        // Beyond 4 KiB the body is dropped: leaving the loop destroys it (and that connection)
        // instead of reading the rest.
        if (kept >= MAX_RESPONSE_BYTES) break;
      }
      const retryAfter = res.headers['retry-after'];
      return done({
        statusCode: res.statusCode,
        error: null,
        // Stored in a text column: NUL and broken UTF-8 (a multi-byte character cut at 4 KiB)
        // become U+FFFD instead of failing the insert.
        responseBody: Buffer.concat(chunks)
          .toString('utf8')
          .replace(/\u0000/g, '\uFFFD'),
        retryAfterMs: res.statusCode === 429 || res.statusCode === 503 ? parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter) : null,
      });
    } catch (error) {
      // An unparsable URL, a header value undici refuses, a refused connection: a failed
      // attempt, not a crash. Whatever ends the attempt after the deadline is the deadline.
      return done({ statusCode: null, error: signal.aborted ? 'timeout' : classifyError(error), responseBody: null, retryAfterMs: null });
    }
  }

  return { send, close: () => agent.close() };
}
