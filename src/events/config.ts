/**
 * The `events` section of the configuration: retention and durability of every region's event bus.
 * Its defaults are the bus's own (SqliteEventBus falls back to the same constants).
 */
import { integerWithin, oneOf, type Range, section } from '../common/index.js';
import {
  DEFAULT_SQLITE_SYNCHRONOUS,
  SQLITE_SYNCHRONOUS_MODES,
  type SqliteSynchronous,
} from '../registry/index.js';

/** Events older than this go, in seconds. Default 7 days. */
export const DEFAULT_MAX_AGE_SECONDS = 7 * 24 * 3600;
/** The oldest events go once the log holds more than this, in bytes. Default 1 GiB. */
export const DEFAULT_MAX_BYTES = 1024 ** 3;

/** Bounds of the section's numbers, inclusive. */
export const EVENTS_LIMITS = {
  /** Seconds: a minute to ten years. */
  retentionSeconds: { min: 60, max: 10 * 365 * 24 * 3600 },
  /** Bytes: 1 MiB and up. */
  maxBytes: { min: 1024 * 1024, max: Number.MAX_SAFE_INTEGER },
} as const satisfies Record<string, Range>;

export interface EventsConfig {
  /** Events older than this are dropped, in seconds. Default 7 days. */
  readonly retentionSeconds: number;
  /** The bus is kept under about this many bytes, oldest events dropped first. Default 1 GiB. */
  readonly maxBytes: number;
  /** SQLite `PRAGMA synchronous` of the bus. Default full. */
  readonly synchronous: SqliteSynchronous;
}

export const eventsSection = section({
  retentionSeconds: integerWithin(EVENTS_LIMITS.retentionSeconds, 'seconds').default(DEFAULT_MAX_AGE_SECONDS),
  maxBytes: integerWithin(EVENTS_LIMITS.maxBytes, 'bytes').default(DEFAULT_MAX_BYTES),
  synchronous: oneOf(SQLITE_SYNCHRONOUS_MODES).default(DEFAULT_SQLITE_SYNCHRONOUS),
}).prefault({});
