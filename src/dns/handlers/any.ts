/**
 * ANY (QTYPE 255). RFC 8482 lets a server answer with a subset; this zone is tiny, so it answers
 * every record set the name owns, which is what a debugging `dig ANY` expects.
 */
import { handleA, handleAAAA } from './address.js';
import { handleNS } from './ns.js';
import { handleSOA } from './soa.js';
import { handleTXT } from './txt.js';
import type { Handler, HandlerResult } from './types.js';

export const handleANY: Handler = (lookup) => {
  const parts: HandlerResult[] = [handleSOA, handleNS, handleA, handleAAAA, handleTXT].map((h) => h(lookup));
  return {
    answers: parts.flatMap((p) => p.answers),
    additionals: parts.flatMap((p) => p.additionals),
  };
};
