import { compareHlc, type Hlc } from '../registry/index.js';

export interface Stamp {
  hlc: Hlc;
  origin: string;
}

/**
 * Last writer wins per (kind, key): the later hybrid logical clock, ties broken by origin region
 * name. A total order on writes, so every region that sees the same writes, in any order, keeps the
 * same one. A change equal to what is there (the same write delivered again) does not win.
 */
export function wins(incoming: Stamp, current: Stamp | undefined): boolean {
  if (current === undefined) return true;
  const byClock = compareHlc(incoming.hlc, current.hlc);
  if (byClock !== 0) return byClock > 0;
  return incoming.origin > current.origin;
}
