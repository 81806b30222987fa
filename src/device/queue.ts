import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
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

/**
 * The device's QoS1 outbox on disk: SQLite in WAL mode with `synchronous = FULL`, so an insert that
 * returned is fsynced and survives a process kill or a power cut. Rows leave only on PUBACK.
 * One client per file at a time.
 */
export class MessageQueue {
  readonly #db: Database.Database;
  readonly #max: number;
  readonly #insert: Database.Statement<[string, string, Buffer, number]>;
  readonly #remove: Database.Statement<[number]>;
  readonly #after: Database.Statement<
    [number, number],
    { seq: number; message_id: string; topic: string; payload: Buffer }
  >;
  #depth: number;
  /** Acknowledged, not yet deleted: deleted together, soon after. */
  readonly #acked = new Set<number>();
  #flushScheduled = false;

  constructor(path: string, maxMessages: number) {
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.#db = new Database(path);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.exec(`CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        accepted_at INTEGER NOT NULL
      )`);
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
    this.#max = maxMessages;
    this.#insert = this.#db.prepare(
      'INSERT INTO outbox (message_id, topic, payload, accepted_at) VALUES (?, ?, ?, ?)',
    );
    this.#remove = this.#db.prepare('DELETE FROM outbox WHERE seq = ?');
    this.#after = this.#db.prepare(
      'SELECT seq, message_id, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?',
    );
    this.#depth = (this.#db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
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
      info = this.#insert.run(messageId, topic, payload, acceptedAt);
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
    return this.#after.all(seq, limit).map((r) => ({
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
    if (this.#acked.size === 0 || !this.#db.open) return;
    const seqs = [...this.#acked];
    this.#acked.clear();
    this.#db.pragma('synchronous = NORMAL');
    try {
      const removed = this.#db.transaction(() =>
        seqs.reduce((n, seq) => n + this.#remove.run(seq).changes, 0),
      )();
      // An ack of a message already gone (never expected) must not make the depth drift.
      this.#depth += seqs.length - removed;
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
  }

  close(): void {
    if (!this.#db.open) return;
    this.#flush();
    this.#db.close();
  }
}
