import type { SequenceGap } from './types.js';

/** Received sequence numbers as sorted, disjoint, non-adjacent inclusive ranges `[from, to]`. */
export type SeqRanges = Array<[number, number]>;

/** Most gaps a summary lists; `missing` still counts them all. */
export const MAX_LISTED_GAPS = 100;

/**
 * Adds one sequence number, merging with its neighbours. A late arrival (re-sent through the other
 * region after a failover) lands in a hole and shrinks or closes it. Returns false when `seq`
 * was already received. Binary search: a device with many holes stays cheap.
 */
export function addSeq(ranges: SeqRanges, seq: number): boolean {
  let lo = 0;
  let hi = ranges.length;
  // First range whose end is ≥ seq − 1 (the first that could touch seq).
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ranges[mid] as [number, number])[1] < seq - 1) lo = mid + 1;
    else hi = mid;
  }
  const at = ranges[lo];
  if (at && at[0] <= seq && seq <= at[1]) return false;
  if (at && at[1] === seq - 1) {
    at[1] = seq;
    const next = ranges[lo + 1];
    if (next && next[0] === seq + 1) {
      at[1] = next[1];
      ranges.splice(lo + 1, 1);
    }
    return true;
  }
  if (at && at[0] === seq + 1) {
    at[0] = seq;
    return true;
  }
  ranges.splice(lo, 0, [seq, seq]);
  return true;
}

/** Sequence numbers between the first and the last received that never arrived. */
export function missingOf(ranges: SeqRanges): number {
  let missing = 0;
  for (let i = 1; i < ranges.length; i++)
    missing += (ranges[i] as [number, number])[0] - (ranges[i - 1] as [number, number])[1] - 1;
  return missing;
}

/** The holes, oldest first, at most `max`. */
export function gapsOf(ranges: SeqRanges, max = MAX_LISTED_GAPS): SequenceGap[] {
  const gaps: SequenceGap[] = [];
  for (let i = 1; i < ranges.length && gaps.length < max; i++)
    gaps.push({
      from: (ranges[i - 1] as [number, number])[1] + 1,
      to: (ranges[i] as [number, number])[0] - 1,
    });
  return gaps;
}

/** The sequence number of an event's payload, when it carries a valid one (non-negative safe integer). */
export function seqOf(payload: { type: string; value?: unknown }, field: string): number | undefined {
  if (payload.type !== 'json') return undefined;
  const value = payload.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const seq = (value as Record<string, unknown>)[field];
  return typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
}
