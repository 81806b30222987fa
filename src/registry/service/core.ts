import type { EventEmitter } from 'node:events';
import type { Clock } from '../../common/index.js';
import { ConflictError, NotFoundError, uuidv7 } from '../../common/index.js';
import type { HybridClock } from '../hlc.js';
import type {
  ChangeRecord,
  CountOptions,
  Doc,
  EntityRecord,
  ListOptions,
  LocalRecord,
  Mutation,
  RegistryStore,
  ScanOptions,
  StoreReader,
  StoreTx,
} from '../store/index.js';

/** What every part of the registry service shares. */
export interface ServiceContext {
  store: RegistryStore;
  hlc: HybridClock;
  clock: Clock;
  /** Name of this region: the origin of every change made here. */
  region: string;
  /** Emits 'commit' with the committed changes after every transaction that wrote something. */
  events: EventEmitter;
}

/** A transaction that records the changes it wrote, to announce them once committed. */
export interface WriteTx extends StoreTx {
  readonly written: ChangeRecord[];
}

class RecordingTx implements WriteTx {
  readonly written: ChangeRecord[] = [];
  readonly #tx: StoreTx;

  constructor(tx: StoreTx) {
    this.#tx = tx;
  }

  get(kind: string, key: string, options?: { includeDeleted?: boolean }): Promise<EntityRecord | undefined> {
    return this.#tx.get(kind, key, options);
  }

  list(kind: string, options: ListOptions): Promise<EntityRecord[]> {
    return this.#tx.list(kind, options);
  }

  count(kind: string, options?: CountOptions): Promise<number> {
    return this.#tx.count(kind, options);
  }

  scan(options: ScanOptions): Promise<EntityRecord[]> {
    return this.#tx.scan(options);
  }

  getLocal(key: string): Promise<Doc | undefined> {
    return this.#tx.getLocal(key);
  }

  listLocal(prefix: string, options: { after?: string; limit: number }): Promise<LocalRecord[]> {
    return this.#tx.listLocal(prefix, options);
  }

  async apply(mutation: Mutation): Promise<ChangeRecord> {
    const change = await this.#tx.apply(mutation);
    this.written.push(change);
    return change;
  }

  putLocal(key: string, value: Doc | null, at: number): Promise<void> {
    return this.#tx.putLocal(key, value, at);
  }
}

/** Runs a write transaction and, once it committed, announces what it wrote. */
export async function writeTransaction<T>(ctx: ServiceContext, fn: (tx: WriteTx) => Promise<T>): Promise<T> {
  let recording: RecordingTx | undefined;
  const result = await ctx.store.transaction(async (tx) => {
    recording = new RecordingTx(tx);
    return fn(recording);
  });
  if (recording && recording.written.length > 0) ctx.events.emit('commit', recording.written);
  return result;
}

export function isoNow(ctx: ServiceContext): string {
  return new Date(ctx.clock.now()).toISOString();
}

/** The entity including its tombstone, so a re-created entity continues its version. */
export function loadAny(tx: StoreReader, kind: string, key: string): Promise<EntityRecord | undefined> {
  return tx.get(kind, key, { includeDeleted: true });
}

export function live(record: EntityRecord | undefined): record is EntityRecord & { doc: Doc } {
  return record !== undefined && !record.deleted && record.doc !== null;
}

/** Writes one entity and its change record. `previous` is the current record, tombstone included. */
export async function put(
  ctx: ServiceContext,
  tx: WriteTx,
  kind: string,
  key: string,
  ref: string | null,
  doc: Doc,
  previous: EntityRecord | undefined,
): Promise<number> {
  const version = (previous?.version ?? 0) + 1;
  const hlc = ctx.hlc.now();
  await tx.apply({
    changeId: uuidv7(hlc.wall),
    kind,
    key,
    op: 'upsert',
    ref,
    doc,
    version,
    hlc,
    origin: ctx.region,
    at: ctx.clock.now(),
  });
  return version;
}

/**
 * Deletes one live entity, leaving a tombstone and a change record. `tombstone` is what the
 * tombstone keeps for a merge to remember (a revoked certificate's), else nothing.
 */
export async function remove(
  ctx: ServiceContext,
  tx: WriteTx,
  record: EntityRecord,
  tombstone: Doc | null = null,
): Promise<void> {
  const hlc = ctx.hlc.now();
  await tx.apply({
    changeId: uuidv7(hlc.wall),
    kind: record.kind,
    key: record.key,
    op: 'delete',
    ref: record.ref,
    doc: null,
    tombstone,
    version: record.version + 1,
    hlc,
    origin: ctx.region,
    at: ctx.clock.now(),
  });
}

const KIND_LABEL: Record<string, string> = {
  thing: 'thing',
  'thing-type': 'thing type',
  'thing-group': 'thing group',
  certificate: 'certificate',
  'ca-certificate': 'CA certificate',
  policy: 'policy',
  'thing-principal': 'attachment of certificate to thing',
  'policy-principal': 'attachment of policy to certificate',
  'thing-group-member': 'group membership',
  'thing-group-policy': 'attachment of policy to thing group',
  token: 'token',
};

export function label(kind: string): string {
  return KIND_LABEL[kind] ?? kind;
}

export function notFound(kind: string, key: string): NotFoundError {
  return new NotFoundError('IOTDR_REGISTRY_NOT_FOUND', `${label(kind)} '${key}' does not exist`, {
    kind,
    key,
  });
}

export async function requireLive(
  tx: StoreReader,
  kind: string,
  key: string,
): Promise<EntityRecord & { doc: Doc }> {
  const record = await tx.get(kind, key);
  if (!live(record)) throw notFound(kind, key);
  return record;
}

/** Throws 409 when the caller's expectedVersion does not match (0 means "must not exist"). */
export function checkVersion(
  kind: string,
  key: string,
  current: EntityRecord | undefined,
  expected?: number,
): void {
  if (expected === undefined) return;
  const actual = live(current) ? current.version : 0;
  if (actual !== expected) {
    throw new ConflictError(
      'IOTDR_REGISTRY_VERSION_MISMATCH',
      `${label(kind)} '${key}' is at version ${actual}, not ${expected}`,
      { kind, key, expectedVersion: expected, actualVersion: actual },
    );
  }
}

/** Lists every live entity matching a filter (attachments of one entity are few). */
export async function listAll(
  tx: StoreReader,
  kind: string,
  filter: { prefix?: string; ref?: string },
): Promise<EntityRecord[]> {
  const out: EntityRecord[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await tx.list(kind, { ...filter, limit: 500, ...(after === undefined ? {} : { after }) });
    out.push(...page);
    if (page.length < 500) return out;
    after = page[page.length - 1]?.key;
  }
}

/** The document with the entity's version, as the API returns it. */
export function view<T>(record: EntityRecord & { doc: Doc }): T & { version: number } {
  return { ...(record.doc as T), version: record.version };
}

/**
 * JSON text with object keys sorted at every level, so that documents compare equal whatever order
 * their keys were stored in (PostgreSQL's JSONB does not keep it).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** Deep equality for JSON documents, ignoring the listed top-level fields. */
export function sameDoc(a: Doc, b: Doc, ignore: string[] = ['createdAt', 'updatedAt']): boolean {
  const strip = (d: Doc) => {
    const copy: Doc = { ...d };
    for (const k of ignore) delete copy[k];
    return canonicalJson(copy);
  };
  return strip(a) === strip(b);
}

/** A PUT's outcome: whether it created the entity, and whether anything changed at all. */
export interface PutResult<T> {
  item: T;
  created: boolean;
  changed: boolean;
}

/**
 * Creates an attachment entity (certificate → thing, policy → certificate, thing → group) once
 * both ends exist; attaching again returns the existing one unchanged.
 */
export async function attach<D extends object>(
  ctx: ServiceContext,
  options: {
    kind: string;
    key: string;
    ref: string;
    ends: ReadonlyArray<readonly [kind: string, key: string]>;
    doc: D;
    /** Further checks once the ends exist and the attachment is new (e.g. limits). */
    check?: (tx: WriteTx) => Promise<void>;
  },
): Promise<PutResult<D & { version: number }>> {
  return writeTransaction(ctx, async (tx) => {
    for (const [kind, key] of options.ends) await requireLive(tx, kind, key);
    const previous = await loadAny(tx, options.kind, options.key);
    if (live(previous)) return { item: view<D>(previous), created: false, changed: false };
    await options.check?.(tx);
    const version = await put(
      ctx,
      tx,
      options.kind,
      options.key,
      options.ref,
      { ...options.doc } as Doc,
      previous,
    );
    return { item: { ...options.doc, version }, created: true, changed: true };
  });
}

/** Removes an attachment entity; 404 when there is none. */
export async function detach(ctx: ServiceContext, kind: string, key: string): Promise<void> {
  await writeTransaction(ctx, async (tx) => {
    const attachment = await tx.get(kind, key);
    if (!live(attachment)) throw notFound(kind, key);
    await remove(ctx, tx, attachment);
  });
}
