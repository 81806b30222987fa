/** One handler per query type; any other type at an existing name is NODATA. */
import { handleA, handleAAAA } from './address.js';
import { handleANY } from './any.js';
import { handleNS } from './ns.js';
import { handleSOA } from './soa.js';
import { handleTXT } from './txt.js';
import { type Handler, NO_DATA } from './types.js';

export const HANDLERS: Readonly<Record<string, Handler>> = Object.freeze({
  A: handleA,
  AAAA: handleAAAA,
  TXT: handleTXT,
  SOA: handleSOA,
  NS: handleNS,
  ANY: handleANY,
});

export function handlerFor(type: string): Handler {
  return HANDLERS[type] ?? (() => NO_DATA);
}

export { soaRecord } from './soa.js';
export type { Handler, HandlerResult, Lookup } from './types.js';
