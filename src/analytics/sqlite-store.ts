import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { type Clock, ensurePrivateDir, systemClock } from '../common/index.js';
import type { BusEvent } from '../events/index.js';
import { DEFAULT_ANALYTICS_RETENTION_SECONDS, DEFAULT_SEQUENCE_FIELD } from './config.js';
import { storeClosed } from './errors.js';
import { addSeq, gapsOf, missingOf, type SeqRanges, seqOf } from './ranges.js';
import type { AnalyticsStore, IngestResult, RegionCursor, RetentionOutcome } from './store.js';
import type { DeviceSummary, RatePoint, TimelineEntry } from './types.js';

/** How often retention runs by itself, in ms (default 60000). */
export const DEFAULT_ANALYTICS_RETENTION_INTERVAL_MS = 60_000;

/** Runs `fn` every `ms`; returns the cancel function. Injected so tests drive retention. */
export type Every = (ms: number, fn: () => void) => () => void;

const realEvery: Every = (ms, fn) => {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
};

export interface SqliteAnalyticsStoreOptions {
  /** Database file, e.g. `<state>/analytics/analytics.db`; its directory is created (0700). */
  path: string;
  /** Top-level JSON payload field with the device's sequence number. Default `seq`. */
  sequenceField?: string;
  /** Rates and seen ids older than this go, in seconds; 0 keeps everything. Default 604800 (7 days). */
  retentionSeconds?: number;
  /** How often retention runs by itself, in ms; 0 = only on demand. Default 60000. */
  retentionIntervalMs?: number;
  clock?: Clock;
  every?: Every;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cursors (
  region TEXT PRIMARY KEY,
  next INTEGER NOT NULL,
  read INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, time INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS seen_time ON seen(time);
CREATE TABLE IF NOT EXISTS rates (
  region TEXT NOT NULL,
  second INTEGER NOT NULL,
  messages INTEGER NOT NULL,
  PRIMARY KEY (second, region)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
  thing TEXT PRIMARY KEY,
  last_seen INTEGER NOT NULL,
  last_region TEXT NOT NULL,
  messages INTEGER NOT NULL,
  first_seq INTEGER,
  last_seq INTEGER,
  missing INTEGER NOT NULL DEFAULT 0,
  ranges TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS devices_missing ON devices(thing) WHERE missing > 0;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS timeline (
  seq INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  at INTEGER NOT NULL,
  event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_type ON timeline(type, seq);
`;

interface DeviceRow {
  thing: string;
  last_seen: number;
  last_region: string;
  messages: number;
  first_seq: number | null;
  last_seq: number | null;
  missing: number;
  ranges: string;
}

interface Device {
  thing: string;
  lastSeen: number;
  lastRegion: string;
  messages: number;
  ranges: SeqRanges;
}

function summaryOf(row: DeviceRow): DeviceSummary {
  return {
    thingName: row.thing,
    lastSeenAt: row.last_seen,
    lastRegion: row.last_region,
    messages: row.messages,
    firstSeq: row.first_seq,
    lastSeq: row.last_seq,
    missing: row.missing,
    gaps: row.missing > 0 ? gapsOf(JSON.parse(row.ranges) as SeqRanges) : [],
  };
}

/**
 * Analytics in one SQLite file (WAL, synchronous FULL): every ingested batch is one transaction,
 * fsynced, with the region's next offset in it. better-sqlite3 is synchronous; the async methods
 * keep the interface open to a networked engine.
 */
export class SqliteAnalyticsStore implements AnalyticsStore {
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #sequenceField: string;
  readonly #retentionMs: number;
  readonly #stopRetention: () => void;
  readonly #ingestTx: (region: string, events: readonly BusEvent[], next: number) => IngestResult;
  // The statements of every batch, prepared once.
  readonly #stmt: {
    insertSeen: Database.Statement<[string, number]>;
    addRate: Database.Statement<[string, number]>;
    device: Database.Statement<[string], DeviceRow>;
    saveDevice: Database.Statement<
      [string, number, string, number, number | null, number | null, number, string]
    >;
    bump: Database.Statement<[string, number]>;
    saveCursor: Database.Statement<[string, number, number, number]>;
  };
  #closed = false;

  private constructor(db: Database.Database, options: SqliteAnalyticsStoreOptions) {
    this.#db = db;
    this.#clock = options.clock ?? systemClock;
    this.#sequenceField = options.sequenceField ?? DEFAULT_SEQUENCE_FIELD;
    this.#retentionMs = (options.retentionSeconds ?? DEFAULT_ANALYTICS_RETENTION_SECONDS) * 1000;
    this.#stmt = {
      insertSeen: db.prepare('INSERT OR IGNORE INTO seen (id, time) VALUES (?, ?)'),
      addRate: db.prepare(
        'INSERT INTO rates (region, second, messages) VALUES (?, ?, 1) ON CONFLICT (second, region) DO UPDATE SET messages = messages + 1',
      ),
      device: db.prepare('SELECT * FROM devices WHERE thing = ?'),
      saveDevice: db.prepare(
        `INSERT INTO devices (thing, last_seen, last_region, messages, first_seq, last_seq, missing, ranges)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (thing) DO UPDATE SET last_seen = excluded.last_seen, last_region = excluded.last_region,
           messages = excluded.messages, first_seq = excluded.first_seq, last_seq = excluded.last_seq,
           missing = excluded.missing, ranges = excluded.ranges`,
      ),
      bump: db.prepare(
        'INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value',
      ),
      saveCursor: db.prepare(
        `INSERT INTO cursors (region, next, read, duplicates) VALUES (?, ?, ?, ?)
         ON CONFLICT (region) DO UPDATE SET next = excluded.next, read = read + excluded.read,
           duplicates = duplicates + excluded.duplicates`,
      ),
    };
    this.#ingestTx = db.transaction((region, events, next) => this.#ingestNow(region, events, next));
    const interval = options.retentionIntervalMs ?? DEFAULT_ANALYTICS_RETENTION_INTERVAL_MS;
    this.#stopRetention =
      interval > 0 && this.#retentionMs > 0
        ? (options.every ?? realEvery)(interval, () => {
            if (!this.#closed) this.#retain();
          })
        : () => {};
  }

  /** Opens (creating when absent) the database; its directory is made private. */
  static async open(options: SqliteAnalyticsStoreOptions): Promise<SqliteAnalyticsStore> {
    await ensurePrivateDir(dirname(options.path));
    const db = new Database(options.path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqliteAnalyticsStore(db, options);
  }

  async ingest(region: string, events: readonly BusEvent[], next: number): Promise<IngestResult> {
    this.#open();
    return this.#ingestTx(region, events, next);
  }

  #ingestNow(region: string, events: readonly BusEvent[], next: number): IngestResult {
    const stmt = this.#stmt;
    const devices = new Map<string, Device>();
    const result: IngestResult = { read: 0, duplicates: 0, accepted: 0 };
    for (const event of events) {
      // The region's own probe of its bus is not device data.
      if (event.source.type === 'health') continue;
      result.read++;
      if (stmt.insertSeen.run(event.id, event.time).changes === 0) {
        result.duplicates++;
        continue;
      }
      result.accepted++;
      stmt.addRate.run(region, Math.floor(event.time / 1000) * 1000);
      if (event.thingName === undefined) continue;
      const device = devices.get(event.thingName) ?? this.#loadDevice(event.thingName, region, event.time);
      devices.set(device.thing, device);
      device.messages++;
      // A late message (re-sent through the other region) does not move "last seen" back.
      if (event.time >= device.lastSeen) {
        device.lastSeen = event.time;
        device.lastRegion = region;
      }
      const seq = seqOf(event.payload, this.#sequenceField);
      if (seq !== undefined) addSeq(device.ranges, seq);
    }
    for (const d of devices.values()) {
      const first = d.ranges[0];
      const last = d.ranges[d.ranges.length - 1];
      stmt.saveDevice.run(
        d.thing,
        d.lastSeen,
        d.lastRegion,
        d.messages,
        first ? first[0] : null,
        last ? last[1] : null,
        missingOf(d.ranges),
        JSON.stringify(d.ranges),
      );
    }
    stmt.bump.run('messages', result.accepted);
    stmt.bump.run('duplicates', result.duplicates);
    stmt.saveCursor.run(region, next, result.read, result.duplicates);
    return result;
  }

  #loadDevice(thing: string, region: string, time: number): Device {
    const row = this.#stmt.device.get(thing);
    if (!row) return { thing, lastSeen: time, lastRegion: region, messages: 0, ranges: [] };
    return {
      thing,
      lastSeen: row.last_seen,
      lastRegion: row.last_region,
      messages: row.messages,
      ranges: JSON.parse(row.ranges) as SeqRanges,
    };
  }

  async cursor(region: string): Promise<RegionCursor> {
    this.#open();
    const row = this.#db
      .prepare<[string], { next: number; read: number; duplicates: number }>(
        'SELECT next, read, duplicates FROM cursors WHERE region = ?',
      )
      .get(region);
    return { region, nextOffset: row?.next ?? 0, read: row?.read ?? 0, duplicates: row?.duplicates ?? 0 };
  }

  async rates(options: { from: number; to: number; region?: string }): Promise<RatePoint[]> {
    this.#open();
    const rows =
      options.region === undefined
        ? this.#db
            .prepare<[number, number], RatePoint>(
              'SELECT region, second, messages FROM rates WHERE second >= ? AND second < ? ORDER BY second, region',
            )
            .all(options.from, options.to)
        : this.#db
            .prepare<[number, number, string], RatePoint>(
              'SELECT region, second, messages FROM rates WHERE second >= ? AND second < ? AND region = ? ORDER BY second',
            )
            .all(options.from, options.to, options.region);
    return rows.map((r) => ({ region: r.region, second: r.second, messages: r.messages }));
  }

  async devices(options: { limit: number; after?: string; withGaps?: boolean }): Promise<DeviceSummary[]> {
    this.#open();
    const rows = this.#db
      .prepare<[string, number], DeviceRow>(
        `SELECT * FROM devices WHERE thing > ? ${options.withGaps ? 'AND missing > 0' : ''} ORDER BY thing LIMIT ?`,
      )
      .all(options.after ?? '', options.limit);
    return rows.map(summaryOf);
  }

  async device(thingName: string): Promise<DeviceSummary | undefined> {
    this.#open();
    const row = this.#db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE thing = ?').get(thingName);
    return row ? summaryOf(row) : undefined;
  }

  async totals(): Promise<{
    messages: number;
    duplicates: number;
    devices: number;
    devicesWithGaps: number;
    missing: number;
  }> {
    this.#open();
    const counter = (name: string) =>
      this.#db.prepare<[string], { value: number }>('SELECT value FROM counters WHERE name = ?').get(name)
        ?.value ?? 0;
    const d = this.#db
      .prepare<[], { devices: number; withGaps: number | null; missing: number | null }>(
        'SELECT count(*) AS devices, sum(missing > 0) AS withGaps, sum(missing) AS missing FROM devices',
      )
      .get();
    return {
      messages: counter('messages'),
      duplicates: counter('duplicates'),
      devices: d?.devices ?? 0,
      devicesWithGaps: d?.withGaps ?? 0,
      missing: d?.missing ?? 0,
    };
  }

  async timeline(options: { after?: number; limit: number; type?: string }): Promise<TimelineEntry[]> {
    this.#open();
    const after = options.after ?? 0;
    const rows =
      options.type === undefined
        ? this.#db
            .prepare<[number, number], { seq: number; type: string; at: number; event: string }>(
              'SELECT * FROM timeline WHERE seq > ? ORDER BY seq LIMIT ?',
            )
            .all(after, options.limit)
        : this.#db
            .prepare<[string, number, number], { seq: number; type: string; at: number; event: string }>(
              'SELECT * FROM timeline WHERE type = ? AND seq > ? ORDER BY seq LIMIT ?',
            )
            .all(options.type, after, options.limit);
    return rows.map((r) => ({
      seq: r.seq,
      type: r.type,
      at: r.at,
      event: JSON.parse(r.event) as Record<string, unknown>,
    }));
  }

  async appendTimeline(entries: readonly TimelineEntry[]): Promise<number> {
    this.#open();
    const insert = this.#db.prepare<[number, string, number, string]>(
      'INSERT OR IGNORE INTO timeline (seq, type, at, event) VALUES (?, ?, ?, ?)',
    );
    return this.#db.transaction(() => {
      let added = 0;
      for (const e of entries) added += insert.run(e.seq, e.type, e.at, JSON.stringify(e.event)).changes;
      return added;
    })();
  }

  async lastTimelineSeq(): Promise<number> {
    this.#open();
    return (
      this.#db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM timeline').get()?.seq ?? 0
    );
  }

  async enforceRetention(): Promise<RetentionOutcome> {
    this.#open();
    return this.#retain();
  }

  #retain(): RetentionOutcome {
    if (this.#retentionMs <= 0) return { rates: 0, seenIds: 0 };
    const cutoff = this.#clock.now() - this.#retentionMs;
    return this.#db.transaction(() => ({
      // A second is kept while any of it is inside the period.
      rates: this.#db.prepare<[number]>('DELETE FROM rates WHERE second <= ?').run(cutoff - 1000).changes,
      seenIds: this.#db.prepare<[number]>('DELETE FROM seen WHERE time < ?').run(cutoff).changes,
    }))();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopRetention();
    this.#db.close();
  }

  #open(): void {
    if (this.#closed) throw storeClosed();
  }
}
