import type { ChangeRecord, EntityRecord } from '../registry/index.js';

/** One answer of a peer's change feed (GET /v1/changes with origin = the peer). */
export interface FeedPage {
  /** The peer's own changes after the cursor, in seq order. */
  changes: ChangeRecord[];
  /** The peer's highest committed seq when it answered. */
  lastSeq: number;
  /** The peer's lowest retained seq (0: empty log); a cursor below it missed pruned changes. */
  firstSeq: number;
  /**
   * The answer is complete up to this seq: every change of the peer's origin with a seq up to
   * here is in `changes` or before the cursor. The cursor may move here even when `changes` is
   * empty.
   */
  scannedTo: number;
  /** Changes of the peer's origin after the last one returned (the link's lag in changes). */
  remaining: number;
}

/** One page of a peer's snapshot (GET /v1/snapshot with origin = the peer). */
export interface SnapshotPage {
  /** Entities and tombstones in (kind, key) order. */
  entities: EntityRecord[];
  /** The peer's highest committed seq when it read this page. */
  lastSeq: number;
  /** Where the next page starts; absent on the last page. */
  next?: { kind: string; key: string };
}

/**
 * Where a replicator reads a peer's changes. The HTTP implementation talks to the peer's API;
 * tests can hand the replicator any other source.
 */
export interface ChangeFeed {
  pull(options: { after: number; limit: number; waitMs: number; signal: AbortSignal }): Promise<FeedPage>;
  snapshot(options: {
    after?: { kind: string; key: string };
    limit: number;
    signal: AbortSignal;
  }): Promise<SnapshotPage>;
}

/** How far a link has come, as the target keeps it (atomically with what it applied). */
export interface LinkProgress {
  /** Seq of the peer's log up to which everything of the peer's origin is applied. */
  cursor: number;
  /** A snapshot copy in progress: resume after `after`, then tail from `watermark`. */
  bootstrap?: {
    watermark: number;
    after: { kind: string; key: string } | null;
    copied: number;
    startedAt: number;
  };
  /** A snapshot copy has completed once for this link. */
  bootstrapped: boolean;
}

export type ChangeOutcome = 'applied' | 'stale' | 'dead-letter';

export interface BatchResult {
  outcomes: ChangeOutcome[];
}

export interface DeadLetter {
  peer: string;
  /** Its id on this link: the change's seq in the peer's log, or `snapshot:<kind>|<key>`. */
  id: string;
  /** The change's seq in the peer's log; 0 for an entity of a snapshot. */
  seq: number;
  change: ChangeRecord;
  /**
   * The registry's code for the refusal: IOTDR_REGISTRY_INVALID_ENTITY (the key, ref or document
   * does not fit its kind) or IOTDR_REGISTRY_UNKNOWN_KIND (no such kind registered here). Absent on
   * a letter stored before codes were recorded.
   */
  code?: string;
  reason: string;
  /** When it was dead-lettered (ms). */
  at: number;
  /** How many times an operator retried it. */
  attempts: number;
}

/**
 * Where replicated changes go. The local iotdr registry is the first target; another platform's
 * API (AWS IoT Core, Mosquitto dynamic security, EMQX) can be another. A target keeps the link's
 * progress itself, atomically with what it applied, so a restart resumes exactly; nothing here
 * assumes SQL.
 */
export interface ApplyTarget {
  readonly name: string;
  progress(peer: string): Promise<LinkProgress>;
  /**
   * Applies changes of the peer's origin, in order, and moves the cursor to `cursor`, all or
   * nothing. A change that cannot be applied is dead-lettered, not thrown; last writer wins per
   * entity, so a change older than what is there is 'stale'.
   */
  applyChanges(peer: string, changes: ChangeRecord[], cursor: number): Promise<BatchResult>;
  /** Moves the cursor without changes (the peer's log advanced with changes of other origins). */
  advance(peer: string, cursor: number): Promise<void>;
  /** Starts (or restarts) a snapshot copy from `watermark`. */
  beginBootstrap(peer: string, watermark: number): Promise<void>;
  /**
   * Applies one snapshot page and records where the copy stands, all or nothing. With `next`
   * null it was the last page: the copy ends in the same transaction and the cursor becomes the
   * watermark.
   */
  applySnapshot(
    peer: string,
    entities: EntityRecord[],
    next: { kind: string; key: string } | null,
  ): Promise<BatchResult>;
  deadLetters(peer?: string): Promise<DeadLetter[]>;
  /** Applies a dead letter again; it leaves the table if it applies (or is stale now). */
  retryDeadLetter(peer: string, id: string): Promise<ChangeOutcome>;
  discardDeadLetter(peer: string, id: string): Promise<void>;
}

/** What a link is doing: a discriminated union, as the status API shows it. */
export type LinkState =
  | { type: 'starting' }
  | { type: 'bootstrapping'; copied: number; watermark: number }
  | { type: 'tailing' }
  | { type: 'retrying'; attempt: number; nextAttemptAt: number }
  | { type: 'stopped' };

export interface LinkStatus {
  peer: string;
  target: string;
  state: LinkState;
  cursor: number;
  peerLastSeq: number | null;
  /** Changes of the peer's origin not applied yet. */
  lagChanges: number | null;
  /** Origin commit → applied, of the last change applied (ms). */
  lagMs: number | null;
  lastAppliedAt: number | null;
  /** When the feed last answered. */
  lastContactAt: number | null;
  lastError: { message: string; at: number } | null;
  applied: number;
  stale: number;
  deadLetters: number;
}
