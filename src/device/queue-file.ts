import { chmodSync, closeSync, existsSync, fchmodSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Clock, Timers } from '../common/index.js';

/** One accepted message, waiting for its PUBACK. */
export interface QueuedMessage {
  /** Position in the queue: the order messages are sent in. */
  readonly seq: number;
  readonly messageId: string;
  readonly topic: string;
  readonly payload: Buffer;
}

/** A message to write; `committed` runs once it is in the file, `failed` when it never will be. */
export interface PendingInsert {
  readonly device: string;
  readonly messageId: string;
  readonly topic: string;
  readonly payload: Buffer;
  readonly acceptedAt: number;
  committed(seq: number): void;
  failed(error: unknown): void;
}

type Row = { seq: number; message_id: string; topic: string; payload: Buffer };

/** POSIX modes mean nothing on Windows, where access is governed by ACLs. */
const POSIX = process.platform !== 'win32';
/** The queue holds what the device sends (readings, commands' replies): its owner's alone. */
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
/** SQLite's companions of a WAL database: the log and its shared-memory index. */
const COMPANIONS = ['-wal', '-shm', '-journal'];

/**
 * Makes the queue's directory (0700, each level it creates; an existing one keeps its mode: it may
 * be the user's own) and its file (0600), whatever the process umask. SQLite creates the file 0644
 * less the umask, but gives its -wal, -shm and -journal the mode of the database, so they are 0600
 * too; ones left by an older version are set to 0600 here.
 */
function preparePrivateFile(path: string): void {
  const dir = dirname(path);
  const created = mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  if (POSIX && created !== undefined) {
    // mkdir's mode is filtered by the umask: set it outright on every level made.
    for (let level = dir; ; level = dirname(level)) {
      chmodSync(level, DIR_MODE);
      if (level === created || dirname(level) === level) break;
    }
  }
  if (!POSIX) return;
  const fd = openSync(path, 'a', FILE_MODE);
  try {
    fchmodSync(fd, FILE_MODE);
  } finally {
    closeSync(fd);
  }
  for (const suffix of COMPANIONS)
    if (existsSync(`${path}${suffix}`)) chmodSync(`${path}${suffix}`, FILE_MODE);
}

/** How a file is written; the first device to open it sets them, the others must ask the same. */
export interface QueueFileSettings {
  readonly synchronous: 'full' | 'normal';
  /** Least time between two commits, ms; 0: every turn that wrote commits at its end. */
  readonly commitIntervalMs: number;
  readonly clock: Clock;
  readonly timers: Timers;
}

/**
 * One SQLite connection per file and thread, shared by every device queue kept in that file, and
 * the writes of all of them gathered into one transaction per event-loop turn (or per
 * `commitIntervalMs`): a commit costs about the same for one row as for a hundred (and in `full`
 * mode it is the fsync), so a simulator's thread of 500 devices, or a device publishing in bursts,
 * pays for one instead of one per message and one per PUBACK.
 */
export class QueueFile {
  readonly path: string;
  readonly settings: QueueFileSettings;
  users = 1;
  readonly #db: Database.Database;
  readonly #insert: Database.Statement<[string, string, string, Buffer, number]>;
  readonly #remove: Database.Statement<[number]>;
  readonly #after: Database.Statement<[string, number, number], Row>;
  readonly #size: Database.Statement<[string], { n: number; bytes: number }>;
  readonly #write: (deletes: number[], inserts: PendingInsert[]) => { removed: number[]; seqs: number[] };
  #inserts: PendingInsert[] = [];
  #deletes: number[] = [];
  #deleted: Array<(removed: boolean) => void> = [];
  #scheduled: { timer?: unknown } | undefined;
  #lastCommit = Number.NEGATIVE_INFINITY;
  #closed = false;

  constructor(path: string, settings: QueueFileSettings) {
    this.path = path;
    this.settings = settings;
    preparePrivateFile(path);
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${settings.synchronous.toUpperCase()}`);
      db.exec(`CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        accepted_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS outbox_device ON outbox (device, seq)`);
      this.#insert = db.prepare(
        'INSERT INTO outbox (device, message_id, topic, payload, accepted_at) VALUES (?, ?, ?, ?, ?)',
      );
      this.#remove = db.prepare('DELETE FROM outbox WHERE seq = ?');
      this.#after = db.prepare(
        'SELECT seq, message_id, topic, payload FROM outbox WHERE device = ? AND seq > ? ORDER BY seq LIMIT ?',
      );
      // length() of a blob reads its size from the row header, not the blob.
      this.#size = db.prepare(
        'SELECT count(*) AS n, total(length(payload) + length(topic)) AS bytes FROM outbox WHERE device = ?',
      );
      this.#write = db.transaction((deletes: number[], inserts: PendingInsert[]) => ({
        removed: deletes.map((seq) => this.#remove.run(seq).changes),
        seqs: inserts.map((m) =>
          Number(this.#insert.run(m.device, m.messageId, m.topic, m.payload, m.acceptedAt).lastInsertRowid),
        ),
      }));
    } catch (error) {
      db.close();
      throw error;
    }
    this.#db = db;
  }

  /** Rows and bytes (payload and topic) a device has in the file. */
  size(device: string): { n: number; bytes: number } {
    return this.#size.get(device) ?? { n: 0, bytes: 0 };
  }

  /** Up to `limit` of a device's rows after `seq`, in order, with every write so far committed. */
  read(device: string, seq: number, limit: number): QueuedMessage[] {
    this.commit();
    return this.#after.all(device, seq, limit).map((r) => ({
      seq: r.seq,
      messageId: r.message_id,
      topic: r.topic,
      payload: r.payload,
    }));
  }

  /** Writes the message with this turn's others; `committed` runs once the transaction did. */
  insert(message: PendingInsert): void {
    this.#inserts.push(message);
    this.#schedule();
  }

  /** Deletes an acknowledged row with this turn's other writes; `deleted` says whether it was there. */
  delete(seq: number, deleted: (removed: boolean) => void): void {
    this.#deletes.push(seq);
    this.#deleted.push(deleted);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    const { commitIntervalMs, clock, timers } = this.settings;
    const wait = this.#lastCommit + commitIntervalMs - clock.now();
    const scheduled: { timer?: unknown } = {};
    this.#scheduled = scheduled;
    if (wait > 0) scheduled.timer = timers.setTimeout(() => this.#scheduledCommit(scheduled), wait);
    else setImmediate(() => this.#scheduledCommit(scheduled));
  }

  #scheduledCommit(scheduled: { timer?: unknown }): void {
    // A commit made since (a read, a close) took this one's writes.
    if (this.#scheduled === scheduled) this.commit();
  }

  /** Commits what was written since the last commit, in one transaction, now. */
  commit(): void {
    const scheduled = this.#scheduled;
    this.#scheduled = undefined;
    if (scheduled?.timer !== undefined) this.settings.timers.clearTimeout(scheduled.timer);
    if (this.#closed || (this.#inserts.length === 0 && this.#deletes.length === 0)) return;
    this.#lastCommit = this.settings.clock.now();
    const inserts = this.#inserts;
    const deletes = this.#deletes;
    const deleted = this.#deleted;
    this.#inserts = [];
    this.#deletes = [];
    this.#deleted = [];
    // Deletes alone need no fsync: the next accepted message's carries them, and a delete lost to
    // a power cut only sends that message again, which consumers de-duplicate by its id.
    const relax = this.settings.synchronous === 'full' && inserts.length === 0;
    if (relax) this.#db.pragma('synchronous = NORMAL');
    try {
      let written: { removed: number[]; seqs: number[] };
      try {
        written = this.#write(deletes, inserts);
      } catch {
        // The whole batch rolled back: write each message on its own, so one that cannot be
        // written (a duplicate id) refuses only itself, not its neighbours of the turn.
        this.#writeOneByOne(deletes, deleted, inserts);
        return;
      }
      for (const [i, done] of deleted.entries()) done((written.removed[i] ?? 0) > 0);
      for (const [i, m] of inserts.entries()) m.committed(written.seqs[i] as number);
    } finally {
      if (relax) this.#db.pragma('synchronous = FULL');
    }
  }

  #writeOneByOne(deletes: number[], deleted: Array<(removed: boolean) => void>, inserts: PendingInsert[]) {
    let removed: number[] = [];
    try {
      removed = this.#write(deletes, []).removed;
    } catch {
      // The rows stay, and are sent once more by the next client on this file.
    }
    for (const [i, done] of deleted.entries()) done((removed[i] ?? 1) > 0);
    for (const m of inserts) {
      let seq: number;
      try {
        seq = this.#write([], [m]).seqs[0] as number;
      } catch (error) {
        m.failed(error);
        continue;
      }
      m.committed(seq);
    }
  }

  close(): void {
    this.commit();
    this.#closed = true;
    this.#db.close();
  }
}

/** Open files of this thread: a connection per file, whatever number of devices keep their queue in it. */
const files = new Map<string, QueueFile>();

/** The thread's connection to the file, opened when it is the first device there. */
export function openQueueFile(given: string, settings: QueueFileSettings): QueueFile {
  const path = resolve(given);
  const known = files.get(path);
  if (known) {
    for (const key of ['synchronous', 'commitIntervalMs'] as const)
      if (known.settings[key] !== settings[key])
        throw new Error(`${path} is open with ${key} = ${known.settings[key]} by another device`);
    known.users++;
    return known;
  }
  const file = new QueueFile(path, settings);
  files.set(path, file);
  return file;
}

/** One device leaves the file; the last one closes it (after committing what is waiting). */
export function releaseQueueFile(file: QueueFile): void {
  if (--file.users > 0) {
    file.commit();
    return;
  }
  files.delete(file.path);
  file.close();
}
