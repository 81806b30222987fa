/**
 * The `analytics` section of the configuration (docs/architecture.md §4.13, docs/analytics.md):
 * where `iotdr analytics` listens, how far behind a region's bus it may be, and what it keeps.
 */
import { z } from 'zod';
import {
  addressSchema,
  expecting,
  integerWithin,
  type ListenerConfig,
  listener,
  matching,
  type Range,
  section,
  trueOrFalse,
} from '../common/index.js';

/** HTTP API and dashboard of `iotdr analytics`. */
export const DEFAULT_ANALYTICS_ADDRESS = '127.0.0.10';
export const DEFAULT_ANALYTICS_PORT = 8081;
/** Ingestion of a region is healthy while the oldest unread event is at most this old, in ms. Default 5000. */
export const DEFAULT_MAX_LAG_MS = 5000;
/** Field of a JSON payload holding the device's sequence number. Default `seq`. */
export const DEFAULT_SEQUENCE_FIELD = 'seq';
/** A top-level JSON field name: letters, digits, underscore, at most 64 characters. */
export const SEQUENCE_FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Rates and seen ids older than this go, in seconds; 0 keeps everything. Default 7 days. */
export const DEFAULT_ANALYTICS_RETENTION_SECONDS = 604_800;

/** Bounds of the section's numbers, inclusive. */
export const ANALYTICS_LIMITS = {
  /** ms: 100 ms to an hour. */
  maxLagMs: { min: 100, max: 3_600_000 },
  /** Seconds: 0 (keep everything) to ten years. */
  retentionSeconds: { min: 0, max: 315_360_000 },
} as const satisfies Record<string, Range>;
/** Most names in `allowedHosts`. */
export const MAX_ALLOWED_HOSTS = 32;

export interface AnalyticsConfig extends ListenerConfig {
  /**
   * A region's ingestion is healthy while analytics is at most this far behind its bus, in ms
   * (events appended longer ago than this and not read yet make it lag). Default 5000.
   */
  readonly maxLagMs: number;
  /** The payload field holding a device's sequence number, for gap detection. Default `seq`. */
  readonly sequenceField: string;
  /** Telemetry older than this is removed, in seconds (0 keeps everything). Default 7 days. */
  readonly retentionSeconds: number;
  /**
   * Each region's `analytics` health checkpoint asks `iotdr analytics` whether it ingests that
   * region within `maxLagMs`. Default true; false leaves analytics out of the regions' health.
   */
  readonly regionCheck: boolean;
  /**
   * Host names (or addresses) the analytics API and dashboard answer to, besides `address` and
   * the address a request came in on (`localhost` too when that is loopback): the names a reverse
   * proxy or an operator's browser uses. A request naming any other host gets 421
   * (DNS-rebinding protection). At most MAX_ALLOWED_HOSTS (32). Default none.
   */
  readonly allowedHosts?: readonly string[];
}

export const analyticsSection = section({
  ...listener(DEFAULT_ANALYTICS_ADDRESS, DEFAULT_ANALYTICS_PORT),
  maxLagMs: integerWithin(ANALYTICS_LIMITS.maxLagMs, 'ms').default(DEFAULT_MAX_LAG_MS),
  sequenceField: matching(
    SEQUENCE_FIELD_PATTERN,
    'a top-level JSON field name such as seq (letters, digits, underscore)',
  ).default(DEFAULT_SEQUENCE_FIELD),
  retentionSeconds: integerWithin(ANALYTICS_LIMITS.retentionSeconds, 'seconds').default(
    DEFAULT_ANALYTICS_RETENTION_SECONDS,
  ),
  regionCheck: trueOrFalse().default(true),
  allowedHosts: z
    .array(addressSchema, { error: expecting('expected a list of host names or addresses') })
    .max(MAX_ALLOWED_HOSTS, { error: `expected at most ${MAX_ALLOWED_HOSTS} host names` })
    .optional(),
}).prefault({});

/**
 * Every name the analytics server answers to by configuration: its `address` and `allowedHosts`
 * (the address a request came in on is always allowed). What the routes' Host check is given.
 */
export function analyticsHosts(config: Pick<AnalyticsConfig, 'address' | 'allowedHosts'>): string[] {
  return [config.address, ...(config.allowedHosts ?? [])];
}
