import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { httpAddressRefused } from './errors.js';

/**
 * Where a rule's HTTP action may connect. A rule is written over the API by an operator token, so
 * without this its URL could reach what only the region's host should: its own loopback services,
 * the cloud metadata address (169.254.169.254), the private network behind it. An address the IANA
 * special-purpose registries (RFC 6890 and successors) mark as not globally reachable is refused
 * unless one of `allowedNetworks` holds it. The check runs on the address a connection is about to
 * use, after name resolution (the agents' `lookup`), so a name that resolves somewhere else at
 * connect time than when the rule was written (DNS rebinding) gains nothing.
 */

interface Network {
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly prefix: number;
}

interface SpecialNetwork extends Network {
  readonly label: string;
}

/** The bits of an address (IPv6 zone ids dropped), or undefined when it is not an IP literal. */
export function addressBits(address: string): { family: 4 | 6; bits: bigint } | undefined {
  const plain = address.replace(/%.*$/, '');
  const family = isIP(plain);
  if (family === 4) return { family, bits: v4Bits(plain) };
  if (family !== 6) return undefined;
  let text = plain;
  // A dotted quad at the end (::ffff:127.0.0.1) is the last two groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad?.[1]) {
    const v4 = v4Bits(quad[1]);
    text = `${text.slice(0, -quad[1].length)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return { family: 6, bits: all.reduce((acc, g) => (acc << 16n) | BigInt(`0x${g}`), 0n) };
}

function v4Bits(address: string): bigint {
  return address.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(Number(octet)), 0n);
}

function mask(family: 4 | 6, prefix: number): bigint {
  const width = family === 4 ? 32n : 128n;
  return ((1n << width) - 1n) ^ ((1n << (width - BigInt(prefix))) - 1n);
}

function contains(network: Network, family: 4 | 6, bits: bigint): boolean {
  return network.family === family && (bits & mask(family, network.prefix)) === network.base;
}

/** A CIDR (`10.0.0.0/8`, `fd00::/8`) or one address; why it is not one, as a string. */
export function parseNetwork(text: string): Network | string {
  const [address = '', prefixText, extra] = text.split('/');
  const parsed = addressBits(address);
  if (!parsed || extra !== undefined || address.includes('%'))
    return 'expected a network in CIDR form (10.0.0.0/8, fd00::/8) or one IP address';
  const width = parsed.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
  if (prefix < 0 || prefix > width) return `expected a prefix length from 0 to ${width} after the /`;
  const base = parsed.bits & mask(parsed.family, prefix);
  if (base !== parsed.bits) return `the address has bits set past the /${prefix} prefix`;
  return { family: parsed.family, base, prefix };
}

function special(cidr: string, label: string): SpecialNetwork {
  const network = parseNetwork(cidr);
  if (typeof network === 'string') throw new Error(`${cidr}: ${network}`);
  return { ...network, label };
}

/** IPv4 networks that are not globally reachable (IANA IPv4 special-purpose address registry). */
const SPECIAL_V4: readonly SpecialNetwork[] = [
  special('0.0.0.0/8', 'unspecified ("this network")'),
  special('10.0.0.0/8', 'private (RFC 1918)'),
  special('100.64.0.0/10', 'shared address space (RFC 6598)'),
  special('127.0.0.0/8', 'loopback'),
  special('169.254.0.0/16', 'link-local (cloud metadata among them)'),
  special('172.16.0.0/12', 'private (RFC 1918)'),
  special('192.0.0.0/24', 'IETF protocol assignments'),
  special('192.0.2.0/24', 'documentation'),
  special('192.168.0.0/16', 'private (RFC 1918)'),
  special('198.18.0.0/15', 'benchmarking'),
  special('198.51.100.0/24', 'documentation'),
  special('203.0.113.0/24', 'documentation'),
  special('224.0.0.0/4', 'multicast'),
  special('240.0.0.0/4', 'reserved (broadcast among them)'),
];

/** IPv6 networks carrying an IPv4 address in their last 32 bits: that address is checked. */
const EMBEDDING_V6: readonly SpecialNetwork[] = [
  special('::ffff:0:0/96', 'IPv4-mapped'),
  special('64:ff9b::/96', 'NAT64'),
];

/** IPv6 networks that are not globally reachable (IANA IPv6 special-purpose address registry). */
const SPECIAL_V6: readonly SpecialNetwork[] = [
  special('::/128', 'unspecified'),
  special('::1/128', 'loopback'),
  special('::/96', 'IPv4-compatible (deprecated)'),
  special('64:ff9b:1::/48', 'NAT64 local use'),
  special('100::/64', 'discard-only'),
  special('2001::/32', 'Teredo'),
  special('2001:db8::/32', 'documentation'),
  special('2002::/16', '6to4'),
  special('fc00::/7', 'unique local'),
  special('fe80::/10', 'link-local'),
  special('fec0::/10', 'site-local (deprecated)'),
  special('ff00::/8', 'multicast'),
];

/** Why an HTTP action may not connect to `address`, or undefined when it may. */
export type AddressCheck = (address: string) => string | undefined;

/**
 * The check of one region: `allowedNetworks` (CIDRs) open networks the default refuses, the
 * region's own private LAN for instance.
 */
export function addressCheck(allowedNetworks: readonly string[]): AddressCheck {
  const allowed = allowedNetworks.map((text) => {
    const network = parseNetwork(text);
    if (typeof network === 'string') throw new Error(`allowed network ${text}: ${network}`);
    return network;
  });
  const isAllowed = (family: 4 | 6, bits: bigint) => allowed.some((n) => contains(n, family, bits));
  return (address) => {
    const parsed = addressBits(address);
    if (!parsed) return `${address} is not an IP address`;
    if (isAllowed(parsed.family, parsed.bits)) return undefined;
    if (parsed.family === 6) {
      const embedding = EMBEDDING_V6.find((n) => contains(n, 6, parsed.bits));
      if (embedding) {
        const v4 = parsed.bits & 0xffff_ffffn;
        if (isAllowed(4, v4)) return undefined;
        const inner = SPECIAL_V4.find((n) => contains(n, 4, v4));
        return inner && `${address} is ${inner.label} (${embedding.label})`;
      }
    }
    const network = (parsed.family === 4 ? SPECIAL_V4 : SPECIAL_V6).find((n) =>
      contains(n, parsed.family, parsed.bits),
    );
    return network && `${address} is ${network.label}`;
  };
}

/**
 * A `lookup` for net.connect that resolves as the system does, then keeps only the addresses
 * `check` lets through; when none is left the connection fails with IOTDR_RULES_HTTP_ADDRESS_REFUSED.
 */
export function checkedLookup(check: AddressCheck): LookupFunction {
  return (hostname, options, callback) => {
    const all: LookupAllOptions = { ...options, all: true };
    dnsLookup(hostname, all, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 0);
      const reasons: string[] = [];
      const kept = addresses.filter((a) => {
        const reason = check(a.address);
        if (reason) reasons.push(reason);
        return reason === undefined;
      });
      const [first] = kept;
      if (!first)
        return callback(
          httpAddressRefused(`${hostname} resolves only to refused addresses (${reasons.join('; ')})`),
          '',
          0,
        );
      if (options.all) return (callback as (e: null, a: LookupAddress[]) => void)(null, kept);
      callback(null, first.address, first.family);
    });
  };
}

/** The connection pools of one region's HTTP actions: every socket they open is checked. */
export interface Egress {
  readonly check: AddressCheck;
  readonly http: HttpAgent;
  readonly https: HttpsAgent;
}

export function egress(allowedNetworks: readonly string[]): Egress {
  const check = addressCheck(allowedNetworks);
  // Own pools: a kept-alive socket of another pool was checked against another list, if at all.
  const lookup = checkedLookup(check);
  return {
    check,
    http: new HttpAgent({ keepAlive: true, lookup }),
    https: new HttpsAgent({ keepAlive: true, lookup }),
  };
}
