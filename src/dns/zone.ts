/**
 * The state compiled into a lookup table, once per `setState`, so that answering a query is a map
 * lookup. Keys are lowercase absolute names without the trailing dot.
 */
import type { SoaData } from 'dns-packet';
import { addressType, type DnsState, STATUS_LABEL, statusText } from './state.js';

export interface ZoneNode {
  readonly a: readonly string[];
  readonly aaaa: readonly string[];
  readonly txt: readonly string[];
  /** TTL of this node's records, seconds. */
  readonly ttl: number;
  /** A failover name whose data depends on the decision; SERVFAIL while there is none. */
  readonly fleet: boolean;
}

export interface Zone {
  /** Lowercase zone, e.g. `iot.test`. */
  readonly origin: string;
  readonly soa: SoaData;
  /** TTL of the SOA and NS records. */
  readonly apexTtl: number;
  /** TTL of the SOA in negative answers: min(SOA TTL, SOA MINIMUM), RFC 2308 §3. */
  readonly negativeTtl: number;
  /** Absolute names of the name servers, in configured order, without duplicates. */
  readonly nameservers: readonly string[];
  readonly nodes: ReadonlyMap<string, ZoneNode>;
  /** Names that own no records but have descendants that do: NODATA, not NXDOMAIN (RFC 8020). */
  readonly emptyNonTerminals: ReadonlySet<string>;
  /** No decision yet: the fleet's names answer SERVFAIL. */
  readonly pending: boolean;
}

interface MutableNode {
  a: string[];
  aaaa: string[];
  txt: string[];
  ttl: number;
  fleet: boolean;
}

export function compileZone(state: DnsState): Zone {
  const origin = state.zone;
  const abs = (relative: string): string => `${relative}.${origin}`;
  const nodes = new Map<string, MutableNode>();
  const node = (name: string, ttl: number, fleet: boolean): MutableNode => {
    let n = nodes.get(name);
    if (!n) {
      n = { a: [], aaaa: [], txt: [], ttl, fleet };
      nodes.set(name, n);
    }
    return n;
  };

  const active = state.active;
  for (const label of [state.names.mqtt, state.names.api, ...state.names.extra]) {
    const n = node(abs(label), state.ttl, true);
    if (active) (addressType(active.address) === 'A' ? n.a : n.aaaa).push(active.address);
  }
  const status = node(abs(`${STATUS_LABEL}.${state.names.mqtt}`), state.ttl, true);
  if (active) status.txt.push(statusText(active));

  const nameservers: string[] = [];
  for (const ns of state.nameservers) {
    const name = abs(ns.name);
    if (!nameservers.includes(name)) nameservers.push(name);
    const n = node(name, state.soa.ttl, false);
    const list = addressType(ns.address) === 'A' ? n.a : n.aaaa;
    if (!list.includes(ns.address)) list.push(ns.address);
  }
  node(origin, state.soa.ttl, false);

  const emptyNonTerminals = new Set<string>();
  for (const name of nodes.keys()) {
    let parent = name.slice(name.indexOf('.') + 1);
    while (parent.length > origin.length && !nodes.has(parent)) {
      emptyNonTerminals.add(parent);
      parent = parent.slice(parent.indexOf('.') + 1);
    }
  }

  const soa: SoaData = {
    mname: nameservers[0] ?? abs('ns'),
    rname: abs(state.soa.hostmaster),
    // RFC 1982 serials are 32-bit; epochs only grow, so wrapping keeps them moving.
    serial: state.soa.serial ?? (active?.epoch ?? 0) % 4_294_967_296,
    refresh: state.soa.refresh,
    retry: state.soa.retry,
    expire: state.soa.expire,
    minimum: state.soa.minimum,
  };
  return {
    origin,
    soa,
    apexTtl: state.soa.ttl,
    negativeTtl: Math.min(state.soa.ttl, state.soa.minimum),
    nameservers,
    nodes,
    emptyNonTerminals,
    pending: active === undefined,
  };
}

/** `name` (lowercase) is the zone or below it. */
export function inZone(zone: Zone, name: string): boolean {
  return name === zone.origin || name.endsWith(`.${zone.origin}`);
}
