// Shared machinery of the fuzz tests (test/fuzz-*.test.ts): the app on a real local port, a
// keep-alive undici client and raw sockets for bytes undici refuses to send, the properties every
// answer must have, and the pieces of hostile input both services are fed.
import { isUtf8 } from 'node:buffer';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { RequestListener, Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { envSchema } from '@trackway/config';
import { httpLimits, listen } from '@trackway/runtime';
import fc from 'fast-check';
import { Agent } from 'undici';

/** Why a request must not be answered 2xx/3xx. */
export interface Refusal {
  why: string;
}

export interface FuzzRequest {
  /** The generator that made it, for the counts printed at the end. */
  kind: string;
  method: string;
  /** The request target exactly as sent; a char U+0080–U+00FF is sent as that one raw byte. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Bytes written as they are on a socket of their own (malformed HTTP undici refuses to send). */
  raw?: Buffer;
  /** The raw request may legitimately go unanswered (e.g. a body cut short, then the socket closed). */
  mayGoUnanswered?: boolean;
  refuse?: Refusal[];
  /** A 3xx is a refusal too (a redirect to a login page), not an acceptance. */
  redirectIsRefusal?: boolean;
  /** Checked on a 2xx: fields the queued job must carry exactly as sent. */
  faithful?: Record<string, string>;
}

export interface FuzzAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface Served {
  origin: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** Serves a request listener on a real local port, as the services' main does (runtime's listen). */
export async function serve(app: RequestListener): Promise<Served> {
  const server = await listen(app, 0, httpLimits(envSchema.parse({})), '127.0.0.1');
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Sends fuzz requests: over a bounded pool of keep-alive connections, or raw ones over a socket each. */
export function createClient(served: Served, options: { connections?: number } = {}) {
  const agent = new Agent({ connections: options.connections ?? 8, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: 15_000, bodyTimeout: 15_000 });
  let sent = 0;
  return {
    /** How many generated requests were sent (the counts the test names state). */
    get sent() {
      return sent;
    },
    async send(req: FuzzRequest): Promise<FuzzAnswer[] | Error> {
      sent++;
      if (req.raw) return rawExchange(served.port, req.raw, { halfClose: req.mayGoUnanswered });
      // What undici refuses to send (a space or a char past U+00FF in the target, a control byte
      // in a header) goes out over a socket of its own, byte for byte. (A request undici rejects
      // can also leave its pool stuck, so none is ever given to it.)
      if (!undiciCanSend(req)) return rawExchange(served.port, asRawBytes(req));
      try {
        const res = await agent.request({ origin: served.origin, path: req.path, method: req.method, headers: req.headers, body: req.body });
        const body = Buffer.from(await res.body.arrayBuffer());
        return [{ status: res.statusCode, headers: res.headers, body }];
      } catch (error) {
        return error as Error;
      }
    },
    close: () => agent.close(),
  };
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Headers undici sets itself or refuses (see undici's lib/core/request.js).
const UNDICI_OWN = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect']);

function undiciCanSend(req: FuzzRequest): boolean {
  if (!TOKEN.test(req.method) || req.method === 'CONNECT') return false;
  if (!/^[\u0021-\u00ff]+$/.test(req.path) || !(req.path.startsWith('/') || /^https?:\/\//.test(req.path))) return false;
  return Object.entries(req.headers).every(
    ([name, value]) => TOKEN.test(name) && !UNDICI_OWN.has(name.toLowerCase()) && /^[\t\x20-\x7e\x80-\xff]*$/.test(value),
  );
}

/** The request as the bytes of one HTTP/1.1 request on a connection of its own. */
function asRawBytes(req: FuzzRequest): Buffer {
  const headers = Object.entries(req.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const length = req.body ? `Content-Length: ${req.body.length}\r\n` : '';
  return Buffer.concat([
    Buffer.from(`${req.method} ${req.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}${length}Connection: close\r\n\r\n`, 'latin1'),
    req.body ?? Buffer.alloc(0),
  ]);
}

/**
 * Writes bytes on a fresh socket and parses every HTTP answer that comes back until the server
 * closes it. `halfClose` ends the client's side at once, for requests the server would otherwise
 * wait on (a body cut short): Node then drops whatever the request had not answered yet, as for any
 * client that went away, so only those requests are sent that way.
 */
export function rawExchange(port: number, bytes: Buffer, options: { halfClose?: boolean; timeoutMs?: number } = {}): Promise<FuzzAnswer[] | Error> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(bytes);
      if (options.halfClose) socket.end();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(parseAnswers(Buffer.concat(chunks)));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswers(Buffer.concat(chunks)));
    });
  });
}

function parseAnswers(data: Buffer): FuzzAnswer[] {
  const answers: FuzzAnswer[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end === -1) break;
    const lines = data.subarray(at, end).toString('latin1').split('\r\n');
    const status = /^HTTP\/\d\.\d (\d{3})/.exec(lines[0])?.[1];
    if (!status) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let bodyStart = end + 4;
    let body: Buffer;
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', bodyStart);
        if (lineEnd === -1) break;
        const size = Number.parseInt(data.subarray(bodyStart, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) break;
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else {
      const length = headers['content-length'] === undefined ? 0 : Number(headers['content-length']);
      body = data.subarray(bodyStart, bodyStart + length);
      bodyStart += length;
    }
    // An interim answer (100 Continue) precedes the real one.
    if (Number(status) >= 200) answers.push({ status: Number(status), headers, body });
    at = bodyStart;
  }
  return answers;
}

/** The request, complete enough to reproduce it (bodies up to 4 KiB shown, longer ones summarised). */
export function describeRequest(req: FuzzRequest): string {
  const bytes = (b: Buffer) => {
    const shown = b.length > 4096 ? b.subarray(0, 4096) : b;
    const text = isUtf8(shown) ? `utf8:${JSON.stringify(shown.toString('utf8'))}` : `hex:${shown.toString('hex')}`;
    return b.length > 4096 ? `${text}… (${b.length} bytes in all)` : text;
  };
  if (req.raw) return `[${req.kind}] raw bytes over a socket: ${bytes(req.raw)}`;
  const path = req.path.length > 4096 ? `${JSON.stringify(req.path.slice(0, 4096))}… (${req.path.length} chars)` : JSON.stringify(req.path);
  return `[${req.kind}] ${req.method} ${path} (latin1: one byte per char) headers=${JSON.stringify(req.headers)}${req.body ? ` body=${bytes(req.body)}` : ''}`;
}

/**
 * Writes the failing request in full (bodies as base64) where the error message says, for a
 * repro beyond the 4 KiB the message shows; returns the message with that path.
 */
export function withFullRequest(name: string, message: string, req: FuzzRequest): string {
  const file = path.join(os.tmpdir(), `${name}-failure.json`);
  writeFileSync(file, JSON.stringify({ ...req, body: req.body?.toString('base64'), raw: req.raw?.toString('base64') }, null, 2));
  return `${message}\n  (the whole request, bodies in base64: ${file})`;
}

const describeAnswer = (a: FuzzAnswer) =>
  `${a.status} ${JSON.stringify(a.headers['content-type'] ?? null)} ${JSON.stringify(a.body.subarray(0, 1024).toString('utf8'))}`;

export interface Tally {
  statuses: Record<string, number>;
  kinds: Record<string, number>;
}
export const newTally = (): Tally => ({ statuses: {}, kinds: {} });

const isJson = (a: FuzzAnswer) => /^application\/([\w.+-]+\+)?json\b/i.test(String(a.headers['content-type'] ?? ''));

/**
 * The answer, before any app code runs, to bytes Node's HTTP parser refuses: the servers'
 * clientError handler (runtime's answerClientErrors) writes the envelope with code
 * malformed_request / request_timeout / headers_too_large and closes the connection; or Node's
 * own answers without a body: 400 to an HTTP/1.1 request without Host, 417 to an Expect other
 * than 100-continue.
 */
export const isParserAnswer = (req: FuzzRequest, a: FuzzAnswer) =>
  ([400, 408, 413, 431].includes(a.status) &&
    a.headers.connection === 'close' &&
    // (The answer to a HEAD is read without its body.)
    ((req.method === 'HEAD' && a.body.length === 0 && isJson(a)) ||
      /^\{"error":\{"code":"(malformed_request|request_timeout|headers_too_large|payload_too_large)"/.test(a.body.toString('utf8')))) ||
  (a.body.length === 0 &&
    a.headers['content-type'] === undefined &&
    ((a.status === 400 && a.headers.connection === 'close' && !/\r\nhost:/i.test(req.raw?.toString('latin1') ?? '')) ||
      (a.status === 417 && /^expect: (?!100-continue\r)/im.test(req.raw?.toString('latin1') ?? ''))));

/** Whether `overlong` encoding writes anything overlong for these bytes (it re-encodes only ASCII that is not unreserved). */
export const writesOverlong = (bytes: Buffer) => [...bytes].some((b) => b < 0x80 && !UNRESERVED.test(String.fromCharCode(b)));

/** `{"error": {"code": string, "message": string, "fields"?: {name: string}, "request_id"?: string}}` and nothing else. */
export function envelopeProblem(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body is not a JSON object';
  if (Object.keys(body).join() !== 'error') return `top-level keys ${JSON.stringify(Object.keys(body))}, expected ["error"]`;
  const error = (body as { error: unknown }).error;
  if (typeof error !== 'object' || error === null || Array.isArray(error)) return '"error" is not an object';
  const { code, message, fields, request_id: requestId, ...rest } = error as Record<string, unknown>;
  if (typeof code !== 'string' || code === '') return '"error.code" is not a non-empty string';
  if (typeof message !== 'string' || message === '') return '"error.message" is not a non-empty string';
  if (requestId !== undefined && (typeof requestId !== 'string' || requestId === '')) return '"error.request_id" is not a non-empty string';
  if (Object.keys(rest).length > 0) return `unexpected keys in "error": ${Object.keys(rest).join(', ')}`;
  if (fields !== undefined) {
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return '"error.fields" is not an object';
    if (Object.values(fields).some((v) => typeof v !== 'string')) return '"error.fields" has a value that is not a string';
  }
  return null;
}

/**
 * The properties every answer has: one arrived; no status ≥ 500 (Redis and Postgres are up, so
 * not even a 503); a 4xx is the JSON envelope (or Node's own parser answer to bytes that are not
 * HTTP); a JSON body parses; a request that must be refused is not answered 2xx/3xx. Returns the
 * violation, or null.
 */
export function answerProblem(
  req: FuzzRequest,
  result: FuzzAnswer[] | Error,
  tally: Tally,
  options: { nonEnvelope?: (req: FuzzRequest, a: FuzzAnswer) => boolean } = {},
): string | null {
  tally.kinds[req.kind] = (tally.kinds[req.kind] ?? 0) + 1;
  const fail = (why: string, a?: FuzzAnswer) => `${why}\n  request: ${describeRequest(req)}${a ? `\n  answer: ${describeAnswer(a)}` : ''}`;
  if (result instanceof Error) return fail(`no answer: ${result.name}: ${result.message} (${(result as { code?: string }).code ?? ''})`);
  if (result.length === 0) return req.mayGoUnanswered ? null : fail('no answer (the connection closed without an HTTP response)');
  for (const a of result) {
    tally.statuses[a.status] = (tally.statuses[a.status] ?? 0) + 1;
    if (a.status >= 500) return fail(`answered ${a.status}`, a);
    const head = req.method === 'HEAD' && !req.raw;
    let parsed: unknown;
    if (isJson(a) && !head) {
      try {
        parsed = JSON.parse(a.body.toString('utf8'));
      } catch {
        return fail('a JSON content type with a body that is not JSON', a);
      }
    }
    if (a.status >= 400 && !head) {
      const problem = isJson(a) ? envelopeProblem(parsed) : isParserAnswer(req, a) ? null : 'not JSON';
      if (problem && !options.nonEnvelope?.(req, a)) return fail(`a ${a.status} without the error envelope: ${problem}`, a);
    }
  }
  const first = result[0];
  const accepted = first.status < (req.redirectIsRefusal ? 300 : 400);
  if (accepted && req.refuse && req.refuse.length > 0) {
    return fail(`answered ${first.status} although it must be refused: ${req.refuse.map((r) => r.why).join('; ')}`, first);
  }
  return null;
}

/** Records what escapes to the process (an uncaught exception would otherwise kill the jest worker). */
export function watchProcess() {
  const escaped: string[] = [];
  const onError = (error: unknown) => void escaped.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return {
    escaped,
    stop() {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    },
  };
}

/**
 * The fuzz loop both files share: `runs` batches of `batch` generated requests, sent at once
 * over the client's bounded pool; every answer checked against the universal properties, then
 * `check` (request-specific ones); /healthz after every batch; nothing may escape to the process.
 * Returns the tally and the seconds it took.
 */
export async function fuzzInBatches(options: {
  name: string;
  client: ReturnType<typeof createClient>;
  arb: fc.Arbitrary<FuzzRequest>;
  runs: number;
  batch: number;
  check?: (req: FuzzRequest, answer: FuzzAnswer) => Promise<string | null> | string | null;
  /** The order in which a batch's answers are checked (default: as sent). */
  order?: (batch: FuzzRequest[]) => number[];
  nonEnvelope?: (req: FuzzRequest, a: FuzzAnswer) => boolean;
  /** Where the counts go. */
  tally?: Tally;
}): Promise<{ tally: Tally; seconds: number }> {
  const { name, client } = options;
  const tally = options.tally ?? newTally();
  const watch = watchProcess();
  const started = Date.now();
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(options.arb, { minLength: options.batch, maxLength: options.batch }), async (batch) => {
        const answers = await Promise.all(batch.map((req) => client.send(req)));
        for (const i of options.order?.(batch) ?? batch.map((_, j) => j)) {
          const req = batch[i];
          const result = answers[i];
          const problem = answerProblem(req, result, tally, { nonEnvelope: options.nonEnvelope });
          if (problem) throw new Error(withFullRequest(name, problem, req));
          if (result instanceof Error || result.length === 0 || req.raw || !options.check) continue;
          const specific = await options.check(req, result[0]);
          if (specific) throw new Error(withFullRequest(name, `${specific}\n  request: ${describeRequest(req)}\n  answer: ${describeAnswer(result[0])}`, req));
        }
        const health = await client.send({ kind: 'healthz', method: 'GET', path: '/healthz', headers: {} });
        if (health instanceof Error || health[0]?.status !== 200)
          throw new Error(`/healthz did not answer 200 after the batch: ${health instanceof Error ? health.message : health[0]?.status}`);
        if (watch.escaped.length > 0) throw new Error(`escaped to the process (it would have died): ${watch.escaped[0]}`);
      }),
      fuzzParameters(options.runs),
    );
  } finally {
    watch.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `${name}: ${options.runs * options.batch} generated requests (+${options.runs} /healthz checks) in ${seconds.toFixed(1)} s\n  by kind ${JSON.stringify(tally.kinds)}\n  by status ${JSON.stringify(tally.statuses)}`,
  );
  return { tally, seconds };
}

/** FUZZ_SEED reproduces a run (fast-check prints the seed of a failing one). */
export const fuzzParameters = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns,
  ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}),
  // No shrinking: requests have side effects (rows, jobs) and a batch is 20 of them; the error
  // names the one request that failed, exactly as it was sent.
  endOnFailure: true,
  interruptAfterTimeLimit: 150_000,
  markInterruptAsFailure: true,
});

// ---------------------------------------------------------------------------------------------
// Hostile pieces of input.

export const HOSTILE_STRINGS = [
  '',
  ' ',
  '  x  ',
  '-1',
  '-0',
  '0',
  '00',
  '1e9',
  '1E-7',
  '0x1F',
  'NaN',
  'Infinity',
  '-Infinity',
  '1,5',
  '1 000',
  '٣',
  '１２',
  '99999999999999.9999',
  '100000000000000',
  '0.00001',
  '1.',
  '.5',
  '+1',
  '1e400',
  '9'.repeat(400),
  '{click_id}',
  '${click_id}',
  '{{order_id}}',
  '[object Object]',
  'null',
  'undefined',
  'true',
  '[]',
  '{}',
  "' OR '1'='1",
  '"; DROP TABLE conversions; --',
  '<script>alert(1)</script>',
  '../../../etc/passwd',
  '..\\..\\win.ini',
  '\u0000',
  'a\u0000b',
  '\r\n',
  'x\r\nSet-Cookie: a=b',
  '\t',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\u2028',
  '\uFEFF',
  '\uFFFD',
  '\uFFFF',
  'é',
  'Müller',
  '日本語',
  '𝒳',
  '🙂',
  'e\u0301',
  '\u202Eabc',
  'ß',
  'İ',
  'ǅ',
  'http://169.254.169.254/latest/meta-data/',
  'javascript:alert(1)',
  '%',
  '%%',
  '%25',
  '%00',
  '%zz',
  '+',
  '&',
  '=',
  '#',
  '?',
  '/',
  'A'.repeat(64),
  'A'.repeat(65),
  'A'.repeat(255),
  'A'.repeat(256),
  'A'.repeat(5000),
  '__proto__',
  'constructor',
  'hasOwnProperty',
  'toString',
  'prototype',
  'pk_0000000000000000000000000000000',
  'whsec_AAAA',
  'Bearer x',
];

/** Byte sequences that are not UTF-8: a lone continuation, overlongs, surrogates, past U+10FFFF, bare lead bytes. */
export const INVALID_UTF8 = [
  [0xfc],
  [0xff],
  [0xfe],
  [0x80],
  [0xc0, 0xaf],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xc3],
  [0xe2, 0x82],
].map((b) => Buffer.from(b));

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 3, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 16 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 16 }) },
  { weight: 1, arbitrary: fc.integer({ min: 256, max: 8_000 }).map((n) => 'x'.repeat(n)) },
);

/** Bytes of a value: hostile text as UTF-8, or bytes that are not UTF-8 at all. */
export const hostileBytes: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 6, arbitrary: hostileString.map((s) => Buffer.from(s, 'utf8')) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.string({ maxLength: 6 }), fc.constantFrom(...INVALID_UTF8), fc.string({ maxLength: 6 }))
      .map(([a, bad, b]) => Buffer.concat([Buffer.from(a), bad, Buffer.from(b)])),
  },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 24 }).map((a) => Buffer.from(a)) },
);

/** How a byte string is written into a URL: the ways clients do it right and wrong. */
export type UrlEncoding = 'percent' | 'percent-lower' | 'plus' | 'raw' | 'broken' | 'double' | 'overlong';
export const urlEncoding: fc.Arbitrary<UrlEncoding> = fc.constantFrom(
  'percent',
  'percent',
  'percent',
  'percent-lower',
  'plus',
  'raw',
  'broken',
  'double',
  'overlong',
);

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Writes bytes as a query component; a char U+0080–U+00FF in the result goes out as that raw byte. */
export function encodeComponent(bytes: Buffer, how: UrlEncoding, breakAt = 0): string {
  const pct = (b: number) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`;
  let out = '';
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    if (UNRESERVED.test(ch)) out += ch;
    else if (how === 'plus' && b === 0x20) out += '+';
    else if (how === 'raw' && b > 0x20 && b !== 0x7f && !'%&=#+'.includes(ch)) out += ch;
    else if (how === 'percent-lower') out += pct(b).toLowerCase();
    else if (how === 'double') out += `%25${pct(b).slice(1)}`;
    else if (how === 'overlong' && b < 0x80) out += `%${(0xc0 | (b >> 6)).toString(16).toUpperCase()}%${(0x80 | (b & 0x3f)).toString(16).toUpperCase()}`;
    else out += pct(b);
  }
  if (how === 'broken') {
    const at = out.length === 0 ? 0 : breakAt % (out.length + 1);
    out = `${out.slice(0, at)}${['%', '%G1', '%4', '%%', '%u00e9', '%0'][breakAt % 6]}${out.slice(at)}`;
  }
  return out;
}

/** What a server that decodes a component as UTF-8 text reads, or null when it cannot be read faithfully. */
export function readableText(bytes: Buffer): string | null {
  return isUtf8(bytes) ? bytes.toString('utf8') : null;
}

export const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json;charset=UTF-8',
  'APPLICATION/JSON',
  'application/json; charset="utf-8"',
  'application/vnd.api+json',
  'application/merge-patch+json',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/json; charset=nope',
  'application/json; charset=',
  'application/json;;',
  'application/json; boundary=x',
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/x-www-form-urlencoded; charset=iso-8859-1',
  'text/plain',
  'text/json',
  'multipart/form-data; boundary=xyz',
  'application/xml',
  'application/octet-stream',
  '*/*',
  'application/*',
  'json',
  '',
  ';',
  'application/json, text/plain',
  'application/\u00e9',
  'application/json; charset=utf-8; charset=latin1',
];

export const CONTENT_ENCODINGS = ['identity', 'gzip', 'deflate', 'br', 'GZIP', 'x-gzip', 'zstd', 'compress', 'gzip, gzip', 'identity, gzip', 'nope', ''];

/** Encodes a body as the content-encoding says (when it can); `lie` sends it unencoded anyway. */
export function encodeBody(body: Buffer, encoding: string, lie: boolean): Buffer {
  if (lie) return body;
  switch (encoding.toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return zlib.gzipSync(body);
    case 'deflate':
      return zlib.deflateSync(body);
    case 'br':
      return zlib.brotliCompressSync(body);
    case 'gzip, gzip':
      return zlib.gzipSync(zlib.gzipSync(body));
    case 'identity, gzip':
      return zlib.gzipSync(body);
    default:
      return body;
  }
}

/** JSON values of odd shapes: deep nesting, huge numbers, lone surrogates, prototype names, big arrays. */
export const oddJsonText: fc.Arbitrary<string> = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.constantFrom(
    'null',
    'true',
    '0',
    '-0',
    '1e999',
    '"x"',
    '[]',
    '{}',
    '[[[]]]',
    '{"a":',
    '{',
    '}',
    '',
    ' ',
    '\uFEFF{}',
    '{"__proto__":{"polluted":1}}',
    '{"constructor":{"prototype":{"polluted":1}}}',
    '{"a":"\\ud800"}',
    '{"a":"\\udc00\\ud800"}',
    '{"a":"\\u0000"}',
    '{"a":1}garbage',
    '{"a":NaN}',
    "{'a':1}",
    '{"a":1,}',
    '[1,2,]',
    '{"a" 1}',
    '{"a":9999999999999999999999999999999}',
    '{"a":1e-400}',
    '"\\u00e9"',
    '{"toString":1,"valueOf":2,"hasOwnProperty":3}',
  ),
  fc.integer({ min: 100, max: 4_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.integer({ min: 100, max: 3_000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
  fc.integer({ min: 100, max: 3_000 }).map((n) => `[${Array.from({ length: n }, (_, i) => i).join(',')}]`),
  fc.integer({ min: 100, max: 1_500 }).map((n) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`),
);

export const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A JWT signed with HMAC-SHA256 by hand: any header and claims, valid or not. */
export function hs256(claims: Record<string, unknown>, secret: string, header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' }): string {
  const input = `${b64url(header)}.${b64url(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

// ---------------------------------------------------------------------------------------------
// Malformed HTTP, written byte by byte: what undici (rightly) refuses to send.

const CRLF = '\r\n';

/**
 * Raw requests: broken request lines and line endings, control bytes, bad or conflicting
 * Content-Length and Transfer-Encoding, broken chunking, Expect, old and unknown HTTP versions,
 * oversized and folded headers, pipelining, bodies cut short, garbage. `good` is a query string and
 * `auth` header lines that get a well-formed request as far as the app's handlers.
 */
export function rawRequest(paths: fc.Arbitrary<string>, good: () => string, auth: () => string[] = () => []): fc.Arbitrary<FuzzRequest> {
  const ctl = fc.constantFrom('\u0000', '\u0001', '\u0007', '\u001b', '\u007f', ' ', '\t', '\u00ff', '\r', '\n');
  const template = fc.oneof(
    fc.record({ t: fc.constant('bare-lf' as const), path: paths }),
    fc.record({ t: fc.constant('ctl-in-target' as const), path: paths, c: ctl }),
    fc.record({ t: fc.constant('ctl-in-header' as const), path: paths, c: ctl }),
    fc.record({
      t: fc.constant('bad-header-line' as const),
      path: paths,
      line: fc.constantFrom(
        'NoColon',
        'Bad Name: x',
        ': empty-name',
        'X-A : spaced',
        ' folded-first: x',
        'X-A: a\r\n folded',
        'X-\u00e9: latin1 name',
        'Content-Type : application/json',
      ),
    }),
    fc.record({
      t: fc.constant('content-length' as const),
      path: paths,
      cl: fc.constantFrom('5, 6', '-1', '+5', '0x5', '5.0', ' 5', '99999999999999999999', '', 'abc', '5\u0000'),
      body: fc.constantFrom('{}', '{"a":1}', ''),
    }),
    fc.record({ t: fc.constant('two-lengths' as const), path: paths, a: fc.nat(20), b: fc.nat(20) }),
    fc.record({ t: fc.constant('cl-and-te' as const), path: paths }),
    fc.record({
      t: fc.constant('chunked' as const),
      path: paths,
      te: fc.constantFrom('chunked', 'Chunked', 'gzip, chunked', 'chunked, gzip', 'chunked, chunked', 'identity', 'x', ' chunked'),
      chunks: fc.constantFrom(
        '2\r\n{}\r\n0\r\n\r\n',
        'zz\r\n{}\r\n0\r\n\r\n',
        '-1\r\n\r\n',
        'ffffffffffffffff\r\n{}',
        '2;ext=1\r\n{}\r\n0\r\n\r\n',
        '2\r\n{}\r\n0\r\nTrailer: x\r\n\r\n',
        '2\r\n{}',
        '2\n{}\n0\n\n',
        '0\r\n\r\n',
        '1\r\n{}\r\n0\r\n\r\n',
      ),
    }),
    fc.record({ t: fc.constant('expect' as const), path: paths, value: fc.constantFrom('100-continue', '100-Continue', 'nonsense', '') }),
    fc.record({
      t: fc.constant('version' as const),
      path: paths,
      v: fc.constantFrom('HTTP/1.0', 'HTTP/0.9', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1 extra', 'http/1.1', 'HTTP/1', 'HTTP/1.1\u0000', ''),
    }),
    fc.record({ t: fc.constant('no-host' as const), path: paths, v: fc.constantFrom('HTTP/1.1', 'HTTP/1.0') }),
    fc.record({ t: fc.constant('two-hosts' as const), path: paths }),
    fc.record({
      t: fc.constant('method' as const),
      path: paths,
      m: fc.constantFrom('get', 'G\u0000T', 'GET\t', 'CONNECT', 'PRI', 'GETT', '', '\u00e9', 'POST POST'),
    }),
    fc.record({
      t: fc.constant('target' as const),
      target: fc.constantFrom(
        '*',
        '//postback',
        'postback',
        'http://evil.example/postback',
        'https://x:99999/',
        'http://[::1/',
        'http://a@b/postback',
        '/%',
        `/${'a'.repeat(20_000)}`,
        '127.0.0.1:80',
        'http://[::1/',
        'http://[/postback',
        'https://[fe80::1%25eth0]/click',
        'http://[::1]:99999/',
        'http://%zz/',
        'http://[]/postback',
        '/\u00c3\u00a9',
        `/postback?${'%FF'.repeat(100)}`,
      ),
    }),
    fc.record({ t: fc.constant('big-header' as const), path: paths, n: fc.constantFrom(8_000, 16_000, 17_000, 70_000) }),
    fc.record({ t: fc.constant('many-headers' as const), path: paths, n: fc.constantFrom(100, 1_999, 2_001, 5_000) }),
    fc.record({ t: fc.constant('pipelined' as const), path: paths, n: fc.integer({ min: 2, max: 5 }) }),
    fc.record({ t: fc.constant('cut-body' as const), path: paths, sent: fc.nat(10), claimed: fc.integer({ min: 11, max: 10_000 }) }),
    fc.record({ t: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
    fc.record({ t: fc.constant('leading-crlf' as const), path: paths }),
    fc.record({ t: fc.constant('h2-preface' as const) }),
    fc.record({ t: fc.constant('upgrade' as const), path: paths, to: fc.constantFrom('websocket', 'h2c', 'x') }),
  );
  return template.map((g) => {
    const q = good();
    const target = 'path' in g ? `${g.path}?${q}` : '';
    const lines = (requestLine: string, headers: string[], body = '') =>
      Buffer.from(`${requestLine}${CRLF}${headers.join(CRLF)}${CRLF}${CRLF}${body}`, 'latin1');
    const base = ['Host: 127.0.0.1', ...auth()];
    let raw: Buffer;
    let mayGoUnanswered = false;
    switch (g.t) {
      case 'bare-lf':
        raw = Buffer.from(`GET ${target} HTTP/1.1\nHost: x\nConnection: close\n\n`, 'latin1');
        break;
      case 'ctl-in-target':
        raw = lines(`GET ${g.path}?a=${g.c}&${q} HTTP/1.1`, [...base, 'Connection: close']);
        break;
      case 'ctl-in-header':
        raw = lines(`GET ${target} HTTP/1.1`, [...base, `X-Test: a${g.c}b`, 'Connection: close']);
        break;
      case 'bad-header-line':
        raw = lines(`GET ${target} HTTP/1.1`, [...base, g.line, 'Connection: close']);
        break;
      case 'content-length':
        raw = lines(`POST ${target} HTTP/1.1`, [...base, 'Content-Type: application/json', `Content-Length: ${g.cl}`, 'Connection: close'], g.body);
        mayGoUnanswered = true; // a length longer than the body: the server waits for the rest, then sees the socket end
        break;
      case 'two-lengths':
        raw = lines(
          `POST ${target} HTTP/1.1`,
          [...base, 'Content-Type: application/json', `Content-Length: ${g.a}`, `Content-Length: ${g.b}`, 'Connection: close'],
          '{}',
        );
        mayGoUnanswered = g.a === g.b && g.a > 2;
        break;
      case 'cl-and-te':
        raw = lines(
          `POST ${target} HTTP/1.1`,
          [...base, 'Content-Type: application/json', 'Content-Length: 2', 'Transfer-Encoding: chunked', 'Connection: close'],
          '2\r\n{}\r\n0\r\n\r\n',
        );
        break;
      case 'chunked':
        raw = lines(`POST ${target} HTTP/1.1`, [...base, 'Content-Type: application/json', `Transfer-Encoding: ${g.te}`, 'Connection: close'], g.chunks);
        mayGoUnanswered = true; // an unterminated chunked body ends with the socket
        break;
      case 'expect':
        raw = lines(
          `POST ${target} HTTP/1.1`,
          [...base, 'Content-Type: application/json', 'Content-Length: 2', `Expect: ${g.value}`, 'Connection: close'],
          '{}',
        );
        break;
      case 'version':
        raw = lines(`GET ${target} ${g.v}`, [...base, 'Connection: close']);
        mayGoUnanswered = g.v === 'HTTP/0.9' || g.v === '';
        break;
      case 'no-host':
        raw = lines(`GET ${target} ${g.v}`, ['Connection: close', ...auth()]);
        break;
      case 'two-hosts':
        raw = lines(`GET ${target} HTTP/1.1`, [...base, 'Host: evil.example', 'Connection: close']);
        break;
      case 'method':
        raw = lines(`${g.m} ${target} HTTP/1.1`, [...base, 'Connection: close']);
        mayGoUnanswered = g.m === 'CONNECT' || g.m === 'PRI'; // CONNECT has no listener: Node closes the socket
        break;
      case 'target':
        raw = lines(`GET ${g.target} HTTP/1.1`, [...base, 'Connection: close']);
        mayGoUnanswered = g.target === '127.0.0.1:80';
        break;
      case 'big-header':
        raw = lines(`GET ${target} HTTP/1.1`, [...base, `X-Big: ${'a'.repeat(g.n)}`, 'Connection: close']);
        break;
      case 'many-headers':
        raw = lines(`GET ${target} HTTP/1.1`, [...base, ...Array.from({ length: g.n }, (_, i) => `X-H${i}: ${i}`), 'Connection: close']);
        break;
      case 'pipelined': {
        const one = (i: number) =>
          `GET ${g.path}?${q}&n=${i} HTTP/1.1${CRLF}${base.join(CRLF)}${CRLF}${i === g.n - 1 ? `Connection: close${CRLF}` : ''}${CRLF}`;
        raw = Buffer.from(Array.from({ length: g.n }, (_, i) => one(i)).join(''), 'latin1');
        break;
      }
      case 'cut-body':
        raw = lines(
          `POST ${target} HTTP/1.1`,
          [...base, 'Content-Type: application/json', `Content-Length: ${g.claimed}`, 'Connection: close'],
          '{"order_id":"x"}'.slice(0, g.sent),
        );
        mayGoUnanswered = true;
        break;
      case 'garbage':
        raw = Buffer.from(g.bytes);
        mayGoUnanswered = true; // bytes that are not even a request line may get nothing back
        break;
      case 'leading-crlf':
        raw = Buffer.concat([Buffer.from(CRLF + CRLF), lines(`GET ${target} HTTP/1.1`, [...base, 'Connection: close'])]);
        break;
      case 'h2-preface':
        raw = Buffer.from(`PRI * HTTP/2.0${CRLF}${CRLF}SM${CRLF}${CRLF}`, 'latin1');
        mayGoUnanswered = true;
        break;
      case 'upgrade':
        raw = lines(`GET ${target} HTTP/1.1`, [
          ...base,
          'Connection: Upgrade',
          `Upgrade: ${g.to}`,
          'Sec-WebSocket-Version: 13',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        ]);
        mayGoUnanswered = true; // no upgrade listener: Node closes the socket
        break;
    }
    return { kind: `raw:${g.t}`, method: 'RAW', path: '', headers: {}, raw, mayGoUnanswered } satisfies FuzzRequest;
  });
}
