// Inputs the fuzz found answered wrongly (issue 8 §4): each on its own, over a real socket.
import { errorReply } from '@trackway/http';
import { createFixture } from '@trackway/testing';
import request from 'supertest';
import { startApi } from '../services/api/test/helpers';
import { startIngest } from '../services/ingest/test/helpers';
import { type Served, rawExchange, serve } from './support/fuzz';

async function rawGet(served: Served, target: string) {
  const answers = await rawExchange(served.port, Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1'));
  if (answers instanceof Error || answers.length === 0) throw new Error(`no answer to GET ${target}`);
  return { status: answers[0].status, body: JSON.parse(answers[0].body.toString('utf8')) as { error: { code: string } } };
}

const UNPARSABLE = ['http://[::1/', 'http://[/postback', 'https://[fe80::1%25eth0]/click', 'HTTP://[::1/'];

it('answers a target no URL parser can read with 400 malformed_url, and ingest stays up (it used to crash)', async () => {
  const h = await startIngest();
  const served = await serve(h.app);
  try {
    for (const target of UNPARSABLE) expect(await rawGet(served, target)).toMatchObject({ status: 400, body: { error: { code: 'malformed_url' } } });
    expect((await fetch(`${served.origin}/healthz`)).status).toBe(200);
  } finally {
    await served.close();
    await h.close();
  }
});

describe('the api', () => {
  it('answers such a target with the envelope, not HTML', async () => {
    const h = await startApi();
    const served = await serve(h.app);
    try {
      for (const target of UNPARSABLE) expect(await rawGet(served, target)).toMatchObject({ status: 400, body: { error: { code: 'malformed_url' } } });
    } finally {
      await served.close();
      await h.close();
    }
  });

  it('refuses a JSON body whose bytes are not UTF-8 (it stored U+FFFD)', async () => {
    const h = await startApi();
    try {
      const fx = await createFixture(h.db.prisma);
      const body = Buffer.from('7b226e616d65223a2278fffe79222c22737461747573223a22696e616374697665227d', 'hex');
      // Over a socket: supertest would re-encode the bytes.
      const served = await serve(h.app);
      try {
        const head = `PATCH /v1/advertisers/${fx.advertiserId} HTTP/1.1\r\nHost: x\r\nAuthorization: ${h.auth.Authorization}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
        const answers = await rawExchange(served.port, Buffer.concat([Buffer.from(head, 'latin1'), body]));
        if (answers instanceof Error) throw answers;
        expect(answers[0].status).toBe(400);
        expect(JSON.parse(answers[0].body.toString('utf8')).error.code).toBe('invalid_request');
        expect((await h.db.prisma.advertiser.findUniqueOrThrow({ where: { id: fx.advertiserId } })).name).toBe('Acme Shop');
      } finally {
        await served.close();
      }
    } finally {
      await h.close();
    }
  });

  it('refuses control characters in a Bull Board API query (a NUL answered 500)', async () => {
    const h = await startApi();
    try {
      const res = await request(h.app).get('/admin/queues/api/queues?status=%00').set(h.auth).expect(400);
      expect(res.body.error.code).toBe('invalid_request');
      await request(h.app).get('/admin/queues/api/queues?activeQueue=postbacks&status=latest&page=1').set(h.auth).expect(200);
    } finally {
      await h.close();
    }
  });
});

it('answers 404, not 500, when a row read a moment ago was deleted before the write (disable beside DELETE, found by the fuzz)', async () => {
  const h = await startApi();
  try {
    // The error Prisma raises for that write, for real.
    const error = await h.db.prisma.webhookEndpoint
      .update({ where: { id: 'ep_01ARZ3NDEKTSV4RRFFQ69G5FAV' }, data: { enabled: false } })
      .catch((e: unknown) => e);
    expect(errorReply(error)).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    // And the race itself, through the API: never a 5xx.
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const ep = (
        await request(h.app)
          .post('/v1/webhook-endpoints')
          .set(h.auth)
          .send({ url: 'https://receiver.example/hook', event_types: ['*'] })
          .expect(201)
      ).body as { id: string };
      const answers = await Promise.all([
        request(h.app).post(`/v1/webhook-endpoints/${ep.id}/disable`).set(h.auth),
        request(h.app).delete(`/v1/webhook-endpoints/${ep.id}`).set(h.auth),
      ]);
      statuses.push(...answers.map((a) => a.status));
    }
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
  } finally {
    await h.close();
  }
});

it("the api's request log redacts credentials in URLs, under any parameter name", async () => {
  const lines: string[] = [];
  const h = await startApi(undefined, undefined, { logLines: lines });
  try {
    const key = 'pk_abcdefghijklmnopqrstuvwxyz012345';
    await request(h.app).get(`/v1/advertisers?api_key=${key}&token=t0ps3cret`).set(h.auth);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const logged = lines.filter((line) => line.includes('/v1/advertisers'));
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) {
      expect(line).not.toContain(key);
      expect(line).not.toContain('t0ps3cret');
      expect(line).toContain('api_key=[redacted]');
    }
  } finally {
    await h.close();
  }
});
