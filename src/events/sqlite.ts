import { EventEmitter } from 'node:events';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Registry } from 'prom-client';
import { type Clock, ensurePrivateDir, systemClock } from '../common/index.js';
import { DEFAULT_MAX_AGE_SECONDS, DEFAULT_MAX_BYTES } from './config.js';
import { busClosed } from './errors.js';
import { checkEvent, MAX_WAIT_MS, readLimit } from './limits.js';
import { type BusMetrics, busMetrics } from './metrics.js';
import type {
  AppendResult,
  BusEvent,
  BusStats,
  EventBus,
  EventPayload,
  NewEvent,
  ReadOptions,
  ReadResult,
  RetentionResult,
} from './types.js';

/** How often retention runs by itself, in ms. */
export const DEFAULT_RETENTION_INTERVAL_MS = 60_000;
/** Appends committed together at most (group commit). */
const MAX_BATCH = 512;

export type SqliteSynchronous = 'off' | 'normal' | 'full' | 'extra';

/** Runs `fn` every `ms`; returns the cancel function. Injected so tests drive retention. */
export type Every = (ms: number, fn: () => void) => () => void;

const realEvery: Every = (ms, fn) => {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
};

export interface SqliteEventBusOptions {
  /** Database file, e.g. `<state>/regions/<name>/events.db`; its directory is created (0700). */
  path: string;
  region: string;
  /**
   * SQLite `synchronous`: 'full' (default) fsyncs every commit, so an acknowledged append
   * survives a power cut; 'normal' survives a process crash only.
   */
  synchronous?: SqliteSynchronous;
  retention?: {
    /** Events older than this go, in seconds (default 7 days; 0 = no age limit). */
    maxAgeSeconds?: number;
    /** The oldest events go while the log's stored size is over this, in bytes (default 1 GiB; 0 = no limit). */
    maxBytes?: number;
    /** How often retention runs by itself, in ms (default 60000; 0 = only on demand). */
    intervalMs?: number;
  };
  clock?: Clock;
  every?: Every;
  /** The region's Prometheus registry (bus appends, size, offsets). */
  metrics?: Registry;
}

interface Row {
  offset: number;
  id: string;
  time: number;
  source: string;
  topic: string;
  thing: string | null;
  client: string | null;
  ptype: string;
  payload: Buffer;
}

interface Pending {
  event: NewEvent;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  offset INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  time INTEGER NOT NULL,
  source TEXT NOT NULL,
  topic TEXT NOT NULL,
  thing TEXT,
  client TEXT,
  ptype TEXT NOT NULL,
  payload BLOB NOT NULL,
  size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
`;

/** Stored form of the payload: JSON text or the raw bytes (base64 only on the wire). */
function storedPayload(payload: EventPayload): { ptype: string; bytes: Buffer } {
  return payload.type === 'json'
    ? { ptype: 'json', bytes: Buffer.from(JSON.stringify(payload.value) ?? 'null', 'utf8') }
    : { ptype: 'base64', bytes: Buffer.from(payload.data, 'base64') };
}

/**
 * The event bus in its own SQLite database (WAL). Offsets come from AUTOINCREMENT, so they are
 * never reused after retention and, with one writer whose transactions commit in order, gap-free
 * in commit order. Appends that arrive in the same tick commit in one transaction (group commit):
 * one fsync for the batch, each promise resolved only after it.
 */
export class SqliteEventBus implements EventBus {
  readonly region: string;
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #maxAgeMs: number;
  readonly #maxBytes: number;
  readonly #events = new EventEmitter();
  readonly #metrics: BusMetrics | undefined;
  readonly #stopRetention: () => void;
  #queue: Pending[] = [];
  #flushScheduled = false;
  #closed = false;
  #count = 0;
  #bytes = 0;
  readonly #stmt: {
    byId: Database.Statement<[string], { offset: number }>;
    insert: Database.Statement<unknown[]>;
    last: Database.Statement<[], { seq: number }>;
    first: Database.Statement<[], { offset: number | null }>;
    read: Database.Statement<[number, number], Row>;
  };

  private constructor(options: SqliteEventBusOptions, db: Database.Database) {
    this.region = options.region;
    this.#db = db;
    this.#clock = options.clock ?? systemClock;
    this.#maxAgeMs = (options.retention?.maxAgeSeconds ?? DEFAULT_MAX_AGE_SECONDS) * 1000;
    this.#maxBytes = options.retention?.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#events.setMaxListeners(0);
    db.exec(SCHEMA);
    this.#stmt = {
      byId: db.prepare('SELECT offset FROM events WHERE id = ?'),
      insert: db.prepare(
        'INSERT INTO events (id, time, source, topic, thing, client, ptype, payload, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      last: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'"),
      first: db.prepare('SELECT MIN(offset) AS offset FROM events'),
      read: db.prepare(
        'SELECT offset, id, time, source, topic, thing, client, ptype, payload FROM events WHERE offset >= ? ORDER BY offset LIMIT ?',
      ),
    };
    const totals = db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM events').get() as {
      n: number;
      b: number;
    };
    this.#count = totals.n;
    this.#bytes = totals.b;
    this.#metrics = options.metrics ? busMetrics(options.metrics) : undefined;
    this.#gauges();
    const interval = options.retention?.intervalMs ?? DEFAULT_RETENTION_INTERVAL_MS;
    this.#stopRetention =
      interval > 0 ? (options.every ?? realEvery)(interval, () => this.#retainSync()) : () => {};
  }

  static async open(options: SqliteEventBusOptions): Promise<SqliteEventBus> {
    await ensurePrivateDir(dirname(options.path));
    const db = new Database(options.path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${(options.synchronous ?? 'full').toUpperCase()}`);
      db.pragma('busy_timeout = 5000');
      return new SqliteEventBus(options, db);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  append(event: NewEvent): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(busClosed());
    try {
      checkEvent(event);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #insertOne(event: NewEvent): AppendResult & { size: number } {
    const existing = this.#stmt.byId.get(event.id);
    if (existing) return { offset: existing.offset, appended: false, size: 0 };
    const { ptype, bytes } = storedPayload(event.payload);
    const source = JSON.stringify(event.source);
    const size =
      bytes.length + Buffer.byteLength(event.id) + Buffer.byteLength(event.topic) + source.length + 64;
    const info = this.#stmt.insert.run(
      event.id,
      event.time,
      source,
      event.topic,
      event.thingName ?? null,
      event.clientId ?? null,
      ptype,
      bytes,
      size,
    );
    return { offset: Number(info.lastInsertRowid), appended: true, size };
  }

  #flush(): void {
    this.#flushScheduled = false;
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MAX_BATCH);
      let results: Array<AppendResult & { size: number }>;
      try {
        results = this.#db.transaction(() => batch.map((p) => this.#insertOne(p.event)))();
      } catch (error) {
        for (const p of batch) p.reject(error);
        continue;
      }
      let appended = 0;
      for (const [i, r] of results.entries()) {
        if (r.appended) {
          appended++;
          this.#count++;
          this.#bytes += r.size;
        }
        batch[i]?.resolve({ offset: r.offset, appended: r.appended });
      }
      if (appended > 0) {
        this.#metrics?.appends.inc(appended);
        this.#gauges();
        this.#events.emit('append', this.#lastSync());
      }
    }
  }

  #lastSync(): number {
    return this.#stmt.last.get()?.seq ?? 0;
  }

  #firstSync(): number {
    return this.#stmt.first.get()?.offset ?? this.#lastSync() + 1;
  }

  #gauges(): void {
    if (!this.#metrics) return;
    this.#metrics.bytes.set(this.#bytes);
    this.#metrics.count.set(this.#count);
    this.#metrics.lastOffset.set(this.#lastSync());
  }

  #readSync(from: number, limit: number): ReadResult {
    const lastOffset = this.#lastSync();
    const firstOffset = this.#firstSync();
    const wanted = Math.max(from, 1);
    const start = Math.max(wanted, firstOffset);
    // SQLite reads LIMIT -1 as "no limit": readLimit keeps a caller's slip from reading the whole log.
    const rows = this.#stmt.read.all(start, readLimit(limit));
    const events = rows.map((r) => this.#toEvent(r));
    const lastRead = events[events.length - 1];
    return {
      events,
      next: lastRead ? lastRead.offset + 1 : start,
      firstOffset,
      lastOffset,
      ...(wanted < firstOffset ? { gap: { requested: from, firstOffset } } : {}),
    };
  }

  #toEvent(r: Row): BusEvent {
    const payload: EventPayload =
      r.ptype === 'json'
        ? { type: 'json', value: JSON.parse(r.payload.toString('utf8')) }
        : { type: 'base64', data: r.payload.toString('base64') };
    return {
      id: r.id,
      offset: r.offset,
      region: this.region,
      time: r.time,
      source: JSON.parse(r.source) as BusEvent['source'],
      topic: r.topic,
      ...(r.thing === null ? {} : { thingName: r.thing }),
      ...(r.client === null ? {} : { clientId: r.client }),
      payload,
    };
  }

  async read(options: ReadOptions): Promise<ReadResult> {
    if (this.#closed) throw busClosed();
    const first = this.#readSync(options.from, options.limit);
    const waitMs = Math.min(options.waitMs ?? 0, MAX_WAIT_MS);
    if (first.events.length > 0 || waitMs <= 0 || options.signal?.aborted) return first;
    await this.#waitFor(first.next, waitMs, options.signal);
    if (this.#closed) return first;
    return this.#readSync(options.from, options.limit);
  }

  /** Resolves once an offset >= `offset` is committed, after `ms`, on abort or on close. */
  #waitFor(offset: number, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#events.off('append', onAppend);
        this.#events.off('close', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const onAppend = (last: number) => {
        if (last >= offset) done();
      };
      const timer = setTimeout(done, ms);
      this.#events.on('append', onAppend);
      this.#events.once('close', done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  async firstOffset(): Promise<number> {
    if (this.#closed) throw busClosed();
    return this.#firstSync();
  }

  async lastOffset(): Promise<number> {
    if (this.#closed) throw busClosed();
    return this.#lastSync();
  }

  async stats(): Promise<BusStats> {
    if (this.#closed) throw busClosed();
    return {
      firstOffset: this.#firstSync(),
      lastOffset: this.#lastSync(),
      count: this.#count,
      bytes: this.#bytes,
    };
  }

  async enforceRetention(): Promise<RetentionResult> {
    if (this.#closed) throw busClosed();
    return this.#retainSync();
  }

  /** Age first, then size: the oldest events go until the stored size is under the limit. */
  #retainSync(): RetentionResult {
    if (this.#closed) return { removed: 0, firstOffset: 0 };
    let cutoff = 0; // every offset < cutoff goes
    if (this.#maxAgeMs > 0) {
      const oldestKept = this.#db
        .prepare('SELECT MIN(offset) AS offset FROM events WHERE time >= ?')
        .get(this.#clock.now() - this.#maxAgeMs) as { offset: number | null };
      cutoff = oldestKept.offset ?? this.#lastSync() + 1;
    }
    if (this.#maxBytes > 0 && this.#bytes > this.#maxBytes) {
      let excess = this.#bytes - this.#maxBytes;
      const rows = this.#db
        .prepare('SELECT offset, size FROM events ORDER BY offset')
        .iterate() as IterableIterator<{ offset: number; size: number }>;
      for (const row of rows) {
        // Events already going by age count toward the excess too.
        if (row.offset >= cutoff && excess <= 0) break;
        excess -= row.size;
        cutoff = Math.max(cutoff, row.offset + 1);
      }
    }
    let removed = 0;
    if (cutoff > 0) {
      const gone = this.#db
        .prepare('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM events WHERE offset < ?')
        .get(cutoff) as { n: number; b: number };
      if (gone.n > 0) {
        this.#db.prepare('DELETE FROM events WHERE offset < ?').run(cutoff);
        removed = gone.n;
        this.#count -= gone.n;
        this.#bytes -= gone.b;
        this.#gauges();
      }
    }
    return { removed, firstOffset: this.#firstSync() };
  }

  onAppend(listener: (lastOffset: number) => void): () => void {
    this.#events.on('append', listener);
    return () => this.#events.off('append', listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#stopRetention();
    this.#events.emit('close');
    this.#db.close();
  }
}
