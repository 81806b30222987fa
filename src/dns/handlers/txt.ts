/** TXT (RFC 1035 §3.3.14): `_iotdr.<mqtt>.<zone>` says `region=<name> epoch=<n>`. */
import type { Answer } from 'dns-packet';
import { type Handler, NO_DATA } from './types.js';

export function txtRecords(lookup: Parameters<Handler>[0]): Answer[] {
  const node = lookup.node;
  if (!node) return [];
  return node.txt.map((data) => ({ name: lookup.name, type: 'TXT', class: 'IN', ttl: node.ttl, data }));
}

export const handleTXT: Handler = (lookup) => {
  const answers = txtRecords(lookup);
  return answers.length === 0 ? NO_DATA : { answers, additionals: [] };
};
