import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import net from 'node:net';
import ipaddr from 'ipaddr.js';

export class SsrfBlockedError extends Error {
  override name = 'SsrfBlockedError';
  readonly code = 'ESSRFBLOCKED';
  constructor(readonly address: string) {
    super(`address ${address} is not allowed as a webhook destination`);
  }
}

export interface AddressPolicy {
  /** CIDRs that are allowed although not public (WEBHOOK_ALLOWED_CIDRS, e.g. 127.0.0.0/8 in tests). */
  allowedCidrs: readonly string[];
}

/**
 * Only public unicast addresses are allowed: loopback, private, link-local (169.254.169.254
 * included), shared 100.64/10, unique-local, multicast, reserved, unspecified and the IPv6
 * forms that embed IPv4 (mapped, NAT64, 6to4, Teredo) are refused unless explicitly allowed.
 */
export function isAllowedAddress(address: string, policy: AddressPolicy): boolean {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
  } catch {
    return false;
  }
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
    // The deprecated IPv4-compatible form ::a.b.c.d (ipaddr.js calls it unicast) embeds IPv4 too.
    else if (v6.parts.slice(0, 6).every((part) => part === 0) && v6.range() === 'unicast') return false;
  }
  for (const cidr of policy.allowedCidrs) {
    try {
      const range = ipaddr.parseCIDR(cidr);
      if (range[0].kind() === parsed.kind() && parsed.match(range as [typeof parsed, number])) return true;
    } catch {
      // config validation rejects malformed CIDRs; ignore defensively
    }
  }
  return parsed.range() === 'unicast';
}

/**
 * A `lookup` for http.request: resolves, refuses the whole answer if any address is not
 * allowed, and hands the checked address to the socket, so the connection goes to exactly the
 * address that was checked (no DNS-rebinding window between check and connect).
 */
export function guardedLookup(policy: AddressPolicy): LookupFunction {
  return ((hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    dns.lookup(hostname, { ...options, all: true, verbatim: true }, (error, addresses) => {
      if (error) return callback(error);
      const list = addresses as dns.LookupAddress[];
      const blocked = list.find((a) => !isAllowedAddress(a.address, policy));
      if (blocked) return callback(new SsrfBlockedError(blocked.address));
      if (list.length === 0) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }));
      if (options.all) return callback(null, list);
      return callback(null, list[0].address, list[0].family);
    });
  }) as LookupFunction;
}

/** IP-literal hosts never reach `lookup`: they are checked here before connecting. */
export function checkLiteralHost(hostname: string, policy: AddressPolicy): void {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host) && !isAllowedAddress(host, policy)) throw new SsrfBlockedError(host);
}
