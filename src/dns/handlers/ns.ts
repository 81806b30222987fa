/**
 * NS (RFC 1035 §3.3.11): only at the apex, with the name servers' addresses in the additional
 * section, which a resolver needs because the servers are named inside the zone they serve.
 */
import type { Answer } from 'dns-packet';
import type { Zone } from '../zone.js';
import { addressRecords } from './address.js';
import { type Handler, NO_DATA } from './types.js';

export function nsRecords(zone: Zone, owner: string): Answer[] {
  return zone.nameservers.map((data) => ({ name: owner, type: 'NS', class: 'IN', ttl: zone.apexTtl, data }));
}

export function glue(zone: Zone): Answer[] {
  return zone.nameservers.flatMap((ns) => [
    ...addressRecords(zone, ns, ns, 'A'),
    ...addressRecords(zone, ns, ns, 'AAAA'),
  ]);
}

export const handleNS: Handler = (lookup) =>
  lookup.key === lookup.zone.origin
    ? { answers: nsRecords(lookup.zone, lookup.name), additionals: glue(lookup.zone) }
    : NO_DATA;
