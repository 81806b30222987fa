/**
 * The registry store: one interface, two engines (SQLite embedded, PostgreSQL for production),
 * one shared test suite (test/registry/store-suite.ts).
 *
 * The store is deliberately generic: it keeps entities by (kind, key) and the change log. It knows
 * nothing of things or policies, so replication can apply any change without the store's help, and
 * every mutation goes through `StoreTx.apply`, which writes the entity and its change record in the
 * same transaction: there is no other write path.
 */

/** Hybrid logical clock timestamp: wall milliseconds plus a counter for events in the same ms. */
export interface Hlc {
  wall: number;
  counter: number;
}

export type ChangeOp = 'upsert' | 'delete';

/** JSON object as stored; the service layer gives it its typed shape. */
export type Doc = Record<string, unknown>;

export interface EntityRecord {
  kind: string;
  key: string;
  /**
   * Secondary lookup key: for attachments the other end (certificate id of a thing→certificate
   * attachment), so "what is this certificate attached to" is an index lookup. Null when unused.
   */
  ref: string | null;
  /**
   * The entity as JSON. For a tombstone, what a merge must remember of the deleted entity (a revoked
   * certificate's tombstone says it was revoked), else null.
   */
  doc: Doc | null;
  /** Per-entity version, incremented by each write (a delete writes a version too). */
  version: number;
  hlc: Hlc;
  /** Region where the last write to this entity was first made. */
  origin: string;
  deleted: boolean;
  /** Milliseconds since the epoch of the last write. */
  updatedAt: number;
}

export interface ChangeRecord {
  /** Per-region, gap-free, increasing in commit order. */
  seq: number;
  /** UUID of the change, the same in every region the change reaches. */
  id: string;
  kind: string;
  key: string;
  op: ChangeOp;
  ref: string | null;
  /** Full after-image; for a delete, the tombstone's document (usually null). */
  after: Doc | null;
  version: number;
  hlc: Hlc;
  origin: string;
  /** Milliseconds since the epoch when this region committed the change. */
  committedAt: number;
}

/** What a mutation writes; the store assigns `seq` and `committedAt`. */
export interface Mutation {
  changeId: string;
  kind: string;
  key: string;
  op: ChangeOp;
  ref: string | null;
  /** The after-image for an upsert; ignored (stored as null) for a delete. */
  doc: Doc | null;
  /**
   * For a delete: what the tombstone keeps of the deleted entity for a merge to remember (a revoked
   * certificate's tombstone says it was revoked). Absent or null: the tombstone's doc is null.
   */
  tombstone?: Doc | null;
  version: number;
  hlc: Hlc;
  origin: string;
  /** Wall-clock ms of the write (entity.updatedAt, change.committedAt). */
  at: number;
}

export interface ListOptions {
  /** Exclusive lower bound on key (keyset pagination). */
  after?: string;
  limit: number;
  /** Only keys starting with this prefix. */
  prefix?: string;
  /** Only entities whose ref equals this. */
  ref?: string;
}

export interface CountOptions {
  prefix?: string;
  ref?: string;
}

export interface ChangesOptions {
  /** Exclusive: changes with seq > after. */
  after: number;
  limit: number;
  /** Only changes first made in this region. */
  origin?: string;
}

/** A value of the store's local state: per-region bookkeeping that is not replicated. */
export interface LocalRecord {
  key: string;
  value: Doc;
  updatedAt: number;
}

export interface ScanOptions {
  /** Exclusive lower bound on (kind, key). */
  after?: { kind: string; key: string };
  limit: number;
  /** Only entities whose last write was first made in this region. */
  origin?: string;
  /** Tombstones too (a snapshot needs them, so that a late change cannot resurrect a delete). */
  includeDeleted?: boolean;
}

export interface StoreReader {
  /** The live entity, or undefined (tombstones are returned only with includeDeleted). */
  get(kind: string, key: string, options?: { includeDeleted?: boolean }): Promise<EntityRecord | undefined>;
  /** Live entities of a kind in key order. */
  list(kind: string, options: ListOptions): Promise<EntityRecord[]>;
  /** Number of live entities of a kind. */
  count(kind: string, options?: CountOptions): Promise<number>;
  /** Entities of every kind in (kind, key) order: what a snapshot pages through. */
  scan(options: ScanOptions): Promise<EntityRecord[]>;
  /** A value of the local state, undefined when absent. */
  getLocal(key: string): Promise<Doc | undefined>;
  /** Local state whose key starts with `prefix`, in key order. */
  listLocal(prefix: string, options: { after?: string; limit: number }): Promise<LocalRecord[]>;
}

export interface StoreTx extends StoreReader {
  /**
   * Writes the entity (an upsert, or a tombstone for a delete) and appends its change record,
   * atomically with the rest of the transaction. Returns the change as it will be committed.
   */
  apply(mutation: Mutation): Promise<ChangeRecord>;
  /**
   * Sets (or with null, removes) a value of the local state in this transaction. Local state is
   * this region's bookkeeping — replication cursors, dead letters — and has no change record: it is
   * never replicated.
   */
  putLocal(key: string, value: Doc | null, at: number): Promise<void>;
}

export interface RegistryStore extends StoreReader {
  readonly engine: 'sqlite' | 'postgres';
  /** Creates or migrates the schema. Idempotent. */
  init(): Promise<void>;
  /**
   * Runs `fn` in a transaction. If it throws, nothing it wrote is kept and the error is rethrown.
   * The promise resolves only once the transaction is durably committed. `fn` may be run more
   * than once (when a transaction folded into the same commit fails), so it must have no effect
   * outside the transaction.
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>;
  /** The change log in seq order. */
  changes(options: ChangesOptions): Promise<ChangeRecord[]>;
  /** How many changes (of one origin) the log holds after `after`. */
  countChanges(options: { after: number; origin?: string }): Promise<number>;
  /** Highest committed seq, 0 when the log is empty. */
  lastSeq(): Promise<number>;
  /** Lowest seq still in the change log (older ones were pruned); 0 when the log is empty. */
  firstSeq(): Promise<number>;
  /** Highest HLC in the change log, so a restarted region's clock never goes backwards. */
  maxHlc(): Promise<Hlc | undefined>;
  /**
   * Removes tombstones last written before `before` (ms); returns how many. A tombstone whose
   * document has a numeric `retainUntil` (ms) not before `before` stays: it still matters (a
   * revoked certificate's, until the certificate has expired), so with `before` = now − retention
   * it is kept for the retention after `retainUntil`.
   */
  purgeTombstones(before: number): Promise<number>;
  /**
   * Removes change records committed before `before` (ms), never the newest one, so seqs keep
   * counting and the HLC keeps its floor; returns how many. Readers behind the pruned part must
   * bootstrap from a snapshot.
   */
  pruneChanges(before: number): Promise<number>;
  close(): Promise<void>;
}

export function compareHlc(a: Hlc, b: Hlc): number {
  return a.wall !== b.wall ? a.wall - b.wall : a.counter - b.counter;
}
