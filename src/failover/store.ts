import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { FailoverStoreError } from './errors.js';
import type { FailoverEvent, NewEvent, PersistedState, SwitchEvent } from './types.js';

/** Largest page of GET /v1/failover/events. */
export const MAX_EVENTS_PAGE = 500;

/** What a store holds: the committed state (none before the first commit) and the latest switch. */
export interface StoredControl {
  readonly state: PersistedState | undefined;
  readonly lastSwitch: SwitchEvent | undefined;
}

/** Which events a page of the decision log holds. */
export interface EventQuery {
  after?: number;
  limit: number;
  type?: FailoverEvent['type'];
}

/**
 * Where the controller's state and decision log are committed before anyone is told of them: a
 * SQLite file for one control node (FailoverStore), etcd for several (`src/control`), where every
 * write is fenced by the leader's lease and refused with NotLeaderError once that lease is gone.
 */
export interface ControlStore {
  /** The committed state and latest switch. A fenced store also takes this as the base of its next commit. */
  load(): Promise<StoredControl>;
  /** Saves the state and appends the events, atomically; resolves with the events and their seq. */
  commit(state: PersistedState, events: NewEvent[]): Promise<FailoverEvent[]>;
  /** Replaces a switch event's body (the executor reporting a step). */
  updateSwitch(event: SwitchEvent): Promise<void>;
  getEvent(id: string): Promise<FailoverEvent | undefined>;
  /** Events after `after` (a seq), oldest first; `type` filters. */
  events(query: EventQuery): Promise<FailoverEvent[]>;
  close(): Promise<void> | void;
}

/**
 * The controller's durable state and decision log in one SQLite file. synchronous=FULL: a
 * decision is on disk before it is announced, so a controller killed with -9 resumes with it.
 * State and the event that changed it are written in one transaction.
 */
export class FailoverStore implements ControlStore {
  readonly #db: Database.Database;

  constructor(path: string) {
    try {
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      this.#db = new Database(path);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.exec(`
        CREATE TABLE IF NOT EXISTS failover_state (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS failover_events (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE,
          type TEXT NOT NULL,
          at INTEGER NOT NULL,
          body TEXT NOT NULL
        );`);
    } catch (error) {
      throw new FailoverStoreError(`cannot open the failover state at ${path}`, error);
    }
  }

  async load(): Promise<StoredControl> {
    const row = this.#db.prepare('SELECT body FROM failover_state WHERE id = 1').get() as
      | { body: string }
      | undefined;
    return {
      state: row ? (JSON.parse(row.body) as PersistedState) : undefined,
      lastSwitch: this.#lastSwitch(),
    };
  }

  async commit(state: PersistedState, events: NewEvent[]): Promise<FailoverEvent[]> {
    const out: FailoverEvent[] = [];
    this.#db.transaction(() => {
      this.#db
        .prepare(
          'INSERT INTO failover_state (id, body) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body',
        )
        .run(JSON.stringify(state));
      const insert = this.#db.prepare('INSERT INTO failover_events (id, type, at, body) VALUES (?, ?, ?, ?)');
      const update = this.#db.prepare('UPDATE failover_events SET body = ? WHERE seq = ?');
      for (const event of events) {
        const seq = Number(insert.run(event.id, event.type, event.at, '{}').lastInsertRowid);
        const full = { ...event, seq } as FailoverEvent;
        update.run(JSON.stringify(full), seq);
        out.push(full);
      }
    })();
    return out;
  }

  async updateSwitch(event: SwitchEvent): Promise<void> {
    this.#db.prepare('UPDATE failover_events SET body = ? WHERE id = ?').run(JSON.stringify(event), event.id);
  }

  async getEvent(id: string): Promise<FailoverEvent | undefined> {
    const row = this.#db.prepare('SELECT body FROM failover_events WHERE id = ?').get(id) as
      | { body: string }
      | undefined;
    return row ? (JSON.parse(row.body) as FailoverEvent) : undefined;
  }

  async events(options: EventQuery): Promise<FailoverEvent[]> {
    const rows = this.#db
      .prepare(
        `SELECT body FROM failover_events WHERE seq > ? ${options.type ? 'AND type = ?' : ''} ORDER BY seq LIMIT ?`,
      )
      .all(...[options.after ?? 0, ...(options.type ? [options.type] : []), options.limit]) as {
      body: string;
    }[];
    return rows.map((r) => JSON.parse(r.body) as FailoverEvent);
  }

  #lastSwitch(): SwitchEvent | undefined {
    const row = this.#db
      .prepare("SELECT body FROM failover_events WHERE type = 'switch' ORDER BY seq DESC LIMIT 1")
      .get() as { body: string } | undefined;
    return row ? (JSON.parse(row.body) as SwitchEvent) : undefined;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
