import type { BusEvent } from '../events/index.js';
import type { AnalyticsQueries, TimelineEntry } from './types.js';

/** What one `ingest` call did. */
export interface IngestResult {
  /** Device events in the batch (the bus's own health probes are not counted). */
  read: number;
  /** New messages: ids never seen from any region. */
  accepted: number;
  /** Messages whose id was already seen (from this or another region). */
  duplicates: number;
}

/** A region's persisted position on its bus and its counters. */
export interface RegionCursor {
  region: string;
  /** The next offset to read (0 before anything was read = from the oldest kept). */
  nextOffset: number;
  read: number;
  duplicates: number;
}

export interface RetentionOutcome {
  /** Rate rows (region × second) removed. */
  rates: number;
  /** Seen ids removed (their messages can no longer be recognised as duplicates). */
  seenIds: number;
}

/**
 * Analytics storage: the writes of ingestion and the mirror, and the queries. `ingest` is one
 * transaction — de-duplication, counts, device summaries and the region's next offset commit
 * together, so a crash between two batches neither counts twice nor skips. SQLite is the
 * embedded implementation; a production engine implements the same interface.
 */
export interface AnalyticsStore extends Omit<AnalyticsQueries, 'ingest'> {
  ingest(region: string, events: readonly BusEvent[], next: number): Promise<IngestResult>;
  cursor(region: string): Promise<RegionCursor>;
  /** Stores decision-log entries (already stored seqs are ignored); returns how many were new. */
  appendTimeline(entries: readonly TimelineEntry[]): Promise<number>;
  /** The highest mirrored seq, 0 when none. */
  lastTimelineSeq(): Promise<number>;
  /** Applies the retention period now. */
  enforceRetention(): Promise<RetentionOutcome>;
  close(): Promise<void>;
}
