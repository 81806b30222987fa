/** A and AAAA (RFC 1035 §3.4.1, RFC 3596): the active region's address on the fleet's names. */
import type { Answer } from 'dns-packet';
import type { Zone } from '../zone.js';
import { type Handler, type HandlerResult, type Lookup, NO_DATA } from './types.js';

/** The A/AAAA records of one name (used for name-server glue as well). */
export function addressRecords(zone: Zone, key: string, owner: string, type: 'A' | 'AAAA'): Answer[] {
  const node = zone.nodes.get(key);
  if (!node) return [];
  const addresses = type === 'A' ? node.a : node.aaaa;
  return addresses.map((data) => ({ name: owner, type, class: 'IN', ttl: node.ttl, data }));
}

function address(type: 'A' | 'AAAA'): Handler {
  return (lookup: Lookup): HandlerResult => {
    const answers = addressRecords(lookup.zone, lookup.key, lookup.name, type);
    return answers.length === 0 ? NO_DATA : { answers, additionals: [] };
  };
}

export const handleA = address('A');
export const handleAAAA = address('AAAA');
