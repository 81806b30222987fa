import type { ChangeRecord, Doc, EntityRecord, Mutation } from './types.js';

/** A BIGINT as a driver returns it: pg gives strings, better-sqlite3 numbers. */
type Int = string | number;

/** The entities table's columns, as both engines name them. */
export interface EntityRow {
  kind: string;
  key: string;
  ref: string | null;
  /** JSON text (SQLite) or the parsed JSONB (PostgreSQL). */
  doc: Doc | string | null;
  version: Int;
  hlc_wall: Int;
  hlc_counter: Int;
  origin: string;
  /** 0/1 (SQLite) or a boolean (PostgreSQL). */
  deleted: boolean | number;
  updated_at: Int;
}

/** The changes table's columns, as both engines name them. */
export interface ChangeRow {
  seq: Int;
  id: string;
  kind: string;
  key: string;
  op: string;
  ref: string | null;
  after: Doc | string | null;
  version: Int;
  hlc_wall: Int;
  hlc_counter: Int;
  origin: string;
  committed_at: Int;
}

function json(value: Doc | string | null): Doc | null {
  return typeof value === 'string' ? (JSON.parse(value) as Doc) : value;
}

export function toEntity(row: EntityRow): EntityRecord {
  return {
    kind: row.kind,
    key: row.key,
    ref: row.ref,
    doc: json(row.doc),
    version: Number(row.version),
    hlc: { wall: Number(row.hlc_wall), counter: Number(row.hlc_counter) },
    origin: row.origin,
    deleted: row.deleted === true || row.deleted === 1,
    updatedAt: Number(row.updated_at),
  };
}

export function toChange(row: ChangeRow): ChangeRecord {
  return {
    seq: Number(row.seq),
    id: row.id,
    kind: row.kind,
    key: row.key,
    op: row.op === 'delete' ? 'delete' : 'upsert',
    ref: row.ref,
    after: json(row.after),
    version: Number(row.version),
    hlc: { wall: Number(row.hlc_wall), counter: Number(row.hlc_counter) },
    origin: row.origin,
    committedAt: Number(row.committed_at),
  };
}

/** The document a mutation stores: the after-image of an upsert, the tombstone's of a delete. */
export function stored(m: Mutation): Doc | null {
  return m.op === 'delete' ? (m.tombstone ?? null) : m.doc;
}

/** The change record a mutation becomes once the store gave it its seq. */
export function changeOf(m: Mutation, seq: number): ChangeRecord {
  return {
    seq,
    id: m.changeId,
    kind: m.kind,
    key: m.key,
    op: m.op,
    ref: m.ref,
    after: stored(m),
    version: m.version,
    hlc: { ...m.hlc },
    origin: m.origin,
    committedAt: m.at,
  };
}
