import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '@trackway/config';
import { envelope } from '@trackway/http';
import { STATIC_SECURITY_HEADERS } from './security';

/** What every Trackway HTTP server allows a client: see HTTP_* in packages/config. */
export interface HttpLimits {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export const httpLimits = (
  config: Pick<Config, 'HTTP_REQUEST_TIMEOUT' | 'HTTP_HEADERS_TIMEOUT' | 'HTTP_KEEP_ALIVE_TIMEOUT' | 'HTTP_MAX_CONNECTIONS'>,
): HttpLimits => ({
  requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT,
  headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT,
  keepAliveTimeoutMs: config.HTTP_KEEP_ALIVE_TIMEOUT,
  maxConnections: config.HTTP_MAX_CONNECTIONS,
});

/**
 * The server options for these limits. Node enforces the header and request timeouts only when
 * it sweeps its connections, every `connectionsCheckingInterval` (30 s by default, which let a
 * slow body hold a connection for 5½ minutes): sweep often enough that a 408 comes at most a
 * second (or half the timeout) late. A headers limit above the request's would never fire
 * before it (and Node refuses one), so it is capped there.
 */
export function serverOptions(limits: HttpLimits) {
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  return {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeout / 2))),
  };
}

export function applyConnectionCap(server: Server, limits: HttpLimits): void {
  // Connections past the cap are closed as they are accepted, before any byte is read.
  server.maxConnections = limits.maxConnections;
}

// Node's own answers to a client error (what it writes when nobody listens for `clientError`),
// with the error envelope every other 4xx carries.
const CLIENT_ERRORS: Record<string, [number, string, string, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'request_timeout', 'The request was not received in time.'],
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'headers_too_large', 'The request headers are too large.'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Payload Too Large', 'payload_too_large', 'The chunk extensions are too large.'],
};
const MALFORMED: [number, string, string, string] = [400, 'Bad Request', 'malformed_request', 'The request is not valid HTTP.'];

function rawAnswer(status: number, reason: string, code: string, message: string): string {
  const body = JSON.stringify(envelope(code, message));
  const headers = {
    ...STATIC_SECURITY_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
  };
  return `HTTP/1.1 ${status} ${reason}\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n${body}`;
}
const ANSWERS = new Map(Object.entries(CLIENT_ERRORS).map(([error, answer]) => [error, rawAnswer(...answer)]));
const MALFORMED_ANSWER = rawAnswer(...MALFORMED);

/**
 * Answers a request Node refused before a handler answered it (a timeout, malformed HTTP) as
 * Node would, but with the envelope. Nothing is written once a response has begun on the
 * connection, or when the request was already answered and only the rest of its body is late
 * (Node's default would send that client a second, unasked-for answer).
 */
export function answerClientErrors(server: Server): void {
  const latest = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => latest.set(req.socket, { req, res }));
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const last = latest.get(socket);
    const answered = last?.res.headersSent && (!last.res.writableFinished || !last.req.complete);
    if (error.code !== 'ECONNRESET' && socket.writable && !answered) socket.write(ANSWERS.get(error.code ?? '') ?? MALFORMED_ANSWER);
    socket.destroy();
  });
}
