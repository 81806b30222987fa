import { createHash } from 'node:crypto';
import type { Client, Pool, QueryResult, QueryResultRow } from 'pg';
import pg from 'pg';
import { StoreError } from '../../common/index.js';
import { DEFAULT_POSTGRES_POOL_SIZE, DEFAULT_POSTGRES_SCHEMA, POSTGRES_SCHEMA_PATTERN } from '../config.js';
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

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database` URL. */
  connectionString: string;
  /** Password, kept out of the URL (read from a 0600 file); replaces one in the URL. */
  password?: string;
  /** Connections in the read pool (default 10); the writer holds one more of its own. */
  poolSize?: number;
  /** Schema holding iotdr's tables (default 'iotdr'): lowercase letters, digits, '_'; at most 63. */
  schema?: string;
  /** Most write transactions folded into one commit (default 256). */
  maxBatch?: number;
}

/** How long a connection attempt may take before it counts as a failure, in ms. */
const CONNECT_TIMEOUT_MS = 10_000;
const SCHEMA_VERSION = 1;
const statementNames = new Map<string, string>();

/** A stable prepared-statement name for a SQL text. */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `iotdr_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    statementNames.set(text, name);
  }
  return name;
}

/** A BIGINT as pg returns it (a string) or a small count (a number). */
type Int = string | number;

/**
 * Key columns use the "C" collation so `ORDER BY key` is byte order, as in SQLite, whatever the
 * database's locale: both stores list in the same order. Seqs come from a one-row counter updated
 * inside the writing transaction: its row lock is held until COMMIT, so seq N is taken only after
 * N−1 committed, by this process or any other writing the same schema. A SEQUENCE hands out
 * numbers outside the transaction, so a reader could see N before N−1 commits.
 */
function schemaSql(s: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${s}.entities (
  kind TEXT COLLATE "C" NOT NULL,
  key TEXT COLLATE "C" NOT NULL,
  ref TEXT COLLATE "C",
  doc JSONB,
  version BIGINT NOT NULL,
  hlc_wall BIGINT NOT NULL,
  hlc_counter BIGINT NOT NULL,
  origin TEXT COLLATE "C" NOT NULL,
  deleted BOOLEAN NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS entities_ref ON ${s}.entities (kind, ref, key) WHERE ref IS NOT NULL;
CREATE TABLE IF NOT EXISTS ${s}.changes (
  seq BIGINT PRIMARY KEY,
  id TEXT COLLATE "C" NOT NULL UNIQUE,
  kind TEXT COLLATE "C" NOT NULL,
  key TEXT COLLATE "C" NOT NULL,
  op TEXT NOT NULL,
  ref TEXT COLLATE "C",
  after JSONB,
  version BIGINT NOT NULL,
  hlc_wall BIGINT NOT NULL,
  hlc_counter BIGINT NOT NULL,
  origin TEXT COLLATE "C" NOT NULL,
  committed_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_origin ON ${s}.changes (origin, seq);
CREATE INDEX IF NOT EXISTS changes_hlc ON ${s}.changes (hlc_wall, hlc_counter);
CREATE TABLE IF NOT EXISTS ${s}.local_state (
  key TEXT COLLATE "C" PRIMARY KEY,
  value JSONB NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ${s}.seq_counter (id INT PRIMARY KEY CHECK (id = 1), last BIGINT NOT NULL);
INSERT INTO ${s}.seq_counter (id, last) SELECT 1, COALESCE(MAX(seq), 0) FROM ${s}.changes
  ON CONFLICT (id) DO UPDATE SET last = GREATEST(${s}.seq_counter.last, excluded.last);
`;
}

/**
 * One round trip per mutation. The counter is locked first, then the change row, then the entity,
 * so two writers on the same schema always take locks in the same order and cannot deadlock.
 * `entity` reads from `change`, so a rejected change (duplicate id) writes no entity.
 */
function applySql(s: string): string {
  return `
WITH next AS (
  UPDATE ${s}.seq_counter SET last = last + 1 WHERE id = 1 RETURNING last
), change AS (
  INSERT INTO ${s}.changes (seq, id, kind, key, op, ref, after, version, hlc_wall, hlc_counter, origin, committed_at)
  SELECT last, $1::text, $2::text, $3::text, $4::text, $5::text, $6::jsonb, $7::bigint, $8::bigint, $9::bigint,
    $10::text, $11::bigint
  FROM next
  RETURNING seq
), entity AS (
  INSERT INTO ${s}.entities (kind, key, ref, doc, version, hlc_wall, hlc_counter, origin, deleted, updated_at)
  SELECT $2::text, $3::text, $5::text, $6::jsonb, $7::bigint, $8::bigint, $9::bigint, $10::text,
    $4::text = 'delete', $11::bigint
  FROM change
  ON CONFLICT (kind, key) DO UPDATE SET ref = excluded.ref, doc = excluded.doc, version = excluded.version,
    hlc_wall = excluded.hlc_wall, hlc_counter = excluded.hlc_counter, origin = excluded.origin,
    deleted = excluded.deleted, updated_at = excluded.updated_at
)
SELECT seq FROM change`;
}

const ENTITY_COLUMNS = 'kind, key, ref, doc, version, hlc_wall, hlc_counter, origin, deleted, updated_at';
const CHANGE_COLUMNS =
  'seq, id, kind, key, op, ref, after, version, hlc_wall, hlc_counter, origin, committed_at';

/** BIGINT arrives as a string (it may exceed 2^53); every value we store fits a JS number. */

const NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOENT',
]);

/**
 * True when the server could not be reached or went away: SQLSTATE classes 08 (connection
 * exception), 28 (bad credentials), 3D (no such database), 53 (out of connections, disk, memory),
 * 57P01–57P03 (shutting down or starting up), socket errors and pg's own connection messages.
 */
export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_ERRORS.has(code)) return true;
    if (/^(08|28|3D|53)/.test(code) || /^57P0[123]$/.test(code)) return true;
  }
  return /Connection terminated|timeout expired|not queryable|Client was closed|Connection ended/i.test(
    error.message,
  );
}

type Query = <R extends QueryResultRow>(text: string, values?: unknown[]) => Promise<QueryResult<R>>;

/** Reads over any connection: the pool outside transactions, the writer inside one. */
class PgReader implements StoreReader {
  protected readonly query: Query;
  protected readonly s: string;

  constructor(query: Query, schema: string) {
    this.query = query;
    this.s = schema;
  }

  async get(
    kind: string,
    key: string,
    options?: { includeDeleted?: boolean },
  ): Promise<EntityRecord | undefined> {
    const { rows } = await this.query<EntityRow>(
      `SELECT ${ENTITY_COLUMNS} FROM ${this.s}.entities WHERE kind = $1 AND key = $2`,
      [kind, key],
    );
    const row = rows[0];
    if (!row || (row.deleted && !options?.includeDeleted)) return undefined;
    return toEntity(row);
  }

  async list(kind: string, options: ListOptions): Promise<EntityRecord[]> {
    const { sql, params } = filterSql(kind, options);
    params.push(options.limit);
    const { rows } = await this.query<EntityRow>(
      `SELECT ${ENTITY_COLUMNS} FROM ${this.s}.entities WHERE ${sql} ORDER BY key LIMIT $${params.length}`,
      params,
    );
    return rows.map(toEntity);
  }

  async count(kind: string, options: CountOptions = {}): Promise<number> {
    const { sql, params } = filterSql(kind, options);
    const { rows } = await this.query<{ n: Int }>(
      `SELECT COUNT(*) AS n FROM ${this.s}.entities WHERE ${sql}`,
      params,
    );
    return Number(rows[0]?.n ?? 0);
  }

  async scan(options: ScanOptions): Promise<EntityRecord[]> {
    const clauses: string[] = [];
    const params: Array<string | number> = [];
    const param = (value: string | number): string => {
      params.push(value);
      return `$${params.length}`;
    };
    if (options.after)
      clauses.push(`(kind, key) > (${param(options.after.kind)}, ${param(options.after.key)})`);
    if (options.origin !== undefined) clauses.push(`origin = ${param(options.origin)}`);
    if (!options.includeDeleted) clauses.push('NOT deleted');
    const where = clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '';
    const { rows } = await this.query<EntityRow>(
      `SELECT ${ENTITY_COLUMNS} FROM ${this.s}.entities ${where} ORDER BY kind, key LIMIT ${param(options.limit)}`,
      params,
    );
    return rows.map(toEntity);
  }

  async getLocal(key: string): Promise<Doc | undefined> {
    const { rows } = await this.query<{ value: Doc }>(
      `SELECT value FROM ${this.s}.local_state WHERE key = $1`,
      [key],
    );
    return rows[0]?.value;
  }

  async listLocal(prefix: string, options: { after?: string; limit: number }): Promise<LocalRecord[]> {
    const { rows } = await this.query<{ key: string; value: Doc; updated_at: Int }>(
      `SELECT key, value, updated_at FROM ${this.s}.local_state
       WHERE key >= $1 AND key < $2 AND key > $3 ORDER BY key LIMIT $4`,
      [prefix, `${prefix}\uffff`, options.after ?? '', options.limit],
    );
    return rows.map((r) => ({ key: r.key, value: r.value, updatedAt: Number(r.updated_at) }));
  }
}

function filterSql(
  kind: string,
  options: Partial<ListOptions>,
): { sql: string; params: Array<string | number> } {
  const params: Array<string | number> = [kind];
  const clauses = ['kind = $1', 'NOT deleted'];
  const param = (value: string): string => {
    params.push(value);
    return `$${params.length}`;
  };
  if (options.after !== undefined) clauses.push(`key > ${param(options.after)}`);
  if (options.prefix !== undefined) {
    // A range, not LIKE: '%' and '_' in keys are not wildcards and the primary key index serves it.
    // The bound is the one the SQLite store uses, so both stores agree on every key.
    clauses.push(`key >= ${param(options.prefix)} AND key < ${param(`${options.prefix}\uffff`)}`);
  }
  if (options.ref !== undefined) clauses.push(`ref = ${param(options.ref)}`);
  return { sql: clauses.join(' AND '), params };
}

class PgTx extends PgReader implements StoreTx {
  readonly #applySql: string;

  constructor(query: Query, schema: string) {
    super(query, schema);
    this.#applySql = applySql(schema);
  }

  async putLocal(key: string, value: Doc | null, at: number): Promise<void> {
    if (value === null) {
      await this.query(`DELETE FROM ${this.s}.local_state WHERE key = $1`, [key]);
      return;
    }
    await this.query(
      `INSERT INTO ${this.s}.local_state (key, value, updated_at) VALUES ($1, $2::jsonb, $3)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [key, JSON.stringify(value), at],
    );
  }

  async apply(m: Mutation): Promise<ChangeRecord> {
    const doc = stored(m);
    const { rows } = await this.query<{ seq: Int }>(this.#applySql, [
      m.changeId,
      m.kind,
      m.key,
      m.op,
      m.ref,
      doc === null ? null : JSON.stringify(doc),
      m.version,
      m.hlc.wall,
      m.hlc.counter,
      m.origin,
      m.at,
    ]);
    const seq = rows[0]?.seq;
    if (seq === undefined) {
      throw storeNotInitialized(`the seq counter of schema ${this.s} is missing: run init()`);
    }
    return changeOf(m, Number(seq));
  }
}

/**
 * PostgreSQL registry store (pg). One dedicated connection writes, through a group committer, in
 * READ COMMITTED transactions; a pool serves reads outside transactions, so a reader never sees a
 * write that is not committed yet. After the server went away the writer reconnects at the start
 * of the next transaction.
 */
export class PostgresStore extends EngineStore implements RegistryStore {
  readonly engine = 'postgres' as const;
  readonly #url: string;
  readonly #schema: string;
  readonly #quoted: string;
  readonly #poolSize: number;
  readonly #maxBatch: number | undefined;
  #pool: Pool | undefined;
  #writer: Client | undefined;
  #writerBroken = false;
  #reader: PgReader | undefined;
  #committer: GroupCommitter | undefined;
  #initializing: Promise<void> | undefined;
  #closed = false;

  constructor(options: PostgresStoreOptions) {
    super();
    const schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
    if (!POSTGRES_SCHEMA_PATTERN.test(schema)) {
      throw new StoreError(
        'IOTDR_STORE_CONFIG',
        `schema ${JSON.stringify(schema)} is not valid: use 1 to 63 lowercase letters, digits or '_', not starting with a digit`,
      );
    }
    const poolSize = options.poolSize ?? DEFAULT_POSTGRES_POOL_SIZE;
    if (!Number.isInteger(poolSize) || poolSize < 1) {
      throw new StoreError('IOTDR_STORE_CONFIG', `poolSize must be a positive integer, got ${poolSize}`);
    }
    this.#url = withPassword(options.connectionString, options.password);
    this.#schema = schema;
    this.#quoted = pg.escapeIdentifier(schema);
    this.#poolSize = poolSize;
    this.#maxBatch = options.maxBatch;
  }

  init(): Promise<void> {
    if (this.#closed) return Promise.reject(storeClosed());
    this.#initializing ??= this.#init().catch((error: unknown) => {
      this.#initializing = undefined;
      throw error;
    });
    return this.#initializing;
  }

  async #init(): Promise<void> {
    const pool = new pg.Pool({
      connectionString: this.#url,
      max: this.#poolSize,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'iotdr',
    });
    // An idle pooled connection that dies is dropped by the pool; without a listener its
    // 'error' event would crash the process.
    pool.on('error', () => {});
    try {
      await this.#connectWriter();
      await this.#migrate();
    } catch (error) {
      await pool.end().catch(() => {});
      await this.#writer?.end().catch(() => {});
      this.#writer = undefined;
      throw this.#storeError(error, 'cannot initialise the PostgreSQL store');
    }
    const write: Query = (text, values) => this.#writerQuery(text, values);
    this.#committer = new GroupCommitter(
      {
        begin: async () => {
          await this.#ensureWriter();
          await write('BEGIN ISOLATION LEVEL READ COMMITTED');
        },
        commit: async () => {
          const result = await write('COMMIT');
          // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK and no error: a caller
          // that swallowed an error inside its transaction must not be told it committed.
          if (result.command === 'ROLLBACK') {
            throw new StoreError('IOTDR_STORE_TX_ABORTED', 'the transaction failed and was rolled back');
          }
        },
        rollback: async () => void (await write('ROLLBACK')),
        savepoint: async (name) => void (await write(`SAVEPOINT ${name}`)),
        release: async (name) => void (await write(`RELEASE SAVEPOINT ${name}`)),
        rollbackTo: async (name) => void (await write(`ROLLBACK TO SAVEPOINT ${name}`)),
      },
      new PgTx(write, this.#quoted),
      // Every statement is a round trip: no savepoints, a failing caller's batch runs again without it.
      { isolation: 'rerun', ...(this.#maxBatch === undefined ? {} : { maxBatch: this.#maxBatch }) },
    );
    this.#pool = pool;
    this.#reader = new PgReader((text, values) => this.#poolQuery(text, values), this.#quoted);
  }

  async #connectWriter(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#url,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'iotdr-writer',
    });
    const broken = (): void => {
      if (this.#writer === client) this.#writerBroken = true;
    };
    client.on('error', broken);
    client.on('end', broken);
    this.#writer = client;
    this.#writerBroken = false;
    await client.connect();
  }

  /** Replaces a writer connection that died; called only between transactions. */
  async #ensureWriter(): Promise<void> {
    if (this.#writer && !this.#writerBroken) return;
    const old = this.#writer;
    this.#writer = undefined;
    await old?.end().catch(() => {});
    try {
      await this.#connectWriter();
    } catch (error) {
      this.#writerBroken = true;
      throw this.#storeError(error, 'cannot connect the PostgreSQL writer');
    }
  }

  async #writerQuery<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    const writer = this.#writer;
    if (!writer || this.#writerBroken) {
      throw new StoreError('IOTDR_STORE_UNAVAILABLE', 'the PostgreSQL writer connection is lost');
    }
    try {
      // Parameterized statements are prepared once per connection (named), so the server does not
      // parse and plan the same upsert for every write.
      if (values === undefined) return await writer.query<R>(text);
      return await writer.query<R>({ name: statementName(text), text, values });
    } catch (error) {
      if (isConnectionFailure(error)) this.#writerBroken = true;
      throw this.#storeError(error, 'PostgreSQL write failed');
    }
  }

  async #poolQuery<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    if (this.#closed) throw storeClosed();
    const pool = this.#pool;
    if (!pool) throw storeNotInitialized();
    try {
      return await pool.query<R>(text, values);
    } catch (error) {
      throw this.#storeError(error, 'PostgreSQL read failed');
    }
  }

  async #migrate(): Promise<void> {
    const writer = this.#writer;
    if (!writer) throw new StoreError('IOTDR_STORE_UNAVAILABLE', 'no writer connection');
    const s = this.#quoted;
    await writer.query('BEGIN');
    try {
      // Two processes initialising the same schema at once would race on CREATE ... IF NOT EXISTS.
      await writer.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`iotdr:init:${this.#schema}`]);
      await writer.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
      await writer.query(
        `CREATE TABLE IF NOT EXISTS ${s}.schema_meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL)`,
      );
      const { rows } = await writer.query<{ value: string }>(
        `SELECT value FROM ${s}.schema_meta WHERE key = 'schema_version'`,
      );
      const current = rows[0]?.value;
      if (current !== undefined && Number(current) > SCHEMA_VERSION) {
        throw new StoreError(
          'IOTDR_STORE_SCHEMA_TOO_NEW',
          `schema ${this.#schema} has schema version ${current}; this iotdr knows up to ${SCHEMA_VERSION}`,
        );
      }
      await writer.query(schemaSql(s));
      await writer.query(
        `INSERT INTO ${s}.schema_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [String(SCHEMA_VERSION)],
      );
      await writer.query('COMMIT');
    } catch (error) {
      await writer.query('ROLLBACK').catch(() => {});
      throw error;
    }
  }

  #storeError(error: unknown, message: string): unknown {
    if (error instanceof StoreError) return error;
    if (isConnectionFailure(error)) {
      const reason = error instanceof Error ? `: ${error.message}` : '';
      return new StoreError('IOTDR_STORE_UNAVAILABLE', `${message}${reason}`, { cause: error });
    }
    if ((error as { code?: unknown } | null)?.code === '25P02') {
      // in_failed_sql_transaction: an earlier statement failed and the caller carried on. Folded
      // into a batch, this surfaces at RELEASE SAVEPOINT instead of at COMMIT: the same answer.
      return new StoreError('IOTDR_STORE_TX_ABORTED', 'the transaction failed and was rolled back', {
        cause: error,
      });
    }
    // Constraint violations (a duplicate change id) and other SQL errors keep pg's DatabaseError
    // with its SQLSTATE code, as the SQLite store keeps SqliteError.
    return error;
  }

  protected override ready(): { reader: PgReader; committer: GroupCommitter } {
    if (this.#closed) throw storeClosed();
    if (!this.#reader || !this.#committer) {
      throw storeNotInitialized();
    }
    return { reader: this.#reader, committer: this.#committer };
  }

  async changes(options: ChangesOptions): Promise<ChangeRecord[]> {
    const s = this.#quoted;
    const { rows } =
      options.origin === undefined
        ? await this.#poolQuery<ChangeRow>(
            `SELECT ${CHANGE_COLUMNS} FROM ${s}.changes WHERE seq > $1 ORDER BY seq LIMIT $2`,
            [options.after, options.limit],
          )
        : await this.#poolQuery<ChangeRow>(
            `SELECT ${CHANGE_COLUMNS} FROM ${s}.changes WHERE origin = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
            [options.origin, options.after, options.limit],
          );
    return rows.map(toChange);
  }

  async lastSeq(): Promise<number> {
    // The counter commits together with the changes it numbers: it is the highest committed seq.
    const { rows } = await this.#poolQuery<{ last: Int }>(
      `SELECT last FROM ${this.#quoted}.seq_counter WHERE id = 1`,
    );
    return Number(rows[0]?.last ?? 0);
  }

  async countChanges(options: { after: number; origin?: string }): Promise<number> {
    const s = this.#quoted;
    const { rows } =
      options.origin === undefined
        ? await this.#poolQuery<{ n: Int }>(`SELECT COUNT(*) AS n FROM ${s}.changes WHERE seq > $1`, [
            options.after,
          ])
        : await this.#poolQuery<{ n: Int }>(
            `SELECT COUNT(*) AS n FROM ${s}.changes WHERE origin = $1 AND seq > $2`,
            [options.origin, options.after],
          );
    return Number(rows[0]?.n ?? 0);
  }

  async firstSeq(): Promise<number> {
    const { rows } = await this.#poolQuery<{ seq: Int | null }>(
      `SELECT MIN(seq) AS seq FROM ${this.#quoted}.changes`,
    );
    return Number(rows[0]?.seq ?? 0);
  }

  // Maintenance runs as single autocommit statements beside the writer, not in its batches: a row
  // the writer changes meanwhile is re-checked by PostgreSQL after the writer commits.

  async purgeTombstones(before: number): Promise<number> {
    // SKIP LOCKED: a plain DELETE would lock tombstone A, then wait for tombstone B that an open
    // write transaction is reviving; when that transaction then revives A, the two deadlock and
    // PostgreSQL kills one of them — possibly the writer's whole batch. A tombstone being written
    // right now is not purgeable anyway; the next purge finds it if it is still a tombstone.
    const s = this.#quoted;
    const result = await this.#poolQuery(
      `DELETE FROM ${s}.entities WHERE (kind, key) IN (
         SELECT kind, key FROM ${s}.entities WHERE deleted AND updated_at < $1
           AND NOT (CASE WHEN jsonb_typeof(doc->'retainUntil') = 'number'
             THEN (doc->>'retainUntil')::numeric >= $1 ELSE false END)
           FOR UPDATE SKIP LOCKED)`,
      [before],
    );
    return result.rowCount ?? 0;
  }

  async pruneChanges(before: number): Promise<number> {
    const s = this.#quoted;
    const result = await this.#poolQuery(
      `DELETE FROM ${s}.changes WHERE committed_at < $1 AND seq < (SELECT last FROM ${s}.seq_counter WHERE id = 1)`,
      [before],
    );
    return result.rowCount ?? 0;
  }

  async maxHlc(): Promise<Hlc | undefined> {
    const { rows } = await this.#poolQuery<{ hlc_wall: Int; hlc_counter: Int }>(
      `SELECT hlc_wall, hlc_counter FROM ${this.#quoted}.changes ORDER BY hlc_wall DESC, hlc_counter DESC LIMIT 1`,
    );
    const row = rows[0];
    return row ? { wall: Number(row.hlc_wall), counter: Number(row.hlc_counter) } : undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#initializing?.catch(() => {});
    await this.#committer?.idle();
    await this.#pool?.end().catch(() => {});
    await this.#writer?.end().catch(() => {});
  }
}

/** pg lets a URL's (even empty) password override a `password` option, so put it in the URL. */
function withPassword(connectionString: string, password: string | undefined): string {
  if (password === undefined) return connectionString;
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    throw new StoreError(
      'IOTDR_STORE_CONFIG',
      'connectionString must be a postgres:// URL when a password is given',
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new StoreError(
      'IOTDR_STORE_CONFIG',
      `connectionString must be a postgres:// URL, got ${url.protocol}//`,
    );
  }
  // The URL setter leaves '%' as it is; pg decodes the password with decodeURIComponent.
  url.password = encodeURIComponent(password);
  return url.toString();
}
