/** `iotdr analytics`: ingestion of every region's bus, storage, the query API (issue 6). */

export { hostAllowed, hostCheck, hostName } from './access.js';
export {
  ANALYTICS_LIMITS,
  type AnalyticsConfig,
  analyticsHosts,
  analyticsSection,
  DEFAULT_ANALYTICS_ADDRESS,
  DEFAULT_ANALYTICS_PORT,
  DEFAULT_ANALYTICS_RETENTION_SECONDS,
  DEFAULT_MAX_LAG_MS,
  DEFAULT_SEQUENCE_FIELD,
  MAX_ALLOWED_HOSTS,
  SEQUENCE_FIELD_PATTERN,
} from './config.js';
export { ANALYTICS_ROUTES } from './contracts.js';
// ---------------------------------------------------------------------------------------------
// Dashboard (src/analytics/dashboard, src/analytics/web): its exports go below this line.
// ---------------------------------------------------------------------------------------------
export {
  type DashboardOptions,
  dashboardRoutes,
  type LiveSnapshot,
  LiveView,
  type LiveViewOptions,
} from './dashboard/index.js';
export {
  ANALYTICS_ERRORS,
  BusReadError,
  BusUnreachableError,
  ControlReadError,
  UnknownDeviceError,
  UnknownIngestRegionError,
} from './errors.js';
export {
  type AnalyticsRoutesOptions,
  analyticsRoutes,
  DEFAULT_RATES_WINDOW_MS,
  type IngestControl,
  MAX_DEVICES_PAGE,
  MAX_RATES_WINDOW_MS,
  MAX_TIMELINE_PAGE,
} from './http.js';
export {
  type BusPage,
  type BusSource,
  DEFAULT_INGEST_BATCH,
  DEFAULT_INGEST_RETRY_BASE_MS,
  DEFAULT_INGEST_RETRY_MAX_MS,
  DEFAULT_INGEST_WAIT_MS,
  HttpBusSource,
  type HttpBusSourceOptions,
  RegionIngestor,
  type RegionIngestorOptions,
} from './ingestor.js';
export {
  DEFAULT_ANALYTICS_DURABLE,
  DEFAULT_NATS_REQUEST_TIMEOUT_MS,
  JetStreamBusSource,
  type JetStreamBusSourceOptions,
} from './jetstream-source.js';
export { analyticsMetrics, type IngestMetrics } from './metrics.js';
export {
  ControlMirror,
  type ControlMirrorOptions,
  DEFAULT_MIRROR_INTERVAL_MS,
  MIRROR_PAGE,
  type MirrorState,
  type MirrorStatus,
} from './mirror.js';
export { addSeq, gapsOf, MAX_LISTED_GAPS, missingOf, type SeqRanges, seqOf } from './ranges.js';
export {
  DEFAULT_ANALYTICS_RETENTION_INTERVAL_MS,
  type Every,
  SqliteAnalyticsStore,
  type SqliteAnalyticsStoreOptions,
} from './sqlite-store.js';
export type { AnalyticsStore, IngestResult, RegionCursor, RetentionOutcome } from './store.js';
export type {
  AnalyticsQueries,
  DeviceSummary,
  IngestState,
  IngestStatus,
  RatePoint,
  SequenceGap,
  TimelineEntry,
} from './types.js';
