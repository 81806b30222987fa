/**
 * The `dns` section of the configuration (docs/dns.md): the authoritative DNS server of
 * `iotdr control`, the TTL of the fleet's answers, the names that follow the active region, the
 * PowerDNS server it may also drive, and the `iotdr dns` servers that serve the zone beside it.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import {
  dnsLabelSchema,
  expecting,
  filePath,
  httpUrlSchema,
  integerWithin,
  type ListenerConfig,
  listener,
  nonEmptyString,
  oneOf,
  portSchema,
  type Range,
  section,
} from '../common/index.js';

/** Authoritative DNS server of `iotdr control` (UDP and TCP). */
export const DEFAULT_DNS_ADDRESS = '127.0.0.10';
export const DEFAULT_DNS_PORT = 5353;
/** HTTP port of an `iotdr dns` server (its /health and /metrics). */
export const DEFAULT_DNS_SERVER_HTTP_PORT = 8053;
/** Label of the control process's own name server: `ns.<zone>`; the zone's only one unless `servers` adds more. */
export const CONTROL_NAMESERVER = 'ns';
/** TTL of the fleet's A/AAAA answers, in seconds; part of the RTO, so kept short. Default 5. */
export const DEFAULT_DNS_TTL = 5;
/** `builtin`: only iotdr's own DNS serves the fleet's names; `powerdns`: a PowerDNS server too. */
export const DNS_PROVIDERS = ['builtin', 'powerdns'] as const;
export const DEFAULT_DNS_PROVIDER = 'builtin';
/** PowerDNS's id of the server it runs on. */
export const DEFAULT_POWERDNS_SERVER_ID = 'localhost';

/** Bounds of the section's numbers, inclusive. */
export const DNS_LIMITS = {
  /** Seconds: a day at most, a TTL longer than that only slows a failover down. */
  ttl: { min: 1, max: 86_400 },
} as const satisfies Record<string, Range>;

export interface PowerDnsConfig {
  /** Base URL of the PowerDNS Authoritative HTTP API, e.g. http://127.0.0.1:8081. */
  readonly url: string;
  /** Server id in the API path. Default localhost. */
  readonly serverId: string;
  /** File holding the API key (mode 0600); absolute, or relative to the state directory. */
  readonly apiKeyFile: string;
}

export interface DnsConfig extends ListenerConfig {
  /** TTL of the fleet's answers in seconds, 1..86400. Default 5. */
  readonly ttl: number;
  /**
   * Who else serves the fleet's names: `builtin` (default) only the DNS of `iotdr control`;
   * `powerdns` also an existing PowerDNS Authoritative server, driven through its API.
   */
  readonly provider: (typeof DNS_PROVIDERS)[number];
  /** More failover names (labels under the zone) that follow the active region like mqtt and api. */
  readonly extraNames: readonly string[];
  readonly powerdns?: PowerDnsConfig;
  /**
   * More authoritative servers for the zone, each an `iotdr dns --name NAME` process (one per
   * region, say) that follows the controller and keeps serving its last decision without it.
   * Listed with `ns.<zone>` (iotdr control's own) in the zone's NS records.
   */
  readonly servers: readonly DnsServerConfig[];
}

export interface DnsServerConfig {
  /** The server's label: `NAME.<zone>` is an NS of the zone. Not `ns`, nor a fleet name. */
  readonly name: string;
  /** IPv4 or IPv6 literal it listens on (and the NS glue answers). */
  readonly address: string;
  /** DNS port, UDP and TCP. Default 5353. */
  readonly port: number;
  /** Port of its HTTP endpoint on the same address: /health, /metrics. Default 8053. */
  readonly httpPort: number;
}

const IP_MESSAGE = 'expected an IPv4 or IPv6 literal (DNS serves it as glue, so not a hostname)';
const ipLiteralSchema = z
  .string({ error: expecting(IP_MESSAGE) })
  .refine((value) => isIP(value) !== 0, { error: expecting(IP_MESSAGE) });

export const dnsSection = section({
  ...listener(DEFAULT_DNS_ADDRESS, DEFAULT_DNS_PORT),
  ttl: integerWithin(DNS_LIMITS.ttl, 'seconds').default(DEFAULT_DNS_TTL),
  provider: oneOf(DNS_PROVIDERS).default(DEFAULT_DNS_PROVIDER),
  extraNames: z
    .array(dnsLabelSchema, { error: expecting('expected a list of DNS labels') })
    .prefault(() => []),
  powerdns: section({
    url: httpUrlSchema,
    serverId: nonEmptyString('a PowerDNS server id').default(DEFAULT_POWERDNS_SERVER_ID),
    apiKeyFile: filePath(),
  }).optional(),
  servers: z
    .array(
      section({
        name: dnsLabelSchema,
        address: ipLiteralSchema,
        port: portSchema.default(DEFAULT_DNS_PORT),
        httpPort: portSchema.default(DEFAULT_DNS_SERVER_HTTP_PORT),
      }),
      { error: expecting('expected a list of { name, address, port, httpPort }') },
    )
    .prefault(() => []),
}).prefault({});
