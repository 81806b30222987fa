/** SOA (RFC 1035 §3.3.13): only at the apex. */
import type { Answer } from 'dns-packet';
import type { Zone } from '../zone.js';
import { type Handler, NO_DATA } from './types.js';

export function soaRecord(zone: Zone, owner: string, ttl: number): Answer {
  return { name: owner, type: 'SOA', class: 'IN', ttl, data: zone.soa };
}

export const handleSOA: Handler = (lookup) =>
  lookup.key === lookup.zone.origin
    ? { answers: [soaRecord(lookup.zone, lookup.name, lookup.zone.apexTtl)], additionals: [] }
    : NO_DATA;
