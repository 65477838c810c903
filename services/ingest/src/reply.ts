import type { ServerResponse } from 'node:http';
import { JSON_ANSWER_SECURITY_HEADERS } from '@trackway/runtime';

/** A JSON answer on a plain node:http response, with the headers helmet would add (these answers never run Express). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...JSON_ANSWER_SECURITY_HEADERS,
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
