import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  /** The client's port: requests over one keep-alive connection share it. */
  remotePort: number;
}

export interface Reply {
  status?: number;
  body?: string;
  headers?: Record<string, string>;
  /** Answer after this many milliseconds. */
  delayMs?: number;
  /** Never answer (the socket stays open until the server closes). */
  hang?: boolean;
}

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Requests in flight right now (not yet answered, connection still open), and the peak. */
  active: number;
  maxActive: number;
  /** Decides each reply; `n` counts requests from 1. Default: 200 "ok". */
  reply: (request: ReceivedRequest, n: number) => Reply;
  close(): Promise<void>;
}

/** A real local HTTP server that records what it receives: the webhook subscriber in tests. */
export async function startReceiver(reply: Receiver['reply'] = () => ({ status: 200, body: 'ok' })): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const receiver = { requests, reply, active: 0, maxActive: 0 } as Receiver;
  const server: Server = createServer((req, res) => {
    receiver.active += 1;
    receiver.maxActive = Math.max(receiver.maxActive, receiver.active);
    res.once('close', () => {
      receiver.active -= 1;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request: ReceivedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
        remotePort: req.socket.remotePort ?? 0,
      };
      requests.push(request);
      const answer = receiver.reply(request, requests.length);
      if (answer.hang) return;
      const send = () => {
        res.writeHead(answer.status ?? 200, answer.headers);
        res.end(answer.body ?? '');
      };
      if (answer.delayMs) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  receiver.port = port;
  receiver.url = `http://127.0.0.1:${port}/hooks`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}
