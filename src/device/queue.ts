import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { DeviceError, QueueFullError } from './errors.js';

/** One accepted message, waiting for its PUBACK. */
export interface QueuedMessage {
  /** Position in the queue: the order messages are sent in. */
  readonly seq: number;
  readonly messageId: string;
  readonly topic: string;
  readonly payload: Buffer;
}

/** One SQLite connection per file and thread, shared by every queue kept in that file. */
interface SharedFile {
  db: Database.Database;
  synchronous: 'full' | 'normal';
  users: number;
  insert: Database.Statement<[string, string, string, Buffer, number]>;
  remove: Database.Statement<[number]>;
  after: Database.Statement<
    [string, number, number],
    { seq: number; message_id: string; topic: string; payload: Buffer }
  >;
  count: Database.Statement<[string], { n: number }>;
}

const files = new Map<string, SharedFile>();

function openFile(given: string, synchronous: 'full' | 'normal'): SharedFile {
  const path = resolve(given);
  const known = files.get(path);
  if (known) {
    if (known.synchronous !== synchronous)
      throw new Error(`${path} is open with synchronous = ${known.synchronous} by another device`);
    known.users++;
    return known;
  }
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
    db.exec(`CREATE TABLE IF NOT EXISTS outbox (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      device TEXT NOT NULL,
      message_id TEXT NOT NULL UNIQUE,
      topic TEXT NOT NULL,
      payload BLOB NOT NULL,
      accepted_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS outbox_device ON outbox (device, seq)`);
    const file: SharedFile = {
      db,
      synchronous,
      users: 1,
      insert: db.prepare(
        'INSERT INTO outbox (device, message_id, topic, payload, accepted_at) VALUES (?, ?, ?, ?, ?)',
      ),
      remove: db.prepare('DELETE FROM outbox WHERE seq = ?'),
      after: db.prepare(
        'SELECT seq, message_id, topic, payload FROM outbox WHERE device = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      count: db.prepare('SELECT count(*) AS n FROM outbox WHERE device = ?'),
    };
    files.set(path, file);
    return file;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * The device's QoS1 outbox on disk: SQLite in WAL mode with `synchronous = FULL`, so an insert that
 * returned is fsynced and survives a process kill or a power cut. Rows leave only on PUBACK.
 * Several devices may keep their queues in one file (a gateway, a simulator: one connection per
 * file and thread, rows kept apart by the device's name); one client per device at a time.
 */
export class MessageQueue {
  readonly #path: string;
  readonly #file: SharedFile;
  readonly #device: string;
  readonly #max: number;
  #depth: number;
  #closed = false;
  /** Acknowledged, not yet deleted: deleted together, soon after. */
  readonly #acked = new Set<number>();
  #flushScheduled = false;

  constructor(path: string, device: string, maxMessages: number, synchronous: 'full' | 'normal' = 'full') {
    try {
      this.#file = openFile(path, synchronous);
    } catch (error) {
      throw new DeviceError(
        'IOTDR_DEVICE_QUEUE_STORE',
        `cannot open the device queue ${path}: ${String(error)}`,
        {
          status: 500,
          cause: error,
        },
      );
    }
    this.#path = resolve(path);
    this.#device = device;
    this.#max = maxMessages;
    this.#depth = this.#file.count.get(device)?.n ?? 0;
  }

  /** Messages accepted and not yet acknowledged. */
  get depth(): number {
    return this.#depth;
  }

  /** Appends a message durably; refuses (and writes nothing) when the queue is full. */
  append(messageId: string, topic: string, payload: Buffer, acceptedAt: number): QueuedMessage {
    if (this.#depth >= this.#max) throw new QueueFullError(this.#max);
    let info: Database.RunResult;
    try {
      info = this.#file.insert.run(this.#device, messageId, topic, payload, acceptedAt);
    } catch (error) {
      throw new DeviceError(
        'IOTDR_DEVICE_QUEUE_STORE',
        `cannot write to the device queue: ${String(error)}`,
        {
          status: 500,
          cause: error,
        },
      );
    }
    this.#depth++;
    return { seq: Number(info.lastInsertRowid), messageId, topic, payload };
  }

  /** Up to `limit` messages after `seq`, in order. */
  after(seq: number, limit: number): QueuedMessage[] {
    this.#flush();
    return this.#file.after.all(this.#device, seq, limit).map((r) => ({
      seq: r.seq,
      messageId: r.message_id,
      topic: r.topic,
      payload: r.payload,
    }));
  }

  /**
   * Removes an acknowledged message. Deletes are batched and committed without their own fsync
   * (`synchronous = NORMAL`): the next accepted message's fsync carries them, and a delete lost to
   * a power cut only sends that message again, which consumers de-duplicate by its id.
   */
  remove(seq: number): void {
    if (this.#acked.has(seq)) return;
    this.#acked.add(seq);
    this.#depth--;
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#acked.size === 0 || this.#closed) return;
    const seqs = [...this.#acked];
    this.#acked.clear();
    const { db, remove, synchronous } = this.#file;
    if (synchronous === 'full') db.pragma('synchronous = NORMAL');
    try {
      const removed = db.transaction(() => seqs.reduce((n, seq) => n + remove.run(seq).changes, 0))();
      // An ack of a message already gone (never expected) must not make the depth drift.
      this.#depth += seqs.length - removed;
    } finally {
      if (synchronous === 'full') db.pragma('synchronous = FULL');
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    if (--this.#file.users > 0) return;
    files.delete(this.#path);
    this.#file.db.close();
  }
}
