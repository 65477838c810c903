// The limits every Trackway HTTP server keeps (`listen`): slow headers and slow bodies are
// answered 408 with the envelope and closed, idle keep-alive connections close, connections
// past the cap are refused. Real sockets against a real server; the timeouts are set short.
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ConfigError, loadConfig } from '@trackway/config';
import { parseRawResponse, probeConnectionCap, sendAndAwaitClose } from '@trackway/testing';
import { type HttpLimits, httpLimits, listen, serverOptions } from '../src';

// Reads the whole body before answering, as the body parsers do.
const echo: RequestListener = (req, res) => {
  let size = 0;
  req.on('data', (chunk: Buffer) => (size += chunk.length));
  req.on('end', () => res.end(JSON.stringify({ size })));
};

const servers: Server[] = [];
async function serve(limits: Partial<HttpLimits>) {
  const server = await listen(
    echo,
    0,
    { requestTimeoutMs: 1_000, headersTimeoutMs: 1_000, keepAliveTimeoutMs: 5_000, maxConnections: 100, ...limits },
    '127.0.0.1',
  );
  servers.push(server);
  return (server.address() as AddressInfo).port;
}
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const HALF_A_BODY = 'POST /postback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{"order_id":';

describe('listen', () => {
  it('answers a body that stops halfway with 408 and the envelope, and closes the connection', async () => {
    const port = await serve({ requestTimeoutMs: 1_000 });
    const { response, ms } = await sendAndAwaitClose(port, HALF_A_BODY, 10_000);
    const answer = parseRawResponse(response);
    expect(answer).toMatchObject({
      status: 408,
      headers: { connection: 'close', 'content-type': 'application/json; charset=utf-8', 'x-content-type-options': 'nosniff' },
    });
    expect(answer.body).toEqual({ error: { code: 'request_timeout', message: expect.any(String) } });
    // Node sweeps for expired requests every half timeout here (not every 30 s).
    expect(ms).toBeLessThan(1_000 + 500 + 1_000);
  });

  it('closes a connection whose request was answered before its body came, without a second answer', async () => {
    const server = await listen(
      (_req, res) => res.writeHead(401).end('no'),
      0,
      { requestTimeoutMs: 1_000, headersTimeoutMs: 1_000, keepAliveTimeoutMs: 5_000, maxConnections: 100 },
      '127.0.0.1',
    );
    servers.push(server);
    const { response } = await sendAndAwaitClose((server.address() as AddressInfo).port, HALF_A_BODY, 10_000);
    expect(response).toMatch(/^HTTP\/1\.1 401 /);
    expect(response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
  });

  it('answers headers that stop halfway with 408', async () => {
    const port = await serve({ requestTimeoutMs: 5_000, headersTimeoutMs: 1_000 });
    const { response, ms } = await sendAndAwaitClose(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', 10_000);
    expect(parseRawResponse(response).status).toBe(408);
    expect(ms).toBeLessThan(5_000);
  });

  it('still answers a request that arrives in time, and malformed HTTP with a 400 envelope', async () => {
    const port = await serve({});
    const ok = await sendAndAwaitClose(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}', 10_000);
    expect(parseRawResponse(ok.response)).toMatchObject({ status: 200, body: { size: 2 } });
    const bad = await sendAndAwaitClose(port, 'GET / HTTP/1.1\r\nHost x\r\n\r\n', 10_000);
    expect(parseRawResponse(bad.response)).toMatchObject({ status: 400, body: { error: { code: 'malformed_request' } } });
  });

  it('closes an idle keep-alive connection after the keep-alive timeout', async () => {
    const port = await serve({ keepAliveTimeoutMs: 300, requestTimeoutMs: 10_000, headersTimeoutMs: 10_000 });
    // Node's own default (5 s, plus its one-second grace) would outlast this.
    const { response } = await sendAndAwaitClose(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 3_000);
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('refuses connections past the cap, and takes new ones once below it', async () => {
    const port = await serve({ maxConnections: 2, requestTimeoutMs: 30_000, headersTimeoutMs: 30_000 });
    expect(await probeConnectionCap(port, 2)).toEqual({ refusedPastCap: true, servedBelowCap: true });
  });
});

describe('HTTP limits from the environment', () => {
  it('defaults to 10 s for headers and requests, 5 s keep-alive, 10,000 connections, swept every second', () => {
    const limits = httpLimits(loadConfig({ env: {} }));
    expect(limits).toEqual({ requestTimeoutMs: 10_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 5_000, maxConnections: 10_000 });
    expect(serverOptions(limits)).toEqual({ requestTimeout: 10_000, headersTimeout: 10_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000 });
  });

  it('reads durations, caps the headers timeout at the request timeout, and refuses zero or nonsense', () => {
    const limits = httpLimits(
      loadConfig({ env: { HTTP_REQUEST_TIMEOUT: '2s', HTTP_HEADERS_TIMEOUT: '1min', HTTP_KEEP_ALIVE_TIMEOUT: '65s', HTTP_MAX_CONNECTIONS: '500' } }),
    );
    expect(limits).toEqual({ requestTimeoutMs: 2_000, headersTimeoutMs: 60_000, keepAliveTimeoutMs: 65_000, maxConnections: 500 });
    expect(serverOptions(limits)).toMatchObject({ requestTimeout: 2_000, headersTimeout: 2_000 });
    const problems = (() => {
      try {
        loadConfig({ env: { HTTP_REQUEST_TIMEOUT: '0', HTTP_HEADERS_TIMEOUT: 'soon', HTTP_KEEP_ALIVE_TIMEOUT: '0.5ms', HTTP_MAX_CONNECTIONS: '0' } });
      } catch (error) {
        return (error as ConfigError).problems.map((p) => p.split(':')[0]).sort();
      }
      return [];
    })();
    expect(problems).toEqual(['HTTP_HEADERS_TIMEOUT', 'HTTP_KEEP_ALIVE_TIMEOUT', 'HTTP_MAX_CONNECTIONS', 'HTTP_REQUEST_TIMEOUT']);
  });
});
