import { compareHlc, type Doc, type Hlc, isRevocation } from '../registry/index.js';

export interface Stamp {
  hlc: Hlc;
  origin: string;
  /** A revocation (a certificate's write that says REVOKED): it outranks every write that is not one. */
  final?: boolean;
}

/** The stamp of a write of an entity of `kind` with document `doc` (a tombstone's for a delete). */
export function stampOf(kind: string, doc: Doc | null, write: { hlc: Hlc; origin: string }): Stamp {
  return { hlc: write.hlc, origin: write.origin, final: isRevocation(kind, doc) };
}

/**
 * Which write of an entity a region keeps: the greatest of one total order on writes. A final
 * write (a revocation) comes after every write that is not final; among writes alike in that, the
 * later hybrid logical clock, ties broken by origin region name. Keeping the greatest is a join
 * (commutative, associative, idempotent), so every region that sees the same writes, in any order
 * and relayed any way, keeps the same one, down to its version, HLC and origin. Local writes agree:
 * the registry refuses any write over a revoked certificate but its delete, whose tombstone is
 * final again. A change equal to what is there (the same write delivered again) does not win.
 */
export function wins(incoming: Stamp, current: Stamp | undefined): boolean {
  if (current === undefined) return true;
  const byFinality = Number(incoming.final === true) - Number(current.final === true);
  if (byFinality !== 0) return byFinality > 0;
  const byClock = compareHlc(incoming.hlc, current.hlc);
  if (byClock !== 0) return byClock > 0;
  return incoming.origin > current.origin;
}
