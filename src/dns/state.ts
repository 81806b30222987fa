/**
 * The record state the DNS server serves: the zone, the fleet's names and the active region. The
 * failover controller (or a provider) hands a new state over on every decision; it is validated once
 * here into a frozen object, and everything downstream works on the parsed value.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import {
  DEFAULT_API_NAME,
  DEFAULT_MQTT_NAME,
  DNS_NAME_PATTERN,
  type FieldIssue,
  formatPath,
  REGION_NAME_PATTERN,
} from '../common/index.js';
import { DEFAULT_DNS_TTL, DNS_LIMITS } from './config.js';
import { invalidDnsState } from './errors.js';

/** TTL of the apex SOA and NS records and of the name servers' addresses, in seconds. */
export const DEFAULT_APEX_TTL = 3600;
/** SOA timers (seconds); only secondaries read them, and iotdr has none, so they are conventional values. */
export const DEFAULT_SOA_REFRESH = 3600;
export const DEFAULT_SOA_RETRY = 600;
export const DEFAULT_SOA_EXPIRE = 86_400;
/** Mailbox of the SOA, relative to the zone: `hostmaster.<zone>`. */
export const DEFAULT_HOSTMASTER = 'hostmaster';
/** Relative name of the TXT record that says which region is active and at what epoch. */
export const STATUS_LABEL = '_iotdr';

export interface ActiveRegion {
  /** Region name, `^[a-z][a-z0-9-]{0,62}$`. */
  readonly region: string;
  /** IPv4 (answered as A) or IPv6 (answered as AAAA) literal. */
  readonly address: string;
  /** Fencing epoch of the decision, an integer ≥ 0. */
  readonly epoch: number;
}

export interface NameServer {
  /** Name relative to the zone, e.g. `ns` for `ns.<zone>`. */
  readonly name: string;
  /** IPv4 or IPv6 literal served as the name server's A/AAAA (glue). */
  readonly address: string;
}

export interface SoaSettings {
  /** Mailbox relative to the zone (`hostmaster` → `hostmaster.<zone>`). Default `hostmaster`. */
  readonly hostmaster: string;
  /** SOA serial; default: the active epoch (0 when none), so every switch bumps it. */
  readonly serial: number | undefined;
  /** Seconds. Defaults 3600, 600, 86400. */
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  /** Negative-caching TTL (RFC 2308), seconds. Default: the fleet TTL, so a NODATA is forgotten as fast as an answer. */
  readonly minimum: number;
  /** TTL of the SOA, NS and name-server address records, seconds. Default 3600. */
  readonly ttl: number;
}

export interface DnsState {
  /** Lowercase zone without the trailing dot, e.g. `iot.test`. */
  readonly zone: string;
  /** TTL of the fleet's answers, seconds (1..86400). */
  readonly ttl: number;
  /** Labels (relative names) of the fleet's failover names. */
  readonly names: { readonly mqtt: string; readonly api: string; readonly extra: readonly string[] };
  /** The region the fleet's names point at; undefined before the first decision (answered SERVFAIL). */
  readonly active: ActiveRegion | undefined;
  /** At least one; each becomes an NS record at the apex and an A/AAAA record of its own. */
  readonly nameservers: readonly NameServer[];
  readonly soa: SoaSettings;
}

const ttlSchema = z.number().int().min(0).max(2_147_483_647);
const relativeName = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(
    z
      .string()
      .regex(
        DNS_NAME_PATTERN,
        'expected a relative DNS name such as mqtt (labels of a-z, 0-9, inner hyphens)',
      ),
  );
const ipSchema = z.string().refine((s) => isIP(s) !== 0, 'expected an IPv4 or IPv6 literal');

export const activeRegionSchema = z
  .object({
    region: z
      .string()
      .regex(REGION_NAME_PATTERN, 'expected a region name: a-z first, then a-z, 0-9 or -, at most 63'),
    address: ipSchema,
    epoch: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  })
  .strict();

const stateSchema = z
  .object({
    zone: z
      .string()
      .transform((s) => s.toLowerCase().replace(/\.$/, ''))
      .pipe(z.string().regex(DNS_NAME_PATTERN, 'expected a DNS name such as iot.test')),
    ttl: z.number().int().min(DNS_LIMITS.ttl.min).max(DNS_LIMITS.ttl.max).default(DEFAULT_DNS_TTL),
    names: z
      .object({
        mqtt: relativeName.default(DEFAULT_MQTT_NAME),
        api: relativeName.default(DEFAULT_API_NAME),
        extra: z.array(relativeName).default([]),
      })
      .strict()
      .prefault({}),
    active: activeRegionSchema.optional(),
    nameservers: z
      .array(z.object({ name: relativeName, address: ipSchema }).strict())
      .min(1, 'expected at least one name server'),
    soa: z
      .object({
        hostmaster: relativeName.default(DEFAULT_HOSTMASTER),
        serial: z.number().int().min(0).max(4_294_967_295).optional(),
        refresh: ttlSchema.default(DEFAULT_SOA_REFRESH),
        retry: ttlSchema.default(DEFAULT_SOA_RETRY),
        expire: ttlSchema.default(DEFAULT_SOA_EXPIRE),
        minimum: ttlSchema.optional(),
        ttl: ttlSchema.default(DEFAULT_APEX_TTL),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** What `setState` accepts: the state with every defaulted field optional, or a parsed state. */
export type DnsStateInput = z.input<typeof stateSchema> | DnsState;

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Every owner name the state defines, relative to the zone, for the collision check. */
function ownNames(s: { names: DnsState['names'] }): string[] {
  return [s.names.mqtt, s.names.api, ...s.names.extra, `${STATUS_LABEL}.${s.names.mqtt}`];
}

function fail(issues: FieldIssue[]): never {
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw invalidDnsState(`invalid DNS record state: ${summary}`, issues);
}

/** Validates and freezes a record state; throws `ValidationError` (`IOTDR_DNS_INVALID_STATE`) naming every bad field. */
export function parseDnsState(input: unknown): DnsState {
  const result = stateSchema.safeParse(input);
  if (!result.success) {
    fail(result.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })));
  }
  const s = result.data;
  const issues: FieldIssue[] = [];
  const seen = new Set<string>();
  for (const name of ownNames(s)) {
    if (seen.has(name)) issues.push({ path: 'names', message: `name ${name} is configured twice` });
    seen.add(name);
  }
  for (const [i, ns] of s.nameservers.entries()) {
    if (seen.has(ns.name)) {
      issues.push({ path: `nameservers.${i}.name`, message: `${ns.name} is also a fleet name` });
    }
  }
  for (const name of [...seen, ...s.nameservers.map((n) => n.name), s.soa.hostmaster]) {
    if (`${name}.${s.zone}`.length > 253) {
      issues.push({ path: 'names', message: `${name}.${s.zone} is longer than 253 characters` });
    }
  }
  if (issues.length > 0) throw invalidDnsState('invalid DNS record state', issues);
  return deepFreeze({
    zone: s.zone,
    ttl: s.ttl,
    names: s.names,
    active: s.active,
    nameservers: s.nameservers,
    soa: { ...s.soa, serial: s.soa.serial, minimum: s.soa.minimum ?? s.ttl },
  });
}

/** The TXT content of `_iotdr.<mqtt>.<zone>`. */
export function statusText(active: ActiveRegion): string {
  return `region=${active.region} epoch=${active.epoch}`;
}

/** Reads `region=<name> epoch=<n>` back; undefined when the text is not in that form. */
export function parseStatusText(text: string): { region: string; epoch: number } | undefined {
  const match = /^region=(\S+) epoch=(\d{1,16})$/.exec(text.trim());
  if (!match?.[1] || !match[2] || !REGION_NAME_PATTERN.test(match[1])) return undefined;
  return { region: match[1], epoch: Number(match[2]) };
}

/** The A or AAAA record type an address is served as. */
export function addressType(address: string): 'A' | 'AAAA' {
  return isIP(address) === 6 ? 'AAAA' : 'A';
}
