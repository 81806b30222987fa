/**
 * Drives an existing PowerDNS Authoritative server through its HTTP API, for users who keep their
 * own DNS: the fleet's records are replaced with one PATCH per decision (PowerDNS applies a PATCH
 * in one transaction and purges its caches for the zone), and the zone is created when missing.
 */
import { z } from 'zod';
import { DEFAULT_API_NAME, DEFAULT_MQTT_NAME, DNS_NAME_PATTERN, formatPath } from '../../common/index.js';
import { CONTROL_NAMESERVER, DEFAULT_POWERDNS_SERVER_ID, DNS_LIMITS } from '../config.js';
import { invalidDnsState } from '../errors.js';
import { type ActiveRegion, addressType, parseStatusText, STATUS_LABEL, statusText } from '../state.js';
import type { Timers } from '../timers.js';
import { checkEpoch, parseActive } from './fence.js';
import { PowerDnsClient, type PowerDnsZone, type RrsetChange } from './powerdns-client.js';
import type { DnsProvider } from './types.js';

/** Timeout of one API request, ms. */
export const DEFAULT_POWERDNS_TIMEOUT_MS = 5000;

const relative = z.string().regex(DNS_NAME_PATTERN, 'expected a lowercase relative DNS name such as mqtt');

const optionsSchema = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
    serverId: z.string().min(1).default(DEFAULT_POWERDNS_SERVER_ID),
    apiKey: z.string().min(1, 'expected the API key (read from its 0600 file by the caller)'),
    zone: z.string().regex(DNS_NAME_PATTERN, 'expected a lowercase DNS name such as iot.test'),
    ttl: z.number().int().min(DNS_LIMITS.ttl.min).max(DNS_LIMITS.ttl.max),
    names: z
      .object({
        mqtt: relative.default(DEFAULT_MQTT_NAME),
        api: relative.default(DEFAULT_API_NAME),
        extra: z.array(relative).default([]),
      })
      .prefault({}),
    nameservers: z.array(relative).min(1).default([CONTROL_NAMESERVER]),
    timeoutMs: z.number().int().min(1).max(600_000).default(DEFAULT_POWERDNS_TIMEOUT_MS),
  })
  .strict();

export interface PowerDnsProviderOptions {
  /** Base URL of the PowerDNS webserver, e.g. `http://127.0.0.1:8081`. */
  readonly url: string;
  /** Server id in the API path. Default `localhost`. */
  readonly serverId?: string;
  /** The `api-key` of PowerDNS; the caller reads it from a 0600 file. */
  readonly apiKey: string;
  /** Zone without the trailing dot, e.g. `iot.test`. */
  readonly zone: string;
  /** TTL of the fleet's records, seconds. */
  readonly ttl: number;
  /** Labels of the failover names. Defaults `mqtt`, `api`, no extra. */
  readonly names?: { readonly mqtt?: string; readonly api?: string; readonly extra?: readonly string[] };
  /** Name servers (relative) put in a zone the provider creates. Default `['ns']`. */
  readonly nameservers?: readonly string[];
  /** Timeout of one API request, ms. Default 5000. */
  readonly timeoutMs?: number;
  readonly timers?: Timers;
}

export class PowerDnsProvider implements DnsProvider {
  readonly kind = 'powerdns';
  readonly #client: PowerDnsClient;
  readonly #zone: string;
  readonly #ttl: number;
  readonly #fleetNames: readonly string[];
  readonly #statusName: string;
  readonly #nameservers: readonly string[];

  constructor(options: PowerDnsProviderOptions) {
    const { timers, ...rest } = options;
    const parsed = optionsSchema.safeParse(rest);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
      throw invalidDnsState(
        `invalid PowerDNS provider options: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        issues,
      );
    }
    const o = parsed.data;
    this.#client = new PowerDnsClient({
      url: o.url,
      serverId: o.serverId,
      apiKey: o.apiKey,
      timeoutMs: o.timeoutMs,
      ...(timers ? { timers } : {}),
    });
    this.#zone = o.zone;
    this.#ttl = o.ttl;
    const fqdn = (label: string): string => `${label}.${o.zone}.`;
    this.#fleetNames = [...new Set([o.names.mqtt, o.names.api, ...o.names.extra])].map(fqdn);
    this.#statusName = fqdn(`${STATUS_LABEL}.${o.names.mqtt}`);
    this.#nameservers = o.nameservers.map(fqdn);
  }

  async apply(input: ActiveRegion): Promise<void> {
    const active = parseActive(input);
    let zone = await this.#client.getZone(this.#zone);
    if (!zone) {
      await this.#createZone();
      zone = await this.#client.getZone(this.#zone);
    }
    // Read-then-write: fencing holds against a stale controller, not against two racing writers.
    if (checkEpoch(zone ? this.#decode(zone) : undefined, active)) return;
    const type = addressType(active.address);
    const other = type === 'A' ? 'AAAA' : 'A';
    const changes: RrsetChange[] = this.#fleetNames.flatMap((name) => [
      {
        name,
        type,
        ttl: this.#ttl,
        changetype: 'REPLACE',
        records: [{ content: active.address, disabled: false }],
      },
      { name, type: other, changetype: 'DELETE' },
    ]);
    changes.push({
      name: this.#statusName,
      type: 'TXT',
      ttl: this.#ttl,
      changetype: 'REPLACE',
      records: [{ content: `"${statusText(active)}"`, disabled: false }],
    });
    await this.#client.patchRrsets(this.#zone, changes);
  }

  async current(): Promise<ActiveRegion | undefined> {
    const zone = await this.#client.getZone(this.#zone);
    return zone ? this.#decode(zone) : undefined;
  }

  async close(): Promise<void> {}

  #decode(zone: PowerDnsZone): ActiveRegion | undefined {
    const enabled = (name: string, type: string): string[] =>
      zone.rrsets
        .filter((r) => r.name.toLowerCase() === name && r.type === type)
        .flatMap((r) => r.records.filter((rec) => rec.disabled !== true).map((rec) => rec.content));
    const txt = enabled(this.#statusName, 'TXT')[0];
    const status = txt === undefined ? undefined : parseStatusText(txt.replace(/^"|"$/g, ''));
    const mqtt = this.#fleetNames[0] ?? '';
    const address = enabled(mqtt, 'A')[0] ?? enabled(mqtt, 'AAAA')[0];
    if (!status || address === undefined) return undefined;
    return Object.freeze({ ...status, address });
  }

  async #createZone(): Promise<void> {
    const mname = this.#nameservers[0] ?? `ns.${this.#zone}.`;
    await this.#client.createZone({
      name: `${this.#zone}.`,
      kind: 'Native',
      nameservers: this.#nameservers,
      // SOA minimum = the fleet TTL: a NODATA (AAAA of an IPv4 region) is forgotten as fast as an answer.
      rrsets: [
        {
          name: `${this.#zone}.`,
          type: 'SOA',
          ttl: 3600,
          records: [
            {
              content: `${mname} hostmaster.${this.#zone}. 1 10800 3600 604800 ${this.#ttl}`,
              disabled: false,
            },
          ],
        },
      ],
    });
  }
}
