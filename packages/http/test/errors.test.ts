import { HttpError, errorReply } from '../src';

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
