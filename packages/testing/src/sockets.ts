// Raw TCP clients for the HTTP servers' limits: a request that never finishes, a connection
// held open, a connection the server refuses.
import net from 'node:net';

export interface Exchange {
  /** Everything the server wrote before it closed the connection. */
  response: string;
  /** From the first byte sent to the server's close. */
  ms: number;
}

/**
 * Connects, writes `data` (say, headers and half a body) and sends nothing more: resolves once
 * the server closes the connection, rejects if it has not after `giveUpMs`.
 */
export function sendAndAwaitClose(port: number, data: string, giveUpMs: number): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let response = '';
    let started = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server still held the connection after ${giveUpMs} ms (it wrote: ${JSON.stringify(response)})`));
    }, giveUpMs);
    socket.on('connect', () => {
      started = performance.now();
      socket.write(data);
    });
    socket.on('data', (chunk) => (response += chunk));
    socket.on('error', () => undefined); // a reset after the answer is a close too
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ response, ms: performance.now() - started });
    });
  });
}

/** The status code and JSON body of a raw HTTP/1.1 answer. */
export function parseRawResponse(raw: string): { status: number; headers: Record<string, string>; body: unknown } {
  const end = raw.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  const text = raw.slice(end + 4);
  return { status: Number(statusLine.split(' ')[1]), headers, body: text ? JSON.parse(text) : undefined };
}

/** An open connection that has sent nothing: it counts against the server's connection cap. */
export function openConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Whether a new connection gets an answer to a GET: false when the server closes it unanswered
 * (as one past `maxConnections` is).
 */
export function answersRequest(port: number, path = '/healthz'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let response = '';
    socket.on('data', (chunk) => (response += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(response.startsWith('HTTP/1.1 ')));
  });
}

/**
 * Holds `cap` connections open, then tells whether one more was refused and whether, one of
 * them closed, a new connection is served again (the server counts it closed a moment later).
 */
export async function probeConnectionCap(port: number, cap: number): Promise<{ refusedPastCap: boolean; servedBelowCap: boolean }> {
  const held: net.Socket[] = [];
  try {
    for (let i = 0; i < cap; i++) held.push(await openConnection(port));
    const refusedPastCap = !(await answersRequest(port));
    held.pop()!.destroy();
    const deadline = Date.now() + 5_000;
    let servedBelowCap = false;
    while (!servedBelowCap && Date.now() < deadline) servedBelowCap = await answersRequest(port);
    return { refusedPastCap, servedBelowCap };
  } finally {
    for (const socket of held) socket.destroy();
  }
}
