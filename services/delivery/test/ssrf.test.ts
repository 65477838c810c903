import dns, { type LookupAddress } from 'node:dns';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { type AddressPolicy, SsrfBlockedError, checkLiteralHost, guardedLookup, isAllowedAddress } from '@trackway/webhooks';
import { type AttemptResult, type Sender, createSender } from '../src/sender';

/**
 * SSRF guard of webhook delivery: every destination that is not a public unicast address is
 * refused (unless WEBHOOK_ALLOWED_CIDRS allows it), before any connection is made.
 * Real servers on loopback prove that a refused request never reaches them.
 */

const NONE: AddressPolicy = { allowedCidrs: [] };
const LOOPBACK_V4: AddressPolicy = { allowedCidrs: ['127.0.0.0/8'] };
const LOOPBACK_V6: AddressPolicy = { allowedCidrs: ['::1/128'] };
const LOOPBACK_BOTH: AddressPolicy = { allowedCidrs: ['127.0.0.0/8', '::1/128'] };

const HAS_IPV6_LOOPBACK = Object.values(os.networkInterfaces())
  .flat()
  .some((i) => i?.address === '::1');
const itIPv6 = HAS_IPV6_LOOPBACK ? it : it.skip;

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  remote: string | undefined;
}

interface Target {
  port: number;
  /** TCP connections accepted: a blocked send must open none. */
  connections: number;
  requests: Seen[];
  close(): Promise<void>;
}

async function listen(host: string): Promise<Target> {
  const target = { connections: 0, requests: [] as Seen[] } as Target;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      target.requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        remote: req.socket.remoteAddress,
      });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('reached');
    });
  });
  server.on('connection', () => {
    target.connections += 1;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  target.port = (server.address() as AddressInfo).port;
  target.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return target;
}

const TIMEOUT_MS = 5_000;
// One keep-alive sender per policy, as in the worker: a connection opened under one policy is
// never reused under another.
const senders = new Map<AddressPolicy, Sender>();
const senderFor = (policy: AddressPolicy) => senders.get(policy) ?? senders.set(policy, createSender(policy)).get(policy)!;
const post = (url: string, policy: AddressPolicy, timeoutMs = TIMEOUT_MS) =>
  senderFor(policy).send(url, '{"event":"x"}', { 'content-type': 'application/json' }, { timeoutMs });

let v4: Target; // 127.0.0.1
let v4b: Target; // 127.1.2.3 (another loopback address of 127/8)
let v6: Target | undefined; // ::1
let localhostAnswer: LookupAddress[];

beforeAll(async () => {
  v4 = await listen('127.0.0.1');
  v4b = await listen('127.1.2.3');
  if (HAS_IPV6_LOOPBACK) v6 = await listen('::1');
  localhostAnswer = await dns.promises.lookup('localhost', { all: true, verbatim: true });
});
afterAll(async () => {
  await Promise.all([v4?.close(), v4b?.close(), v6?.close(), ...[...senders.values()].map((s) => s.close())]);
});
beforeEach(() => {
  for (const t of [v4, v4b, v6]) {
    if (!t) continue;
    t.connections = 0;
    t.requests.length = 0;
  }
});

const nothingReached = (...targets: (Target | undefined)[]) => {
  for (const t of targets) {
    if (!t) continue;
    expect(t.requests).toHaveLength(0);
    expect(t.connections).toBe(0);
  }
};

const expectBlocked = (result: AttemptResult) => {
  expect(result).toMatchObject({ error: 'ssrf_blocked', statusCode: null, responseBody: null, retryAfterMs: null });
  // Refused before connecting: nowhere near the timeout.
  expect(result.durationMs).toBeLessThan(TIMEOUT_MS / 10);
};

describe('the resolver on this machine', () => {
  it('resolves localhost to loopback addresses including 127.0.0.1 (the "hostname resolving to 127.0.0.1" case)', () => {
    const addresses = localhostAnswer.map((a) => a.address);
    expect(addresses).toContain('127.0.0.1');
    for (const a of addresses) expect(['127.0.0.1', '::1']).toContain(a);
  });
});

describe('isAllowedAddress with allowedCidrs: []', () => {
  // The table required by the product issue.
  const required = [
    '127.0.0.1',
    '10.0.0.1',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '[::1]',
    '::1',
    '[fc00::1]',
    'fc00::1',
    '[::ffff:127.0.0.1]',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
  ];
  it.each(required)('blocks %s (product issue table)', (address) => {
    expect(isAllowedAddress(address, NONE)).toBe(false);
  });

  const more = [
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified v6'],
    ['[::]', 'unspecified v6, bracketed'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast (SSDP)'],
    ['255.255.255.255', 'broadcast'],
    ['198.18.0.1', 'benchmarking'],
    ['192.0.2.1', 'TEST-NET-1'],
    ['198.51.100.7', 'TEST-NET-2'],
    ['203.0.113.9', 'TEST-NET-3'],
    ['240.0.0.1', 'reserved class E'],
    ['64:ff9b::7f00:1', 'NAT64 of 127.0.0.1'],
    ['64:ff9b::a00:1', 'NAT64 of 10.0.0.1'],
    ['64:ff9b:1::7f00:1', 'local-use NAT64 (RFC 8215)'],
    ['2002:7f00:1::', '6to4 of 127.0.0.1'],
    ['2001::7f00:1', 'Teredo'],
    ['fe80::1', 'link-local v6'],
    ['fe80::1%eth0', 'link-local v6 with zone id'],
    ['fec0::1', 'deprecated site-local'],
    ['ff02::1', 'multicast v6'],
    ['fd00::2', 'unique-local (this machine eth0)'],
    ['2001:db8::1', 'documentation v6'],
    ['127.1.2.3', 'loopback (whole 127/8)'],
    ['127.255.255.254', 'loopback (top of 127/8)'],
    ['172.31.255.255', 'private (top of 172.16/12)'],
    ['::ffff:10.0.0.1', 'IPv4-mapped 10.0.0.1'],
    ['::ffff:a00:1', 'IPv4-mapped 10.0.0.1, hex form'],
    ['::ffff:169.254.169.254', 'IPv4-mapped metadata address'],
    ['::ffff:0:7f00:1', 'IPv4-translated (RFC 6145)'],
    ['not-an-ip', 'unparsable'],
    ['', 'empty'],
    ['localhost', 'a hostname is not an address'],
  ];
  it.each(more)('blocks %s (%s)', (address) => {
    expect(isAllowedAddress(address, NONE)).toBe(false);
  });

  const allowed = [
    ['8.8.8.8'],
    ['1.1.1.1'],
    ['2001:4860:4860::8888'],
    ['[2001:4860:4860::8888]'],
    ['172.15.255.255'], // just below 172.16/12
    ['172.32.0.1'], // just above
    ['100.128.0.1'], // just above 100.64/10
    ['::ffff:8.8.8.8'], // mapped public stays public
  ];
  it.each(allowed)('allows the public address %s', (address) => {
    expect(isAllowedAddress(address, NONE)).toBe(true);
  });
});

describe('checkLiteralHost', () => {
  it.each(['127.0.0.1', '[::1]', '[::ffff:7f00:1]', '10.0.0.1', '[fc00::1]', '169.254.169.254'])('throws SsrfBlockedError for the literal %s', (host) => {
    let caught: unknown;
    try {
      checkLiteralHost(host, NONE);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SsrfBlockedError);
    expect((caught as SsrfBlockedError).code).toBe('ESSRFBLOCKED');
    expect((caught as SsrfBlockedError).address).toBe(host.replace(/^\[|\]$/g, ''));
  });

  it('passes public literals, allowed literals and hostnames (those are checked at lookup)', () => {
    expect(() => checkLiteralHost('8.8.8.8', NONE)).not.toThrow();
    expect(() => checkLiteralHost('[2001:4860:4860::8888]', NONE)).not.toThrow();
    expect(() => checkLiteralHost('127.0.0.1', LOOPBACK_V4)).not.toThrow();
    expect(() => checkLiteralHost('localhost', NONE)).not.toThrow();
  });
});

describe('send refuses local destinations before connecting (real servers listening)', () => {
  it('http://127.0.0.1 → ssrf_blocked, the server gets no connection; allowed, the same URL reaches it', async () => {
    const url = `http://127.0.0.1:${v4.port}/hooks`;
    expectBlocked(await post(url, NONE));
    nothingReached(v4, v4b, v6);
    // Control: the server is really there and would have received it.
    const ok = await post(url, LOOPBACK_V4);
    expect(ok).toMatchObject({ statusCode: 200, error: null, responseBody: 'reached' });
    expect(v4.requests).toHaveLength(1);
  });

  it('http://127.1.2.3 (anywhere in 127/8) → ssrf_blocked', async () => {
    const url = `http://127.1.2.3:${v4b.port}/hooks`;
    expectBlocked(await post(url, NONE));
    nothingReached(v4, v4b, v6);
    expect(await post(url, LOOPBACK_V4)).toMatchObject({ statusCode: 200, error: null });
    expect(v4b.requests).toHaveLength(1);
  });

  itIPv6('http://[::1] → ssrf_blocked, the server gets no connection; allowed, it reaches it', async () => {
    const url = `http://[::1]:${v6!.port}/hooks`;
    expectBlocked(await post(url, NONE));
    expectBlocked(await post(url, LOOPBACK_V4));
    nothingReached(v4, v4b, v6);
    expect(await post(url, LOOPBACK_V6)).toMatchObject({ statusCode: 200, error: null, responseBody: 'reached' });
    expect(v6!.requests).toHaveLength(1);
  });

  it('http://[::ffff:127.0.0.1] (IPv4-mapped loopback) → ssrf_blocked; allowed by 127.0.0.0/8 it reaches the 127.0.0.1 server', async () => {
    const url = `http://[::ffff:127.0.0.1]:${v4.port}/hooks`;
    expectBlocked(await post(url, NONE));
    expectBlocked(await post(url, LOOPBACK_V6));
    nothingReached(v4, v4b, v6);
    expect(await post(url, LOOPBACK_V4)).toMatchObject({ statusCode: 200, error: null });
    expect(v4.requests).toHaveLength(1);
  });

  it('http://localhost (a hostname resolving to 127.0.0.1) → ssrf_blocked at lookup, no connection', async () => {
    const url = `http://localhost:${v4.port}/hooks`;
    expectBlocked(await post(url, NONE));
    nothingReached(v4, v4b, v6);
  });

  it.each([
    ['decimal', '2130706433'],
    ['hex', '0x7f000001'],
    ['short', '127.1'],
    ['octal', '0177.0.0.1'],
    ['hex dotted', '0x7f.0.0.1'],
  ])('the %s spelling %s of 127.0.0.1 is normalized by the URL parser and blocked', async (_kind, host) => {
    const url = `http://${host}:${v4.port}/hooks`;
    expect(new URL(url).hostname).toBe('127.0.0.1');
    expectBlocked(await post(url, NONE));
    nothingReached(v4, v4b, v6);
  });

  it('http://[::127.0.0.1] (deprecated IPv4-compatible form) is refused by the policy', async () => {
    // The URL parser turns it into [::7f00:1]; ipaddr.js calls ::/96 unicast, so the policy
    // refuses the IPv4-compatible form explicitly.
    const url = `http://[::127.0.0.1]:${v4.port}/hooks`;
    expect(new URL(url).hostname).toBe('[::7f00:1]');
    expectBlocked(await post(url, NONE, 1_000));
    nothingReached(v4, v4b, v6);
  });

  it('a disallowed host refused at lookup never reaches the network even with a long timeout', async () => {
    const started = performance.now();
    const result = await post(`http://localhost:${v4.port}/`, NONE, 60_000);
    expect(result.error).toBe('ssrf_blocked');
    expect(performance.now() - started).toBeLessThan(2_000);
    nothingReached(v4);
  });
});

describe('send refuses non-local private and special destinations immediately', () => {
  it.each([
    'http://10.0.0.1/hooks',
    'http://172.16.0.1/hooks',
    'http://192.168.1.1/hooks',
    'http://169.254.169.254/latest/meta-data/',
    'http://100.64.0.1/hooks',
    'http://[fc00::1]/hooks',
    'https://10.0.0.1:8443/hooks',
    'http://0.0.0.0:9/hooks',
    'http://[::]:9/hooks',
    'http://224.0.0.1/hooks',
    'http://255.255.255.255/hooks',
    'http://198.18.0.1/hooks',
    'http://192.0.2.1/hooks',
    'http://[64:ff9b::7f00:1]/hooks',
    'http://[2002:7f00:1::]/hooks',
    'http://[fe80::1]/hooks',
    'http://[::ffff:10.0.0.1]/hooks',
    'http://[::ffff:169.254.169.254]/hooks',
  ])('%s → ssrf_blocked without connecting', async (url) => {
    const started = performance.now();
    const result = await post(url, NONE);
    expectBlocked(result);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('keep-alive connections', () => {
  afterEach(() => jest.restoreAllMocks());

  it('checks every new connection: a name re-resolving to a private address (DNS rebinding) is refused on the next one', async () => {
    // A server that closes each connection after answering, so every send needs a new one.
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { connection: 'close' }).end('reached'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const answers = ['127.0.0.1', '10.0.0.1'];
    const lookup = jest.spyOn(dns, 'lookup').mockImplementation(((_host: string, _opts: unknown, cb: (e: null, a: LookupAddress[]) => void) => {
      const address = answers.shift() ?? '10.0.0.1';
      process.nextTick(() => cb(null, [{ address, family: 4 }]));
    }) as never);
    const policy: AddressPolicy = { allowedCidrs: ['127.0.0.0/8'] };
    const sender = createSender(policy);
    try {
      expect(await sender.send(`http://rebind.example:${port}/`, '{}', {}, { timeoutMs: TIMEOUT_MS })).toMatchObject({
        statusCode: 200,
        responseBody: 'reached',
      });
      expect(await sender.send(`http://rebind.example:${port}/`, '{}', {}, { timeoutMs: TIMEOUT_MS })).toMatchObject({
        statusCode: null,
        error: 'ssrf_blocked',
      });
      expect(lookup).toHaveBeenCalledTimes(2);
    } finally {
      await sender.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a reused connection is the one that was checked: no new lookup while it stays open', async () => {
    const sender = createSender(LOOPBACK_BOTH);
    try {
      for (let i = 0; i < 2; i++)
        expect(await sender.send(`http://localhost:${v4.port}/again`, '{}', {}, { timeoutMs: TIMEOUT_MS })).toMatchObject({ statusCode: 200 });
      const warm = v4.connections;
      const lookup = jest.spyOn(dns, 'lookup');
      for (let i = 0; i < 5; i++)
        expect(await sender.send(`http://localhost:${v4.port}/again`, '{}', {}, { timeoutMs: TIMEOUT_MS })).toMatchObject({ statusCode: 200 });
      expect(v4.connections).toBe(warm);
      expect(lookup).not.toHaveBeenCalled();
    } finally {
      await sender.close();
    }
  });
});

describe('allowedCidrs', () => {
  it("['127.0.0.0/8']: 127.0.0.1 and [::ffff:127.0.0.1] succeed with 200, [::1] and 10.0.0.1 stay blocked", async () => {
    expect(await post(`http://127.0.0.1:${v4.port}/a`, LOOPBACK_V4)).toMatchObject({ statusCode: 200, error: null, responseBody: 'reached' });
    expect(await post(`http://[::ffff:127.0.0.1]:${v4.port}/b`, LOOPBACK_V4)).toMatchObject({ statusCode: 200, error: null, responseBody: 'reached' });
    expect(v4.requests.map((r) => r.url)).toEqual(['/a', '/b']);
    expect(v4.requests.every((r) => r.method === 'POST' && r.body === '{"event":"x"}')).toBe(true);
    expectBlocked(await post(`http://10.0.0.1/`, LOOPBACK_V4));
    if (v6) {
      expectBlocked(await post(`http://[::1]:${v6.port}/`, LOOPBACK_V4));
      nothingReached(v6);
    }
  });

  it("['127.0.0.0/8'] and localhost: allowed exactly when every address localhost resolves to is in 127/8", async () => {
    // The guard refuses the whole answer if ANY address is blocked. On a machine where
    // localhost also resolves to ::1, 127.0.0.0/8 alone is not enough.
    const allV4Loopback = localhostAnswer.every((a) => isAllowedAddress(a.address, LOOPBACK_V4));
    const result = await post(`http://localhost:${v4.port}/local`, LOOPBACK_V4);
    if (allV4Loopback) {
      expect(result).toMatchObject({ statusCode: 200, error: null, responseBody: 'reached' });
      expect(v4.requests.map((r) => r.url)).toEqual(['/local']);
    } else {
      expectBlocked(result);
      nothingReached(v4, v6);
    }
  });

  it("['127.0.0.0/8', '::1/128']: localhost is allowed whatever loopback addresses it resolves to", async () => {
    const result = await post(`http://localhost:${v4.port}/both`, LOOPBACK_BOTH);
    // Reached either the v4 server directly, or (if ::1 came first and nothing listens there on
    // that port) fell back to 127.0.0.1 via family autoselection; never an SSRF refusal.
    expect(result.error).not.toBe('ssrf_blocked');
    if (localhostAnswer.every((a) => a.family === 4)) {
      expect(result).toMatchObject({ statusCode: 200, error: null });
      expect(v4.requests).toHaveLength(1);
    }
  });

  itIPv6("['::1/128']: [::1] is allowed but 127.0.0.1, [::ffff:127.0.0.1] and a localhost resolving to 127.0.0.1 are not", async () => {
    expect(await post(`http://[::1]:${v6!.port}/six`, LOOPBACK_V6)).toMatchObject({ statusCode: 200, error: null, responseBody: 'reached' });
    expect(v6!.requests.map((r) => r.url)).toEqual(['/six']);
    expectBlocked(await post(`http://127.0.0.1:${v4.port}/`, LOOPBACK_V6));
    expectBlocked(await post(`http://[::ffff:127.0.0.1]:${v4.port}/`, LOOPBACK_V6));
    if (localhostAnswer.some((a) => a.address === '127.0.0.1')) expectBlocked(await post(`http://localhost:${v4.port}/`, LOOPBACK_V6));
    nothingReached(v4);
  });

  it('isAllowedAddress honours the CIDRs by family, mapped addresses matched as IPv4, malformed CIDRs ignored', () => {
    expect(isAllowedAddress('127.0.0.1', LOOPBACK_V4)).toBe(true);
    expect(isAllowedAddress('127.200.0.1', LOOPBACK_V4)).toBe(true);
    expect(isAllowedAddress('::ffff:127.0.0.1', LOOPBACK_V4)).toBe(true);
    expect(isAllowedAddress('::1', LOOPBACK_V4)).toBe(false);
    expect(isAllowedAddress('::1', LOOPBACK_V6)).toBe(true);
    expect(isAllowedAddress('[::1]', LOOPBACK_V6)).toBe(true);
    expect(isAllowedAddress('127.0.0.1', LOOPBACK_V6)).toBe(false);
    expect(isAllowedAddress('10.1.2.3', { allowedCidrs: ['10.1.0.0/16'] })).toBe(true);
    expect(isAllowedAddress('10.2.0.1', { allowedCidrs: ['10.1.0.0/16'] })).toBe(false);
    expect(isAllowedAddress('10.0.0.1', { allowedCidrs: ['not a cidr', '10.0.0.0/33', '10.0.0.1'] })).toBe(false);
    expect(isAllowedAddress('10.0.0.1', { allowedCidrs: ['garbage', '10.0.0.0/8'] })).toBe(true);
    // Allowing a range never blocks a public address.
    expect(isAllowedAddress('8.8.8.8', LOOPBACK_V4)).toBe(true);
  });
});

/** guardedLookup with a node-style callback, as a promise of [error, address | list, family]. */
const lookupWith = (policy: AddressPolicy, hostname: string, options: dns.LookupOptions) =>
  new Promise<{ error: (Error & { code?: string; address?: string }) | null; address: unknown; family: unknown }>((resolve) => {
    (guardedLookup(policy) as unknown as (h: string, o: dns.LookupOptions, cb: (...args: unknown[]) => void) => void)(
      hostname,
      options,
      (error, address, family) => resolve({ error: error as never, address, family }),
    );
  });

describe('guardedLookup', () => {
  it('hands the checked address (one of those resolved) to the socket', async () => {
    const { error, address, family } = await lookupWith(LOOPBACK_BOTH, 'localhost', {});
    expect(error).toBeNull();
    expect(localhostAnswer.map((a) => a.address)).toContain(address);
    expect(family).toBe(localhostAnswer.find((a) => a.address === address)!.family);
    // The first of the resolver's answer, in resolver order (verbatim).
    expect(address).toBe(localhostAnswer[0].address);
  });

  it('with {all: true} returns the whole (checked) answer', async () => {
    const { error, address } = await lookupWith(LOOPBACK_BOTH, 'localhost', { all: true });
    expect(error).toBeNull();
    expect(address).toEqual(localhostAnswer);
  });

  it("with ['127.0.0.0/8'] and {all: true}: the whole answer, or an SsrfBlockedError naming the first non-127/8 address", async () => {
    const { error, address } = await lookupWith(LOOPBACK_V4, 'localhost', { all: true });
    const offender = localhostAnswer.find((a) => !isAllowedAddress(a.address, LOOPBACK_V4));
    if (offender) {
      expect(error).toBeInstanceOf(SsrfBlockedError);
      expect(error!.address).toBe(offender.address);
      expect(address).toBeUndefined();
    } else {
      // This machine: localhost → 127.0.0.1 only, so 127.0.0.0/8 is enough.
      expect(error).toBeNull();
      expect(address).toEqual(localhostAnswer);
    }
  });

  it('a blocked answer gives the callback an SsrfBlockedError with .address (and nothing else)', async () => {
    for (const options of [{}, { all: true }] as dns.LookupOptions[]) {
      const { error, address, family } = await lookupWith(NONE, 'localhost', options);
      expect(error).toBeInstanceOf(SsrfBlockedError);
      expect(error!.code).toBe('ESSRFBLOCKED');
      expect(localhostAnswer.map((a) => a.address)).toContain(error!.address);
      expect(error!.message).toContain(error!.address!);
      expect(address).toBeUndefined();
      expect(family).toBeUndefined();
    }
  });

  itIPv6("['::1/128'] refuses localhost when it resolves to 127.0.0.1", async () => {
    const { error } = await lookupWith(LOOPBACK_V6, 'localhost', { all: true });
    expect(error).toBeInstanceOf(SsrfBlockedError);
    expect(error!.address).toBe(localhostAnswer.find((a) => a.family === 4)!.address);
  });

  it('passes resolver errors through (ENOTFOUND for .invalid)', async () => {
    const { error } = await lookupWith(NONE, 'no-such-host.invalid', {});
    expect(error).not.toBeNull();
    expect(error).not.toBeInstanceOf(SsrfBlockedError);
    expect(['ENOTFOUND', 'EAI_AGAIN']).toContain(error!.code);
  });

  describe('a mixed answer (resolver answer simulated: no name on this machine resolves to public + private)', () => {
    afterEach(() => jest.restoreAllMocks());
    const fake = (answer: LookupAddress[]) =>
      jest.spyOn(dns, 'lookup').mockImplementation(((_host: string, _opts: unknown, cb: (e: null, a: LookupAddress[]) => void) => {
        process.nextTick(() => cb(null, answer));
      }) as never);

    it('refuses the whole answer if ANY address is blocked, naming that address, whatever its position', async () => {
      fake([
        { address: '8.8.8.8', family: 4 },
        { address: '10.0.0.1', family: 4 },
      ]);
      for (const options of [{}, { all: true }] as dns.LookupOptions[]) {
        const { error, address } = await lookupWith(NONE, 'rebind.example', options);
        expect(error).toBeInstanceOf(SsrfBlockedError);
        expect(error!.address).toBe('10.0.0.1');
        expect(address).toBeUndefined();
      }
    });

    it('asks the resolver for all addresses, verbatim, and returns the first when all pass', async () => {
      const spy = fake([
        { address: '2001:4860:4860::8888', family: 6 },
        { address: '8.8.8.8', family: 4 },
      ]);
      const { error, address, family } = await lookupWith(NONE, 'public.example', { family: 0 });
      expect(error).toBeNull();
      expect(address).toBe('2001:4860:4860::8888');
      expect(family).toBe(6);
      expect(spy).toHaveBeenCalledWith('public.example', expect.objectContaining({ all: true, verbatim: true }), expect.any(Function));
    });

    it('an empty answer is ENOTFOUND, not a connection to nowhere', async () => {
      fake([]);
      const { error } = await lookupWith(NONE, 'empty.example', {});
      expect(error?.code).toBe('ENOTFOUND');
    });
  });
});
