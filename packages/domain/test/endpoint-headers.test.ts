import { MASKED_HEADER_VALUE, createSecretBox, endpointJson, maskHeaders, openHeaders, sealHeaders } from '../src';

const box = createSecretBox(Buffer.alloc(32, 3));
const headers = { Authorization: 'Bearer s3cret', 'X-Team': 'growth' };

describe('endpoint headers', () => {
  it('seals each value on its own, keeping the names', () => {
    const sealed = sealHeaders(box, headers);
    expect(Object.keys(sealed)).toEqual(['Authorization', 'X-Team']);
    for (const value of Object.values(sealed)) expect(value).toMatch(/^v1:/);
    expect(JSON.stringify(sealed)).not.toMatch(/s3cret|growth/);
  });

  const sealed = sealHeaders(box, headers);
  it.each([
    ['sealed values', { sealedHeaders: sealed, plaintextHeaders: {} }, headers],
    ['plaintext from before sealing', { sealedHeaders: {}, plaintextHeaders: { Authorization: 'Bearer old' } }, { Authorization: 'Bearer old' }],
    ['plaintext written by an older api after sealing: the newer wins', { sealedHeaders: sealed, plaintextHeaders: { 'X-Old': '1' } }, { 'X-Old': '1' }],
    ['none', { sealedHeaders: {}, plaintextHeaders: {} }, {}],
    ['columns that are not objects', { sealedHeaders: null, plaintextHeaders: [] }, {}],
  ])('opens and masks %s', (_name, row, sent) => {
    expect(openHeaders(box, row)).toEqual(sent);
    expect(maskHeaders(row)).toEqual(Object.fromEntries(Object.keys(sent).map((name) => [name, MASKED_HEADER_VALUE])));
  });

  it('refuses to open a value sealed under another key', () => {
    expect(() => openHeaders(createSecretBox(Buffer.alloc(32, 4)), { sealedHeaders: sealed, plaintextHeaders: {} })).toThrow();
  });

  it('never puts a value into the JSON representation', () => {
    const now = new Date();
    const row = {
      id: 'ep_1',
      url: 'https://a.example/',
      description: null,
      eventTypes: ['*'],
      rateLimitPerSecond: null,
      enabled: true,
      disabledReason: null,
      createdAt: now,
      updatedAt: now,
    };
    expect(endpointJson({ ...row, sealedHeaders: sealed, plaintextHeaders: {} }).headers).toEqual({ Authorization: '••••', 'X-Team': '••••' });
    expect(JSON.stringify(endpointJson({ ...row, sealedHeaders: {}, plaintextHeaders: headers }))).not.toMatch(/s3cret|growth/);
  });
});
