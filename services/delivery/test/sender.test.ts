import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Receiver, startReceiver } from '@trackway/testing';
import { type AddressPolicy, signedHeaders, verify } from '@trackway/webhooks';
import { MAX_RESPONSE_BYTES, classifyError, createSender, parseRetryAfter } from '../src/sender';

const policy: AddressPolicy = { allowedCidrs: ['127.0.0.0/8', '::1/128'] };
const TIMEOUT_MS = 5_000;
const sender = createSender(policy);
afterAll(() => sender.close());
const post = (url: string, body = '{}', headers: Record<string, string> = { 'content-type': 'application/json' }, timeoutMs = TIMEOUT_MS) =>
  sender.send(url, body, headers, { timeoutMs });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function receiver(reply?: Receiver['reply']): Promise<Receiver> {
  const r = await startReceiver(reply);
  cleanups.push(() => r.close());
  return r;
}

/** A plain node:http server with a custom handler, closed after the test. */
async function server(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; port: number; server: Server }> {
  const s = createServer(handler);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      }),
  );
  const { port } = s.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks`, port, server: s };
}

const waitUntil = async (condition: () => boolean, timeoutMs = 3_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('send: responses', () => {
  it('a 2xx is recorded with its status and body, no error, no retry-after', async () => {
    const r = await receiver(() => ({ status: 201, body: 'created ✓' }));
    const result = await post(r.url);
    expect(result).toEqual({ statusCode: 201, error: null, responseBody: 'created ✓', retryAfterMs: null, durationMs: expect.any(Number) });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    expect(result.durationMs).toBeLessThan(TIMEOUT_MS);
    expect(r.requests).toHaveLength(1);
  });

  it.each([200, 202, 204, 299])('status %i is recorded as is', async (status) => {
    const r = await receiver(() => ({ status, body: status === 204 ? '' : 'ok' }));
    expect(await post(r.url)).toMatchObject({ statusCode: status, error: null, responseBody: status === 204 ? '' : 'ok' });
  });

  it.each([
    [400, 'bad request: missing field'],
    [404, 'no such hook'],
    [410, 'gone'],
    [500, '{"error":"boom"}'],
    [502, '<html>bad gateway</html>'],
  ])('a non-2xx %i is recorded with its body (not an error class)', async (status, body) => {
    const r = await receiver(() => ({ status, body }));
    expect(await post(r.url)).toMatchObject({ statusCode: status, error: null, responseBody: body, retryAfterMs: null });
  });

  it.each([301, 302, 303, 307, 308])('a %i redirect is not followed: the target never receives a request', async (status) => {
    const b = await receiver();
    const a = await receiver(() => ({ status, headers: { location: `${b.url}?redirected=1` }, body: 'moved' }));
    const result = await post(a.url, '{"a":1}');
    expect(result).toMatchObject({ statusCode: status, error: null, responseBody: 'moved' });
    expect(a.requests).toHaveLength(1);
    // Give a (wrongly) followed redirect time to land.
    await new Promise((r) => setTimeout(r, 100));
    expect(b.requests).toHaveLength(0);
  });

  it('a 302 to a private address is not followed either (no SSRF through redirects)', async () => {
    const a = await receiver(() => ({ status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } }));
    expect(await post(a.url)).toMatchObject({ statusCode: 302, error: null });
  });
});

describe('send: response size limit', () => {
  const ascii = (n: number) => 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil(n / 36)).slice(0, n);

  it('MAX_RESPONSE_BYTES is 4 KiB', () => {
    expect(MAX_RESPONSE_BYTES).toBe(4096);
  });

  it.each([
    [0, 0],
    [1, 1],
    [4095, 4095],
    [4096, 4096],
    [4097, 4096],
    [10_000, 4096],
    [1024 * 1024, 4096],
  ])('a %i-byte body is kept as %i bytes (its prefix)', async (size, kept) => {
    const full = ascii(size);
    const r = await receiver(() => ({ status: 200, body: full }));
    const result = await post(r.url);
    expect(result.statusCode).toBe(200);
    expect(result.error).toBeNull();
    expect(Buffer.byteLength(result.responseBody!)).toBe(kept);
    expect(result.responseBody).toBe(full.slice(0, kept));
  });

  it('a multi-byte body is cut at exactly 4096 bytes and decoded (a split character becomes U+FFFD)', async () => {
    const full = '€'.repeat(3000); // 9000 bytes, 3 per character: 4096 = 1365 × 3 + 1
    const r = await receiver(() => ({ status: 500, body: full }));
    const result = await post(r.url);
    expect(result.statusCode).toBe(500);
    expect(result.responseBody).toBe(Buffer.from(full).subarray(0, MAX_RESPONSE_BYTES).toString('utf8'));
    expect(result.responseBody).toBe(`${'€'.repeat(1365)}\uFFFD`);
  });

  it('1 MB streamed slowly: resolves as soon as 4 KiB arrived, far before the timeout, and hangs up on the server', async () => {
    let serverSawClose = false;
    let written = 0;
    const { url } = await server((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(1024, 'x');
        const timer = setInterval(() => {
          if (written >= 1024 * 1024) {
            clearInterval(timer);
            res.end();
            return;
          }
          res.write(chunk);
          written += chunk.length;
        }, 20); // 1 KiB / 20 ms: the whole MB would take ~20 s
        res.on('close', () => {
          clearInterval(timer);
          serverSawClose = true;
        });
      });
    });
    const started = performance.now();
    const result = await post(url, '{}', undefined, 10_000);
    expect(result).toMatchObject({ statusCode: 200, error: null });
    expect(result.responseBody).toBe('x'.repeat(MAX_RESPONSE_BYTES));
    expect(result.durationMs).toBeLessThan(2_000);
    expect(performance.now() - started).toBeLessThan(2_000);
    await waitUntil(() => serverSawClose);
    expect(written).toBeLessThan(1024 * 1024);
  });

  it('an endless fast stream: resolves promptly with exactly 4096 bytes', async () => {
    let serverSawClose = false;
    const { url } = await server((req, res) => {
      req.resume();
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 'y');
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) {
          /* fill the socket */
        }
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => {
        serverSawClose = true;
      });
      pump();
    });
    const result = await post(url, '{}', undefined, 10_000);
    expect(result.statusCode).toBe(200);
    expect(result.responseBody).toBe('y'.repeat(MAX_RESPONSE_BYTES));
    expect(result.durationMs).toBeLessThan(2_000);
    await waitUntil(() => serverSawClose);
  });
});

describe('send: failures are classified', () => {
  it('a server that never answers → timeout, after ≈ timeoutMs', async () => {
    const r = await receiver(() => ({ hang: true }));
    const started = performance.now();
    const result = await post(r.url, '{}', undefined, 600);
    const elapsed = performance.now() - started;
    expect(result).toEqual({ statusCode: null, error: 'timeout', responseBody: null, retryAfterMs: null, durationMs: expect.any(Number) });
    expect(result.durationMs).toBeGreaterThanOrEqual(550);
    expect(result.durationMs).toBeLessThan(1_600);
    expect(elapsed).toBeGreaterThanOrEqual(550);
    expect(r.requests).toHaveLength(1); // it did arrive; the answer did not
  });

  it('an answer later than the deadline is a timeout; one within it is not', async () => {
    const slow = await receiver(() => ({ status: 200, body: 'late', delayMs: 1_500 }));
    expect(await post(slow.url, '{}', undefined, 300)).toMatchObject({ statusCode: null, error: 'timeout' });
    const fast = await receiver(() => ({ status: 200, body: 'in time', delayMs: 100 }));
    expect(await post(fast.url, '{}', undefined, 2_000)).toMatchObject({ statusCode: 200, error: null, responseBody: 'in time' });
  });

  it('headers sent but the body never finishes → timeout at the deadline (the status is not kept)', async () => {
    const { url } = await server((req, res) => {
      req.resume();
      res.writeHead(200);
      res.write('partial');
    });
    const result = await post(url, '{}', undefined, 500);
    expect(result).toMatchObject({ statusCode: null, error: 'timeout', responseBody: null });
    expect(result.durationMs).toBeGreaterThanOrEqual(450);
    expect(result.durationMs).toBeLessThan(1_500);
  });

  it('a closed port → refused', async () => {
    const { port, server: s } = await server(() => {});
    await new Promise<void>((resolve) => s.close(() => resolve()));
    const result = await post(`http://127.0.0.1:${port}/hooks`);
    expect(result).toMatchObject({ statusCode: null, error: 'refused', responseBody: null });
    expect(result.durationMs).toBeLessThan(1_000);
  });

  it('a name under .invalid → dns', async () => {
    const result = await post('http://no-such-endpoint.invalid/hooks');
    expect(result).toMatchObject({ statusCode: null, error: 'dns', responseBody: null });
    const strictSender = createSender({ allowedCidrs: [] });
    cleanups.push(() => strictSender.close());
    const strict = await strictSender.send('https://no-such-endpoint.invalid/hooks', '{}', {}, { timeoutMs: TIMEOUT_MS });
    expect(strict.error).toBe('dns');
  });

  it('a server that drops the connection on the request → reset', async () => {
    const s = createNetServer((socket) => {
      socket.once('data', () => socket.destroy());
    });
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => s.close(() => resolve())));
    const result = await post(`http://127.0.0.1:${(s.address() as AddressInfo).port}/`);
    expect(result).toMatchObject({ statusCode: null, error: 'reset', responseBody: null });
  });

  it('an unparsable URL → network, without throwing', async () => {
    expect(await post('not a url')).toMatchObject({ statusCode: null, error: 'network' });
  });

  describe('tls', () => {
    const HAS_OPENSSL = spawnSync('openssl', ['version']).status === 0;
    const itTls = HAS_OPENSSL ? it : it.skip; // skipped only when the openssl binary is missing
    let dir: string;
    let tls: { key: Buffer; cert: Buffer } | undefined;

    beforeAll(() => {
      if (!HAS_OPENSSL) return;
      dir = mkdtempSync(join(tmpdir(), 'trackway-tls-'));
      const made = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ]);
      if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
      tls = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
    });
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    itTls('a self-signed https server → tls, and the handler never runs', async () => {
      let handled = 0;
      const s = createHttpsServer(tls!, (_req, res) => {
        handled += 1;
        res.end('secret');
      });
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            s.closeAllConnections();
            s.close(() => resolve());
          }),
      );
      const { port } = s.address() as AddressInfo;
      for (const host of ['127.0.0.1', 'localhost']) {
        const result = await post(`https://${host}:${port}/hooks`);
        expect(result).toMatchObject({ statusCode: null, error: 'tls', responseBody: null });
      }
      expect(handled).toBe(0);
    });

    it('https:// to a plain-http port fails without a status and without reaching the handler', async () => {
      let handled = 0;
      const { port } = await server((_req, res) => {
        handled += 1;
        res.end('plain');
      });
      const result = await post(`https://127.0.0.1:${port}/hooks`);
      expect(result).toMatchObject({ statusCode: null, responseBody: null });
      // Node reports this as EPROTO ("wrong version number"): a TLS failure.
      expect(result.error).toBe('tls');
      expect(handled).toBe(0);
    });

    it('https:// to a plain-http port is classified tls', async () => {
      const { port } = await server((_req, res) => res.end('plain'));
      const result = await post(`https://127.0.0.1:${port}/hooks`);
      expect(result.statusCode).toBeNull();
      expect(result.error).toBe('tls');
    });
  });
});

describe('send: Retry-After', () => {
  it.each([429, 503])('on %i the seconds form is parsed into retryAfterMs', async (status) => {
    const r = await receiver(() => ({ status, headers: { 'retry-after': '120' }, body: 'slow down' }));
    expect(await post(r.url)).toMatchObject({ statusCode: status, error: null, retryAfterMs: 120_000, responseBody: 'slow down' });
  });

  it.each([429, 503])('on %i the HTTP-date form is parsed relative to now', async (status) => {
    const at = new Date(Date.now() + 60_000).toUTCString(); // second resolution: 59–60 s ahead
    const r = await receiver(() => ({ status, headers: { 'retry-after': at } }));
    const result = await post(r.url);
    expect(result.statusCode).toBe(status);
    expect(result.retryAfterMs).toBeGreaterThan(55_000);
    expect(result.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it('an HTTP-date in the past gives 0', async () => {
    const r = await receiver(() => ({ status: 503, headers: { 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' } }));
    expect((await post(r.url)).retryAfterMs).toBe(0);
  });

  it.each([200, 202, 301, 400, 404, 500, 502, 504])('is ignored (null) on %i', async (status) => {
    const r = await receiver(() => ({ status, headers: { 'retry-after': '120' } }));
    const result = await post(r.url);
    expect(result.statusCode).toBe(status);
    expect(result.retryAfterMs).toBeNull();
  });

  it('is null on 429/503 without the header, or with garbage', async () => {
    const none = await receiver(() => ({ status: 429 }));
    expect((await post(none.url)).retryAfterMs).toBeNull();
    const garbage = await receiver(() => ({ status: 503, headers: { 'retry-after': 'soon' } }));
    expect((await post(garbage.url)).retryAfterMs).toBeNull();
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-06-01T12:00:00Z');
  it.each([
    ['0', 0],
    ['1', 1_000],
    ['120', 120_000],
    [' 30 ', 30_000],
    ['86400', 86_400_000],
    ['Sun, 01 Jun 2025 12:00:30 GMT', 30_000],
    ['Sun, 01 Jun 2025 13:00:00 GMT', 3_600_000],
    ['Sun, 01 Jun 2025 12:00:00 GMT', 0],
    ['Sun, 01 Jun 2025 11:59:00 GMT', 0], // past → 0, never negative
    ['Sunday, 01-Jun-25 12:00:10 GMT', 10_000], // obsolete RFC 850 form
    [undefined, null],
    ['', null],
    ['soon', null],
    ['abc', null],
    ['12abc', null],
    ['1e3', null],
    ['0x10', null],
    ['in 5 minutes', null],
  ] as const)('%j → %p', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });

  it('defaults `now` to the clock', () => {
    const at = new Date(Date.now() + 10_000).toUTCString();
    const ms = parseRetryAfter(at)!;
    expect(ms).toBeGreaterThan(8_000);
    expect(ms).toBeLessThanOrEqual(10_000);
  });

  // BUG (sender.ts parseRetryAfter, the Date.parse fallback): V8's Date.parse is lenient and
  // reads non-HTTP-date garbage as a date (e.g. "1.5" → 2001-01-05, "-1" → 2001-01-01,
  // "1 2" → 2001-01-02), so these give 0 ms instead of null.
  it.each(['1.5', '-1', '1 2', 'hello 2'])('garbage %j → null', (value) => {
    expect(parseRetryAfter(value, now)).toBeNull();
  });
});

describe('send: the request', () => {
  it('arrives exactly as sent: method, path with query, headers, unicode body with matching content-length', async () => {
    const r = await receiver();
    const body = JSON.stringify({ type: 'conversion.approved', data: { note: 'héllo 👋 世界', amount: '12.50 €', combining: 'e\u0301' } });
    const signed = signedHeaders({ id: 'msg_sender_1', timestamp: new Date(), body }, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'Trackway-Webhooks/0.1.0 (test)',
      'x-team': 'growth',
      'X-Mixed-Case': 'Value With  Spaces',
      ...signed,
    };
    const result = await post(`${r.url}?tenant=a%20b&x=1`, body, headers);
    expect(result).toMatchObject({ statusCode: 200, error: null });
    expect(r.requests).toHaveLength(1);
    const [req] = r.requests;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/hooks?tenant=a%20b&x=1');
    expect(req.body).toBe(body);
    expect(Buffer.byteLength(body)).toBeGreaterThan(body.length);
    expect(req.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(req.headers['transfer-encoding']).toBeUndefined();
    const expected: IncomingHttpHeaders = {
      'content-type': 'application/json',
      'user-agent': 'Trackway-Webhooks/0.1.0 (test)',
      'x-team': 'growth',
      'x-mixed-case': 'Value With  Spaces',
      'webhook-id': 'msg_sender_1',
      'webhook-timestamp': signed['webhook-timestamp'],
      'webhook-signature': signed['webhook-signature'],
    };
    expect(req.headers).toMatchObject(expected);
    // The subscriber's side: the bytes received verify.
    expect(verify(req.body, req.headers as Record<string, string>, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toEqual(JSON.parse(body));
  });

  it('an empty body is sent with content-length 0', async () => {
    const r = await receiver();
    await post(r.url, '', {});
    expect(r.requests[0].headers['content-length']).toBe('0');
    expect(r.requests[0].body).toBe('');
  });

  it('consecutive sends to one endpoint reuse keep-alive connections', async () => {
    const remotePorts: number[] = [];
    let connections = 0;
    const { url, server: s } = await server((req, res) => {
      remotePorts.push(req.socket.remotePort!);
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    s.on('connection', () => {
      connections += 1;
    });
    // undici's pool may open a second connection while the first is settling; after that,
    // sends go over the open ones.
    for (let i = 0; i < 2; i++) expect(await post(url)).toMatchObject({ statusCode: 200, responseBody: 'ok' });
    const warm = connections;
    for (let i = 0; i < 5; i++) expect(await post(url)).toMatchObject({ statusCode: 200, responseBody: 'ok' });
    expect(warm).toBeLessThanOrEqual(2);
    expect(connections).toBe(warm);
    expect(new Set(remotePorts).size).toBe(warm);
    expect(remotePorts).toHaveLength(7);
  });

  it('a connection cut after 4 KiB is not reused: the next send goes over another one and succeeds', async () => {
    const ports: Record<string, number> = {};
    const closed = new Set<number>();
    const { url } = await server((req, res) => {
      const port = req.socket.remotePort!;
      ports[req.url!] = port;
      req.socket.once('close', () => closed.add(port));
      req.resume();
      req.on('end', () => res.end(req.url === '/big' ? 'z'.repeat(1024 * 1024) : 'small'));
    });
    const base = url.replace(/\/hooks$/, '');
    expect((await post(`${base}/big`)).responseBody).toBe('z'.repeat(MAX_RESPONSE_BYTES));
    await waitUntil(() => closed.has(ports['/big']));
    expect(await post(`${base}/small`)).toMatchObject({ statusCode: 200, responseBody: 'small' });
    expect(ports['/small']).not.toBe(ports['/big']);
  });

  // undici refuses a header value outside latin-1 (UND_ERR_INVALID_ARG); send() turns that
  // into a failed attempt. (The API refuses such values up front too.)
  it('a header value Node refuses resolves as a failed attempt instead of rejecting', async () => {
    const r = await receiver();
    const result = await post(r.url, '{}', { 'x-team': 'Zoë €' });
    expect(result.statusCode).toBeNull();
    expect(result.error).toBe('network');
  });
});

describe('classifyError', () => {
  const withCode = (code: string) => Object.assign(new Error(code), { code });
  const withName = (name: string) => Object.assign(new Error(name), { name });
  it.each([
    [withCode('ESSRFBLOCKED'), 'ssrf_blocked'],
    [withName('AbortError'), 'timeout'],
    [withName('TimeoutError'), 'timeout'],
    [withCode('ABORT_ERR'), 'timeout'],
    [withCode('ETIMEDOUT'), 'timeout'],
    [withCode('UND_ERR_CONNECT_TIMEOUT'), 'timeout'],
    [withCode('UND_ERR_HEADERS_TIMEOUT'), 'timeout'],
    [withCode('UND_ERR_BODY_TIMEOUT'), 'timeout'],
    [withCode('ENOTFOUND'), 'dns'],
    [withCode('EAI_AGAIN'), 'dns'],
    [withCode('EAI_NONAME'), 'dns'],
    [withCode('ECONNREFUSED'), 'refused'],
    [withCode('ECONNRESET'), 'reset'],
    [withCode('EPIPE'), 'reset'],
    [withCode('UND_ERR_SOCKET'), 'reset'],
    [withCode('ERR_TLS_CERT_ALTNAME_INVALID'), 'tls'],
    [withCode('ERR_SSL_WRONG_VERSION_NUMBER'), 'tls'],
    [withCode('ERR_OSSL_EVP_BAD_DECRYPT'), 'tls'],
    [withCode('CERT_HAS_EXPIRED'), 'tls'],
    [withCode('DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls'],
    [withCode('SELF_SIGNED_CERT_IN_CHAIN'), 'tls'],
    [withCode('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'tls'],
    [withCode('HOSTNAME_MISMATCH'), 'tls'],
    [withCode('EHOSTUNREACH'), 'network'],
    [withCode('ENETUNREACH'), 'network'],
    [new Error('no code'), 'network'],
    [withCode('EPROTO'), 'tls'],
  ] as const)('%p → %s', (error, expected) => {
    expect(classifyError(error)).toBe(expected);
  });
});
