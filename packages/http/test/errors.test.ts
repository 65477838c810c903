import { createDatabase } from '@trackway/db';
import { HttpError, errorReply, isStoreUnreachable } from '../src';

describe('errorReply', () => {
  it('puts the request id in the envelope when the caller has one (the api always, ingest when it passes its own)', () => {
    const error = new HttpError(404, 'not_found', 'Offer not found.');
    expect(errorReply(error, 'req-1').body).toEqual({ error: { code: 'not_found', message: 'Offer not found.', request_id: 'req-1' } });
    expect(errorReply(error).body).toEqual({ error: { code: 'not_found', message: 'Offer not found.' } });
    expect(errorReply(new Error('bug'), 'req-2')).toMatchObject({
      status: 500,
      body: { error: { code: 'internal_error', request_id: 'req-2' } },
      unexpected: true,
    });
  });
});

describe('errorReply for a store that cannot be reached', () => {
  it('answers 503 with Retry-After and the envelope, not a 500, when Postgres is not there', async () => {
    const { prisma, pool } = createDatabase('postgresql://postgres@127.0.0.1:1/trackway');
    try {
      const error = await prisma.advertiser.findMany().then(
        () => null,
        (e: unknown) => e,
      );
      expect(isStoreUnreachable(error)).toBe(true);
      expect(errorReply(error)).toEqual({
        status: 503,
        body: { error: { code: 'unavailable', message: 'A store Trackway needs cannot be reached right now; retry later.' } },
        headers: { 'Retry-After': '5' },
      });
    } finally {
      await prisma.$disconnect();
      if (!pool.ended) await pool.end();
    }
  });

  it.each([
    ['a refused socket', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), true],
    ['an exhausted pool', new Error('timeout exceeded when trying to connect'), true],
    ['a pool without a connection in time', Object.assign(new Error('Timed out fetching a new connection from the connection pool.'), { code: 'P2024' }), true],
    ['a unique violation', Object.assign(new Error('Unique constraint failed'), { code: 'P2002' }), false],
    ['a bug', new TypeError("Cannot read properties of undefined (reading 'id')"), false],
  ])('tells %s apart', (_what, error, unreachable) => {
    expect(isStoreUnreachable(error)).toBe(unreachable);
    expect(errorReply(error).status).toBe(unreachable ? 503 : 500);
  });
});
