import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ensurePrivateDir } from '../common/index.js';

/** An HTTP delivery that failed its last attempt, kept until retried or discarded. */
export interface DeadLetter {
  id: string;
  rule: string;
  eventId: string;
  url: string;
  /** Attempts made so far (those of the rule, plus any retries through the API). */
  attempts: number;
  lastError: string;
  /** When the last attempt failed, ms since the epoch. */
  at: number;
  /** The request as it was sent, to send it again. */
  body: Buffer;
  contentType: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

interface Row {
  id: string;
  rule: string;
  event_id: string;
  url: string;
  attempts: number;
  last_error: string;
  at: number;
  body: Buffer;
  content_type: string;
  headers: string;
  timeout_ms: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS dead_letters (
  id TEXT PRIMARY KEY,
  rule TEXT NOT NULL,
  event_id TEXT NOT NULL,
  url TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  at INTEGER NOT NULL,
  body BLOB NOT NULL,
  content_type TEXT NOT NULL,
  headers TEXT NOT NULL,
  timeout_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_rule ON dead_letters(rule, id);
`;

function fromRow(r: Row): DeadLetter {
  return {
    id: r.id,
    rule: r.rule,
    eventId: r.event_id,
    url: r.url,
    attempts: r.attempts,
    lastError: r.last_error,
    at: r.at,
    body: r.body,
    contentType: r.content_type,
    headers: JSON.parse(r.headers) as Record<string, string>,
    timeoutMs: r.timeout_ms,
  };
}

/**
 * Dead letters of the rules' HTTP actions, in the rules' own SQLite database (`<dir>/rules.db`),
 * written with synchronous=FULL: a delivery given up on is never lost with the process. Ids are
 * UUIDv7, so listing by id lists oldest first.
 */
export class DeadLetterStore {
  readonly #db: Database.Database;

  private constructor(db: Database.Database) {
    this.#db = db;
    db.exec(SCHEMA);
  }

  static async open(path: string): Promise<DeadLetterStore> {
    await ensurePrivateDir(dirname(path));
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      return new DeadLetterStore(db);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  add(letter: DeadLetter): void {
    this.#db
      .prepare(
        `INSERT INTO dead_letters (id, rule, event_id, url, attempts, last_error, at, body, content_type, headers, timeout_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        letter.id,
        letter.rule,
        letter.eventId,
        letter.url,
        letter.attempts,
        letter.lastError,
        letter.at,
        letter.body,
        letter.contentType,
        JSON.stringify(letter.headers),
        letter.timeoutMs,
      );
  }

  /** Oldest first; `after` is the last id of the previous page. */
  list(options: { rule?: string; after?: string; limit: number }): DeadLetter[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (options.rule !== undefined) {
      where.push('rule = ?');
      args.push(options.rule);
    }
    if (options.after !== undefined) {
      where.push('id > ?');
      args.push(options.after);
    }
    const sql = `SELECT * FROM dead_letters ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
    return (this.#db.prepare(sql).all(...args, options.limit) as Row[]).map(fromRow);
  }

  get(id: string): DeadLetter | undefined {
    const row = this.#db.prepare('SELECT * FROM dead_letters WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  count(): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get() as { n: number }).n;
  }

  /** Records another failed attempt. */
  failedAgain(id: string, attempts: number, lastError: string, at: number): void {
    this.#db
      .prepare('UPDATE dead_letters SET attempts = attempts + ?, last_error = ?, at = ? WHERE id = ?')
      .run(attempts, lastError, at, id);
  }

  /** True when there was such a dead letter. */
  remove(id: string): boolean {
    return this.#db.prepare('DELETE FROM dead_letters WHERE id = ?').run(id).changes > 0;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
