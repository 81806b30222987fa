import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError } from '../../common/index.js';
import type { SqliteSynchronous } from '../config.js';
import { storeClosed, storeNotInitialized } from '../errors.js';
import { EngineStore } from './base.js';
import { GroupCommitter } from './group-commit.js';
import { type ChangeRow, changeOf, type EntityRow, stored, toChange, toEntity } from './rows.js';
import type {
  ChangeRecord,
  ChangesOptions,
  CountOptions,
  Doc,
  EntityRecord,
  Hlc,
  ListOptions,
  LocalRecord,
  Mutation,
  RegistryStore,
  ScanOptions,
  StoreReader,
  StoreTx,
} from './types.js';

export interface SqliteStoreOptions {
  /** Database file; ':memory:' is refused because a second read connection could not see it. */
  path: string;
  /**
   * 'full' (default) syncs the WAL on every commit, so an acknowledged write survives power loss;
   * 'normal' survives a crash of the process but not of the machine.
   */
  synchronous?: SqliteSynchronous;
  /** Most write transactions folded into one commit (default 256). */
  maxBatch?: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS schema_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entities (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  ref TEXT,
  doc TEXT,
  version INTEGER NOT NULL,
  hlc_wall INTEGER NOT NULL,
  hlc_counter INTEGER NOT NULL,
  origin TEXT NOT NULL,
  deleted INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entities_ref ON entities (kind, ref) WHERE ref IS NOT NULL;
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  op TEXT NOT NULL,
  ref TEXT,
  after TEXT,
  version INTEGER NOT NULL,
  hlc_wall INTEGER NOT NULL,
  hlc_counter INTEGER NOT NULL,
  origin TEXT NOT NULL,
  committed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_origin ON changes (origin, seq);
CREATE TABLE IF NOT EXISTS local_state (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`;

/**
 * Prepared read statements over one connection. The statements whose SQL depends on the filter are
 * prepared once per distinct text and kept: the broker reads on every CONNECT, and preparing cost
 * as much as reading.
 */
class SqliteReader implements StoreReader {
  readonly #get: Database.Statement<[string, string], EntityRow>;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(db: Database.Database) {
    this.#db = db;
    this.#get = db.prepare('SELECT * FROM entities WHERE kind = ? AND key = ?');
  }

  /** The prepared statement for `sql`; the texts come from a handful of filter shapes. */
  #prepare(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  async get(
    kind: string,
    key: string,
    options?: { includeDeleted?: boolean },
  ): Promise<EntityRecord | undefined> {
    return this.getSync(kind, key, options);
  }

  getSync(kind: string, key: string, options?: { includeDeleted?: boolean }): EntityRecord | undefined {
    const row = this.#get.get(kind, key);
    if (!row || (row.deleted === 1 && !options?.includeDeleted)) return undefined;
    return toEntity(row);
  }

  async list(kind: string, options: ListOptions): Promise<EntityRecord[]> {
    const { sql, params } = filterSql(kind, options);
    const rows = this.#prepare(`SELECT * FROM ${entitiesFor(options)} WHERE ${sql} ORDER BY key LIMIT ?`).all(
      ...params,
      options.limit,
    ) as EntityRow[];
    return rows.map(toEntity);
  }

  async count(kind: string, options: CountOptions = {}): Promise<number> {
    const { sql, params } = filterSql(kind, options);
    const row = this.#prepare(`SELECT COUNT(*) AS n FROM ${entitiesFor(options)} WHERE ${sql}`).get(
      ...params,
    ) as {
      n: number;
    };
    return row.n;
  }

  async scan(options: ScanOptions): Promise<EntityRecord[]> {
    const clauses: string[] = [];
    const params: Array<string | number> = [];
    if (options.after) {
      clauses.push('(kind, key) > (?, ?)');
      params.push(options.after.kind, options.after.key);
    }
    if (options.origin !== undefined) {
      clauses.push('origin = ?');
      params.push(options.origin);
    }
    if (!options.includeDeleted) clauses.push('deleted = 0');
    const where = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
    const rows = this.#prepare(`SELECT * FROM entities ${where} ORDER BY kind, key LIMIT ?`).all(
      ...params,
      options.limit,
    ) as EntityRow[];
    return rows.map(toEntity);
  }

  async getLocal(key: string): Promise<Doc | undefined> {
    const row = this.#prepare('SELECT value FROM local_state WHERE key = ?').get(key) as
      | { value: string }
      | undefined;
    return row ? (JSON.parse(row.value) as Doc) : undefined;
  }

  async listLocal(prefix: string, options: { after?: string; limit: number }): Promise<LocalRecord[]> {
    const rows = this.#db
      .prepare(
        'SELECT key, value, updated_at FROM local_state WHERE key >= ? AND key < ? AND key > ? ORDER BY key LIMIT ?',
      )
      .all(prefix, `${prefix}\uffff`, options.after ?? '', options.limit) as Array<{
      key: string;
      value: string;
      updated_at: number;
    }>;
    return rows.map((r) => ({ key: r.key, value: JSON.parse(r.value) as Doc, updatedAt: r.updated_at }));
  }
}

/**
 * The table to read, with its ref index named when the filter is by ref. Without statistics the
 * planner prefers the primary key for `ORDER BY key` and scans every entity of the kind to find
 * the few with that ref: a certificate's attachments cost as much as there are attachments in the
 * registry, and loading 100,000 devices took quadratic time.
 */
function entitiesFor(options: Partial<ListOptions>): string {
  return options.ref === undefined ? 'entities' : 'entities INDEXED BY entities_ref';
}

function filterSql(kind: string, options: Partial<ListOptions>): { sql: string; params: Array<string> } {
  const clauses = ['kind = ?', 'deleted = 0'];
  const params: string[] = [kind];
  if (options.after !== undefined) {
    clauses.push('key > ?');
    params.push(options.after);
  }
  if (options.prefix !== undefined) {
    // Range scan instead of LIKE so '%' and '_' in keys are not wildcards.
    clauses.push('key >= ? AND key < ?');
    params.push(options.prefix, `${options.prefix}\uffff`);
  }
  if (options.ref !== undefined) {
    clauses.push('ref = ?');
    params.push(options.ref);
  }
  return { sql: clauses.join(' AND '), params };
}

class SqliteTx extends SqliteReader implements StoreTx {
  readonly #upsert: Database.Statement;
  readonly #insertChange: Database.Statement;
  readonly #maxSeq: Database.Statement<[], { seq: number | null }>;
  readonly #putLocal: Database.Statement<[string, string, number]>;
  readonly #deleteLocal: Database.Statement<[string]>;

  constructor(db: Database.Database) {
    super(db);
    this.#upsert =
      db.prepare(`INSERT INTO entities (kind, key, ref, doc, version, hlc_wall, hlc_counter, origin, deleted, updated_at)
      VALUES (@kind, @key, @ref, @doc, @version, @hlc_wall, @hlc_counter, @origin, @deleted, @updated_at)
      ON CONFLICT (kind, key) DO UPDATE SET ref = excluded.ref, doc = excluded.doc, version = excluded.version,
        hlc_wall = excluded.hlc_wall, hlc_counter = excluded.hlc_counter, origin = excluded.origin,
        deleted = excluded.deleted, updated_at = excluded.updated_at`);
    this.#insertChange =
      db.prepare(`INSERT INTO changes (seq, id, kind, key, op, ref, after, version, hlc_wall, hlc_counter, origin, committed_at)
      VALUES (@seq, @id, @kind, @key, @op, @ref, @after, @version, @hlc_wall, @hlc_counter, @origin, @committed_at)`);
    this.#maxSeq = db.prepare('SELECT MAX(seq) AS seq FROM changes');
    this.#putLocal = db.prepare(
      'INSERT INTO local_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
    );
    this.#deleteLocal = db.prepare('DELETE FROM local_state WHERE key = ?');
  }

  async putLocal(key: string, value: Doc | null, at: number): Promise<void> {
    if (value === null) this.#deleteLocal.run(key);
    else this.#putLocal.run(key, JSON.stringify(value), at);
  }

  async apply(m: Mutation): Promise<ChangeRecord> {
    const doc = stored(m);
    const json = doc === null ? null : JSON.stringify(doc);
    // The single writer holds the write lock, so MAX+1 is gap-free in commit order. The change row
    // goes first: a failing statement undoes only itself in SQLite, so a rejected change (duplicate
    // id) must fail before the entity is touched, or a caller that catches the error would commit an
    // entity without its change record.
    const seq = (this.#maxSeq.get()?.seq ?? 0) + 1;
    this.#insertChange.run({
      seq,
      id: m.changeId,
      kind: m.kind,
      key: m.key,
      op: m.op,
      ref: m.ref,
      after: json,
      version: m.version,
      hlc_wall: m.hlc.wall,
      hlc_counter: m.hlc.counter,
      origin: m.origin,
      committed_at: m.at,
    });
    this.#upsert.run({
      kind: m.kind,
      key: m.key,
      ref: m.ref,
      doc: json,
      version: m.version,
      hlc_wall: m.hlc.wall,
      hlc_counter: m.hlc.counter,
      origin: m.origin,
      deleted: m.op === 'delete' ? 1 : 0,
      updated_at: m.at,
    });
    return changeOf(m, seq);
  }
}

/**
 * SQLite registry store (better-sqlite3, WAL). One connection writes, through a group committer;
 * a second, read-only connection serves reads outside transactions, so a reader never sees a
 * write that is not committed yet.
 */
export class SqliteStore extends EngineStore implements RegistryStore {
  readonly engine = 'sqlite' as const;
  readonly #options: SqliteStoreOptions;
  #writer: Database.Database | undefined;
  #reader: SqliteReader | undefined;
  #readerDb: Database.Database | undefined;
  #committer: GroupCommitter | undefined;
  #closed = false;

  constructor(options: SqliteStoreOptions) {
    super();
    if (options.path === ':memory:' || options.path === '') {
      throw new StoreError('IOTDR_STORE_CONFIG', 'the SQLite store needs a file path');
    }
    this.#options = options;
  }

  async init(): Promise<void> {
    if (this.#writer) return;
    try {
      mkdirSync(dirname(this.#options.path), { recursive: true, mode: 0o700 });
      const db = new Database(this.#options.path);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.#options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
      const current = db.prepare("SELECT value FROM schema_meta WHERE key = 'schema_version'").get() as
        | { value: string }
        | undefined;
      if (current && Number(current.value) > SCHEMA_VERSION) {
        db.close();
        throw new StoreError(
          'IOTDR_STORE_SCHEMA_TOO_NEW',
          `database ${this.#options.path} has schema version ${current.value}; this iotdr knows up to ${SCHEMA_VERSION}`,
        );
      }
      db.prepare("INSERT OR REPLACE INTO schema_meta (key, value) VALUES ('schema_version', ?)").run(
        String(SCHEMA_VERSION),
      );
      const readerDb = new Database(this.#options.path, { readonly: true });
      readerDb.pragma('busy_timeout = 5000');
      const tx = new SqliteTx(db);
      const begin = db.prepare('BEGIN IMMEDIATE');
      const commit = db.prepare('COMMIT');
      const rollback = db.prepare('ROLLBACK');
      this.#committer = new GroupCommitter(
        {
          begin: async () => void begin.run(),
          commit: async () => void commit.run(),
          rollback: async () => {
            if (db.inTransaction) rollback.run();
          },
          savepoint: async (name) => void db.exec(`SAVEPOINT ${name}`),
          release: async (name) => void db.exec(`RELEASE ${name}`),
          rollbackTo: async (name) => void db.exec(`ROLLBACK TO ${name}`),
        },
        tx,
        this.#options.maxBatch === undefined ? {} : { maxBatch: this.#options.maxBatch },
      );
      this.#writer = db;
      this.#readerDb = readerDb;
      this.#reader = new SqliteReader(readerDb);
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw new StoreError('IOTDR_STORE_UNAVAILABLE', `cannot open SQLite store ${this.#options.path}`, {
        cause: error,
      });
    }
  }

  protected override ready(): { reader: SqliteReader; committer: GroupCommitter; writer: Database.Database } {
    if (this.#closed) throw storeClosed();
    if (!this.#reader || !this.#committer || !this.#writer) {
      throw storeNotInitialized();
    }
    return { reader: this.#reader, committer: this.#committer, writer: this.#writer };
  }

  async changes(options: ChangesOptions): Promise<ChangeRecord[]> {
    const db = this.#readerDb;
    this.ready();
    if (!db) return [];
    const rows =
      options.origin === undefined
        ? (db
            .prepare('SELECT * FROM changes WHERE seq > ? ORDER BY seq LIMIT ?')
            .all(options.after, options.limit) as ChangeRow[])
        : (db
            .prepare('SELECT * FROM changes WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?')
            .all(options.origin, options.after, options.limit) as ChangeRow[]);
    return rows.map(toChange);
  }

  async lastSeq(): Promise<number> {
    this.ready();
    const row = this.#readerDb?.prepare('SELECT MAX(seq) AS seq FROM changes').get() as {
      seq: number | null;
    };
    return row.seq ?? 0;
  }

  async countChanges(options: { after: number; origin?: string }): Promise<number> {
    this.ready();
    const db = this.#readerDb;
    if (!db) return 0;
    const row = (
      options.origin === undefined
        ? db.prepare('SELECT COUNT(*) AS n FROM changes WHERE seq > ?').get(options.after)
        : db
            .prepare('SELECT COUNT(*) AS n FROM changes WHERE origin = ? AND seq > ?')
            .get(options.origin, options.after)
    ) as { n: number };
    return row.n;
  }

  async firstSeq(): Promise<number> {
    this.ready();
    const row = this.#readerDb?.prepare('SELECT MIN(seq) AS seq FROM changes').get() as {
      seq: number | null;
    };
    return row.seq ?? 0;
  }

  async purgeTombstones(before: number): Promise<number> {
    return this.ready().committer.run(async () => {
      const db = this.ready().writer;
      return db
        .prepare(
          `DELETE FROM entities WHERE deleted = 1 AND updated_at < @before AND NOT (doc IS NOT NULL
             AND json_type(doc, '$.retainUntil') IN ('integer', 'real')
             AND json_extract(doc, '$.retainUntil') >= @before)`,
        )
        .run({ before }).changes;
    });
  }

  async pruneChanges(before: number): Promise<number> {
    return this.ready().committer.run(async () => {
      const db = this.ready().writer;
      return db
        .prepare('DELETE FROM changes WHERE committed_at < ? AND seq < (SELECT MAX(seq) FROM changes)')
        .run(before).changes;
    });
  }

  async maxHlc(): Promise<Hlc | undefined> {
    this.ready();
    const row = this.#readerDb
      ?.prepare('SELECT hlc_wall, hlc_counter FROM changes ORDER BY hlc_wall DESC, hlc_counter DESC LIMIT 1')
      .get() as { hlc_wall: number; hlc_counter: number } | undefined;
    return row ? { wall: row.hlc_wall, counter: row.hlc_counter } : undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#committer?.idle();
    this.#readerDb?.close();
    this.#writer?.close();
  }
}
