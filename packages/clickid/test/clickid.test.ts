import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { CLICK_ID_LENGTH, type ClickIdCodec, createClickIdCodec } from '../src';

const SECRET = 'test-click-secret-0123456789abcdef';
const OTHER_SECRET = 'another-click-secret-0123456789ab';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const U32_MAX = 2 ** 32 - 1;

const codec: ClickIdCodec = createClickIdCodec(SECRET);
const CLICKED_AT = new Date('2025-03-01T12:34:56.789Z');
const validId = () => codec.issue({ offerId: 42, affiliateId: 7, clickedAt: CLICKED_AT });

/** Builds a click ID by hand, following the documented layout, with a MAC under `secret`. */
function handmade({ version = 1, offerId = 42, affiliateId = 7, seconds = 1_700_000_000, nonce = Buffer.from('abcdef'), secret = SECRET } = {}): string {
  const body = Buffer.alloc(19);
  body.writeUInt8(version, 0);
  body.writeUInt32BE(offerId, 1);
  body.writeUInt32BE(affiliateId, 5);
  body.writeUInt32BE(seconds, 9);
  nonce.copy(body, 13);
  const mac = createHmac('sha256', secret).update(body).digest().subarray(0, 12);
  return Buffer.concat([body, mac]).toString('base64url');
}

describe('createClickIdCodec', () => {
  it('refuses an empty secret', () => {
    expect(() => createClickIdCodec('')).toThrow('CLICK_SECRET is empty');
  });
});

describe('CLICK_ID_LENGTH', () => {
  it('is the unpadded base64url length of 31 bytes (42), within a 64-character column', () => {
    expect(CLICK_ID_LENGTH).toBe(42);
    expect(CLICK_ID_LENGTH).toBeLessThanOrEqual(64);
    expect(Buffer.alloc(31).toString('base64url')).toHaveLength(CLICK_ID_LENGTH);
  });
});

describe('issue and verify: round trip', () => {
  it.each([
    [1, 1, '1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.000Z'],
    [42, 7, '2025-03-01T12:34:56.789Z', '2025-03-01T12:34:56.000Z'], // to the second (floored)
    [42, 7, '2025-03-01T12:34:56.999Z', '2025-03-01T12:34:56.000Z'],
    [U32_MAX, U32_MAX, '2025-12-31T23:59:59.000Z', '2025-12-31T23:59:59.000Z'],
    [1, U32_MAX, '2000-02-29T00:00:00.001Z', '2000-02-29T00:00:00.000Z'],
    [123_456_789, 2, '2106-02-07T06:28:15.000Z', '2106-02-07T06:28:15.000Z'], // u32 seconds max
  ])('offer %i, affiliate %i, clicked at %s', (offerId, affiliateId, clickedAt, expected) => {
    const id = codec.issue({ offerId, affiliateId, clickedAt: new Date(clickedAt) });
    expect(id).toHaveLength(CLICK_ID_LENGTH);
    expect(codec.verify(id)).toEqual({ offerId, affiliateId, clickedAt: new Date(expected) });
  });

  it('defaults clickedAt to now, to the second', () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const id = codec.issue({ offerId: 5, affiliateId: 6 });
    const after = Date.now();
    const claims = codec.verify(id)!;
    expect(claims.clickedAt.getTime() % 1000).toBe(0);
    expect(claims.clickedAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(claims.clickedAt.getTime()).toBeLessThanOrEqual(after);
  });

  it('verifies with another codec under the same secret', () => {
    expect(createClickIdCodec(SECRET).verify(validId())).toEqual({ offerId: 42, affiliateId: 7, clickedAt: new Date('2025-03-01T12:34:56.000Z') });
  });

  it('follows the documented layout: version | offer | affiliate | seconds | nonce | HMAC-SHA256/96', () => {
    const id = handmade({ offerId: 0x01020304, affiliateId: 0x0a0b0c0d, seconds: 1_700_000_000 });
    expect(codec.verify(id)).toEqual({ offerId: 0x01020304, affiliateId: 0x0a0b0c0d, clickedAt: new Date(1_700_000_000_000) });

    const raw = Buffer.from(validId(), 'base64url');
    expect(raw).toHaveLength(31);
    expect(raw.readUInt8(0)).toBe(1);
    expect(raw.readUInt32BE(1)).toBe(42);
    expect(raw.readUInt32BE(5)).toBe(7);
    expect(raw.readUInt32BE(9)).toBe(Math.floor(CLICKED_AT.getTime() / 1000));
    expect(raw.subarray(19)).toEqual(createHmac('sha256', SECRET).update(raw.subarray(0, 19)).digest().subarray(0, 12));
  });

  it('round-trips any valid claims (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: U32_MAX }),
        fc.integer({ min: 1, max: U32_MAX }),
        fc.integer({ min: 0, max: U32_MAX * 1000 + 999 }),
        (offerId, affiliateId, ms) => {
          const id = codec.issue({ offerId, affiliateId, clickedAt: new Date(ms) });
          expect(id).toMatch(/^[A-Za-z0-9_-]{42}$/);
          expect(codec.verify(id)).toEqual({ offerId, affiliateId, clickedAt: new Date(Math.floor(ms / 1000) * 1000) });
        },
      ),
    );
  });
});

describe('issued IDs', () => {
  it('are exactly CLICK_ID_LENGTH URL-safe characters', () => {
    for (let i = 0; i < 200; i++) {
      const id = codec.issue({ offerId: i + 1, affiliateId: 1 + ((i * 7919) % 1000) });
      expect(id).toHaveLength(CLICK_ID_LENGTH);
      expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(encodeURIComponent(id)).toBe(id);
    }
  });

  it('are unique: 10k IDs in the same second for the same offer and affiliate', () => {
    const ids = Array.from({ length: 10_000 }, () => codec.issue({ offerId: 42, affiliateId: 7, clickedAt: CLICKED_AT }));
    expect(new Set(ids).size).toBe(10_000);
    // They differ in the nonce only, and all of them verify.
    const heads = new Set(ids.map((id) => Buffer.from(id, 'base64url').subarray(0, 13).toString('hex')));
    expect(heads.size).toBe(1);
    expect(ids.every((id) => codec.verify(id) !== null)).toBe(true);
  });
});

describe('issue: range errors', () => {
  const bad: Array<[string, number]> = [
    ['0', 0],
    ['-1', -1],
    ['-0.5', -0.5],
    ['1.5', 1.5],
    ['2^32', 2 ** 32],
    ['2^53', 2 ** 53],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ];

  describe.each(['offerId', 'affiliateId'] as const)('%s', (field) => {
    it.each(bad)('rejects %s', (_label, value) => {
      const claims = { offerId: 1, affiliateId: 1, [field]: value };
      expect(() => codec.issue(claims)).toThrow(RangeError);
      expect(() => codec.issue(claims)).toThrow(`${field} out of range`);
    });

    it('rejects a numeric string', () => {
      const claims = { offerId: 1, affiliateId: 1, [field]: '5' as unknown as number };
      expect(() => codec.issue(claims)).toThrow(`${field} out of range`);
    });

    it.each([1, 2 ** 31, U32_MAX])('accepts the boundary %i', (value) => {
      const id = codec.issue({ offerId: 1, affiliateId: 1, [field]: value });
      expect(codec.verify(id)?.[field]).toBe(value);
    });
  });

  it.each([
    ['before 1970', new Date(-1000)],
    ['after 2106-02-07T06:28:15Z', new Date(2 ** 32 * 1000)],
  ])('rejects a click time %s (not representable in u32 seconds)', (_label, clickedAt) => {
    // Thrown by Buffer from Node's own realm, so not `instanceof` the test realm's RangeError.
    let error: unknown;
    try {
      codec.issue({ offerId: 1, affiliateId: 1, clickedAt });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ name: 'RangeError', message: expect.stringContaining('out of range') });
  });
});

describe('verify: rejection', () => {
  it('a control: the handmade ID of version 1 verifies', () => {
    expect(codec.verify(handmade())).not.toBeNull();
  });

  it('an ID issued under a different secret', () => {
    const foreign = createClickIdCodec(OTHER_SECRET).issue({ offerId: 42, affiliateId: 7, clickedAt: CLICKED_AT });
    expect(codec.verify(foreign)).toBeNull();
    expect(createClickIdCodec(OTHER_SECRET).verify(foreign)).not.toBeNull();
    expect(codec.verify(handmade({ secret: OTHER_SECRET }))).toBeNull();
  });

  it('every single-character mutation of a valid ID, at every position', () => {
    const id = validId();
    const alphabet = `${BASE64URL}+/=. %`;
    let tried = 0;
    for (let i = 0; i < id.length; i++) {
      for (const c of alphabet) {
        if (c === id[i]) continue;
        const mutated = id.slice(0, i) + c + id.slice(i + 1);
        expect([i, c, codec.verify(mutated)]).toEqual([i, c, null]);
        tried++;
      }
    }
    expect(tried).toBe(CLICK_ID_LENGTH * (alphabet.length - 1));
    expect(codec.verify(id)).not.toBeNull(); // the original still verifies
  });

  it.each([
    ['the last character dropped', (id: string) => id.slice(0, -1)],
    ['the first character dropped', (id: string) => id.slice(1)],
    ['half of it', (id: string) => id.slice(0, 21)],
    ['a character appended', (id: string) => `${id}A`],
    ['a character prepended', (id: string) => `A${id}`],
    ['base64 padding appended', (id: string) => `${id}==`],
    ['four characters appended (one more decodable group)', (id: string) => `${id}AAAA`],
    ['a space appended', (id: string) => `${id} `],
    ['a newline appended', (id: string) => `${id}\n`],
    ['uppercased', (id: string) => id.toUpperCase()],
    ['doubled', (id: string) => id + id],
  ])('%s', (_label, mangle) => {
    const id = validId();
    const mangled = mangle(id);
    expect(mangled).not.toBe(id);
    expect(codec.verify(mangled)).toBeNull();
  });

  it('non-canonical base64url: other final characters that decode to the same bytes', () => {
    const id = validId();
    const raw = Buffer.from(id, 'base64url');
    const last = BASE64URL.indexOf(id[id.length - 1]);
    // 31 bytes end in one byte over two characters: the last carries 2 bits and 4 zero bits.
    expect(last % 16).toBe(0);
    const aliases = Array.from({ length: 15 }, (_, k) => id.slice(0, -1) + BASE64URL[last + k + 1]);
    for (const alias of aliases) {
      expect(Buffer.from(alias, 'base64url').equals(raw)).toBe(true); // same bytes...
      expect(codec.verify(alias)).toBeNull(); // ...but not the canonical spelling
    }
  });

  it.each([0, 2, 0x81, 255])('version byte %i, even with a valid MAC', (version) => {
    const id = handmade({ version });
    expect(id).toHaveLength(CLICK_ID_LENGTH);
    expect(codec.verify(id)).toBeNull();
  });

  it('a valid body with the MAC of another body', () => {
    const a = Buffer.from(handmade({ offerId: 1 }), 'base64url');
    const b = Buffer.from(handmade({ offerId: 2 }), 'base64url');
    const spliced = Buffer.concat([a.subarray(0, 19), b.subarray(19)]).toString('base64url');
    expect(codec.verify(spliced)).toBeNull();
  });

  it('an untruncated (32-byte) MAC', () => {
    const body = Buffer.from(handmade(), 'base64url').subarray(0, 19);
    const id = Buffer.concat([body, createHmac('sha256', SECRET).update(body).digest()]).toString('base64url');
    expect(codec.verify(id)).toBeNull();
  });

  it('the standard base64 spelling of a valid ID (with + and /)', () => {
    // Find an ID whose base64url spelling uses - or _, so the standard alphabet spells it differently.
    let id = validId();
    while (!/[-_]/.test(id)) id = validId();
    const standard = Buffer.from(id, 'base64url').toString('base64').replace(/=+$/, '');
    expect(standard).not.toBe(id);
    expect(codec.verify(standard)).toBeNull();
  });

  it.each([
    ['the empty string', ''],
    ['42 spaces', ' '.repeat(42)],
    ['42 A', 'A'.repeat(42)],
    ['42 zeros', '0'.repeat(42)],
    ['a postback macro', '{click_id}'],
  ])('%s', (_label, value) => {
    expect(codec.verify(value)).toBeNull();
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['a bigint', 42n],
    ['an object', {}],
    ['an array of its characters', 'x'.repeat(42).split('')],
    ['a Buffer of 42 bytes', Buffer.from('x'.repeat(42))],
    ['a String object', new String('x'.repeat(42))],
  ])('non-string input: %s', (_label, value) => {
    expect(codec.verify(value as unknown as string)).toBeNull();
  });

  it('non-string inputs carrying a valid ID', () => {
    const id = validId();
    expect(codec.verify(Buffer.from(id) as unknown as string)).toBeNull();
    expect(codec.verify(id.split('') as unknown as string)).toBeNull();
    expect(codec.verify(new String(id) as unknown as string)).toBeNull();
    expect(codec.verify({ toString: () => id } as unknown as string)).toBeNull();
  });

  it('random strings never verify (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (value) => {
        expect(codec.verify(value)).toBeNull();
      }),
      { numRuns: 2000 },
    );
  });

  it('random well-formed strings (42 base64url characters) never verify (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...BASE64URL), minLength: CLICK_ID_LENGTH, maxLength: CLICK_ID_LENGTH }), (value) => {
        expect(codec.verify(value)).toBeNull();
      }),
      { numRuns: 5000 },
    );
  });

  it('random version-1 bodies with a random MAC never verify (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 30, maxLength: 30 }), (bytes) => {
        const id = Buffer.concat([Buffer.from([1]), Buffer.from(bytes)]).toString('base64url');
        expect(codec.verify(id)).toBeNull();
      }),
      { numRuns: 2000 },
    );
  });
});

describe('clickedAt outside what the ID can carry', () => {
  it.each([
    ['an invalid date', new Date(Number.NaN)],
    ['before 1970', new Date(-1000)],
    ['after 2106', new Date((U32_MAX + 1) * 1000)],
  ])('refuses %s with a RangeError', (_name, clickedAt) => {
    expect(() => codec.issue({ offerId: 1, affiliateId: 1, clickedAt })).toThrow('clickedAt out of range');
  });
});
