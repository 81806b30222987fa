/**
 * What `iotdr analytics` knows, as the query API, the dashboard and the drill read it. The storage
 * behind it is an interface (`AnalyticsStore`, SQLite embedded) so a production engine can replace
 * it; everything here is plain data.
 */

/** How analytics follows one region's event bus. A discriminated union on `type`. */
export type IngestState =
  /** Not read yet since start. */
  | { type: 'starting' }
  /** Reading, and at most `maxLagMs` behind. */
  | { type: 'ingesting' }
  /** Reading, but the oldest unread event was appended more than `maxLagMs` ago. */
  | { type: 'lagging'; lagMs: number }
  /** The region's bus cannot be read: `since` is when the first failure of this streak happened. */
  | { type: 'unreachable'; since: number; error: string }
  /** Ingestion of this region was stopped on purpose (fault injection by the drill). */
  | { type: 'stopped'; since: number; reason: string };

export interface IngestStatus {
  readonly region: string;
  readonly state: IngestState;
  /** The next offset analytics will read from this region's bus (persisted). */
  readonly nextOffset: number;
  /** The region's last offset as of the last read; null before the first. */
  readonly lastOffset: number | null;
  /** Events appended and not read yet (lastOffset − nextOffset + 1, ≥ 0); null before the first read. */
  readonly lagEvents: number | null;
  /** Age of the oldest unread event, ms; 0 when caught up; null before the first read. */
  readonly lagMs: number | null;
  readonly lastContactAt: number | null;
  /** Events read from this region, duplicates (already seen from any region) included. */
  readonly read: number;
  /** Of those, already seen by id: a message re-sent to the other region after a failover. */
  readonly duplicates: number;
  /** Whether this region counts as ingested within the threshold (its `analytics` checkpoint). */
  readonly healthy: boolean;
}

/** Messages analytics received from one region in one second (by the broker's receive time). */
export interface RatePoint {
  readonly region: string;
  /** Start of the second, ms since the epoch (a multiple of 1000). */
  readonly second: number;
  readonly messages: number;
}

/** A run of sequence numbers of one device that never arrived (from..to inclusive). */
export interface SequenceGap {
  readonly from: number;
  readonly to: number;
}

export interface DeviceSummary {
  readonly thingName: string;
  /** Broker receive time of its latest message, ms since the epoch. */
  readonly lastSeenAt: number;
  /** The region that received its latest message. */
  readonly lastRegion: string;
  /** Distinct messages (by id) received from it. */
  readonly messages: number;
  /** Lowest and highest sequence number seen; null when its messages carry none. */
  readonly firstSeq: number | null;
  readonly lastSeq: number | null;
  /** Sequence numbers between firstSeq and lastSeq never received; 0 when complete. */
  readonly missing: number;
  /** The holes themselves, oldest first (at most 100; `missing` counts them all). */
  readonly gaps: readonly SequenceGap[];
}

/** One entry of the controller's decision log, mirrored from `iotdr control` (see docs/failover.md). */
export interface TimelineEntry {
  readonly seq: number;
  readonly type: string;
  readonly at: number;
  /** The event as the controller logged it (a `switch` carries `from`, `to`, `epoch`, `timings`). */
  readonly event: Record<string, unknown>;
}

/** What the query API and the dashboard read; the SQLite store implements it. */
export interface AnalyticsQueries {
  /** Messages per region and second in [from, to), ascending; seconds without messages omitted. */
  rates(options: { from: number; to: number; region?: string }): Promise<RatePoint[]>;
  /** Devices ordered by name after `after`; with `withGaps`, only those missing something. */
  devices(options: { limit: number; after?: string; withGaps?: boolean }): Promise<DeviceSummary[]>;
  device(thingName: string): Promise<DeviceSummary | undefined>;
  /** Totals for a drill: distinct messages, duplicates dropped, devices, devices with gaps, missing. */
  totals(): Promise<{
    messages: number;
    duplicates: number;
    devices: number;
    devicesWithGaps: number;
    missing: number;
  }>;
  /** The mirrored decision log after `after` (a seq), oldest first, optionally one type. */
  timeline(options: { after?: number; limit: number; type?: string }): Promise<TimelineEntry[]>;
  /** Every region's ingestion, in configuration order. */
  ingest(): IngestStatus[];
}
