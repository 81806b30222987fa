/**
 * How long us-west takes to catch up with a us-east that holds work it has not seen: a change-log
 * backlog (its link has copied us-east once before, so it tails the log) or a whole registry (an
 * empty us-west, so its link copies a snapshot first).
 *
 * The clock starts when us-east first answers /livez. us-west runs before that, its link
 * retrying against the stopped us-east at most 50 ms apart (replication.retryMaxMs in the bench
 * configuration), so neither region's start-up is counted, and at most 50 ms of retry delay is.
 * It stops at the first status poll (every 20 ms) where us-west's link is tailing, its cursor is at
 * or past the us-east seq read when the clock started (nothing writes to us-east meanwhile), it
 * has taken in at least the work given, and it does not report changes behind.
 */
import { check } from '../registry/common.js';
import { EAST, type LinkStatus, type RegionPair, secondsBetween, WEST } from './regions.js';

export interface CatchUp {
  seconds: number;
  /** Changes or snapshot entities the link took in (applied, or stale: older than what was there). */
  processed: number;
  applied: number;
  /** us-east's last seq when it started serving. */
  lastSeq: number;
  /** Link states seen by the polls once us-east served, in order (e.g. bootstrapping, tailing). */
  states: string[];
}

const POLL_MS = 20;

/** Spawns us-west, waits until its link is retrying against the stopped us-east. */
export async function startWestAlone(pair: RegionPair): Promise<LinkStatus> {
  check(!pair.regions[EAST].running, 'us-east must be stopped');
  await pair.start(WEST);
  const { link } = await pair.waitForLink(
    WEST,
    (l) => l.state.type === 'retrying',
    'the link retrying against the stopped us-east',
    30_000,
  );
  return link;
}

/**
 * With us-west running alone (`startWestAlone`), starts us-east and times us-west's catch-up.
 * `minProcessed` is what the link must at least take in; `timeoutMs` bounds the wait.
 */
export async function timeCatchUp(
  pair: RegionPair,
  minProcessed: number,
  timeoutMs: number,
): Promise<CatchUp> {
  const before = await pair.link(WEST);
  // Its state flips to tailing at each attempt; the error says the last one failed.
  check(before.lastError !== null, `us-west's link is ${before.state.type}, with no failure against us-east`);
  pair.spawn(EAST);
  const t0 = await pair.waitUp(EAST, 5);
  const lastSeq = await pair.lastSeq(EAST);
  const states: string[] = [];
  const { link, at } = await pair.waitForLink(
    WEST,
    (l) => {
      if (states[states.length - 1] !== l.state.type) states.push(l.state.type);
      return (
        l.state.type === 'tailing' &&
        // Null right after a snapshot copy: the first pull of the tail is a long poll that answers
        // only when us-east commits again or after waitMs (10 s). The cursor says it already.
        (l.lagChanges === 0 || l.lagChanges === null) &&
        l.cursor >= lastSeq &&
        l.applied + l.stale - before.applied - before.stale >= minProcessed
      );
    },
    `catching up with us-east (seq ${lastSeq}, at least ${minProcessed} changes)`,
    timeoutMs,
    POLL_MS,
  );
  check(link.deadLetters === 0, `us-west dead-lettered ${link.deadLetters} change(s)`);
  return {
    seconds: secondsBetween(t0, at),
    processed: link.applied + link.stale - before.applied - before.stale,
    applied: link.applied - before.applied,
    lastSeq,
    states,
  };
}
