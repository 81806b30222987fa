/**
 * The `replication` section of the configuration (docs/replication.md): how each region's links
 * pull from their peers, retry, and how long the change log and tombstones are kept.
 */
import { z } from 'zod';
import {
  filePath,
  integerWithin,
  matching,
  type Range,
  REGION_NAME_PATTERN,
  section,
  trueOrFalse,
} from '../common/index.js';
import { CHANGES_PAGE, CHANGES_WAIT_MS } from '../registry/index.js';

/** Changes per pull. Default 1000. */
export const DEFAULT_BATCH_SIZE = 1000;
/** How long a pull waits for the peer's next change, in ms. Default 10,000. */
export const DEFAULT_WAIT_MS = 10_000;
/** Entities per snapshot page. Default 1000. */
export const DEFAULT_SNAPSHOT_PAGE_SIZE = 1000;
/** First and longest retry delay after a failure, in ms. Defaults 100 and 5,000. */
export const DEFAULT_RETRY_BASE_MS = 100;
export const DEFAULT_RETRY_MAX_MS = 5000;
/** Seconds a tombstone is kept: a change older than a purged delete could resurrect it. Default 7 days. */
export const DEFAULT_TOMBSTONE_RETENTION_S = 7 * 24 * 3600;
/** Seconds a change record is kept; a peer further behind copies a snapshot. Default 7 days. */
export const DEFAULT_CHANGE_LOG_RETENTION_S = 7 * 24 * 3600;
/** How often tombstones and old change records are removed, in seconds. Default an hour. */
export const DEFAULT_MAINTENANCE_INTERVAL_S = 3600;

/** Bounds of the section's numbers, inclusive. */
export const REPLICATION_LIMITS = {
  /** Changes per pull: what a peer's GET /v1/changes serves in one page. */
  batchSize: CHANGES_PAGE,
  /** ms: the longest long poll a peer's GET /v1/changes holds. */
  waitMs: CHANGES_WAIT_MS,
  /** Entities: what a peer's GET /v1/replication/snapshot serves in one page. */
  snapshotPageSize: { min: 1, max: 5000 },
  /** ms. */
  retryBaseMs: { min: 1, max: 60_000 },
  /** ms. */
  retryMaxMs: { min: 1, max: 600_000 },
  /** Seconds: a minute to a year. */
  tombstoneRetentionSeconds: { min: 60, max: 365 * 24 * 3600 },
  /** Seconds: a minute to a year. */
  changeLogRetentionSeconds: { min: 60, max: 365 * 24 * 3600 },
  /** Seconds: a second to a day. */
  maintenanceIntervalSeconds: { min: 1, max: 24 * 3600 },
} as const satisfies Record<string, Range>;

export interface ReplicationConfig {
  /** Run a replication link from every other region (default true). */
  readonly enabled: boolean;
  /** Changes per pull. */
  readonly batchSize: number;
  /** How long a pull waits for the peer's next change (ms). */
  readonly waitMs: number;
  /** Entities per snapshot page. */
  readonly snapshotPageSize: number;
  /** First and longest retry delay after a failure (ms); exponential with full jitter between. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** File with the bearer token (role replicator) that links present to peers; default <state>/secrets/replicator.token. */
  readonly tokenFile?: string;
  /**
   * Regions whose changes to tokens (people's credentials and roles) this region applies; absent:
   * every region. A token change from another region is dead-lettered (IOTDR_REPLICATION_GRANT_REFUSED).
   */
  readonly tokensFrom?: readonly string[];
  readonly tombstoneRetentionSeconds: number;
  readonly changeLogRetentionSeconds: number;
  readonly maintenanceIntervalSeconds: number;
}

const L = REPLICATION_LIMITS;

export const replicationSection = section({
  enabled: trueOrFalse().default(true),
  batchSize: integerWithin(L.batchSize, 'changes').default(DEFAULT_BATCH_SIZE),
  waitMs: integerWithin(L.waitMs, 'ms').default(DEFAULT_WAIT_MS),
  snapshotPageSize: integerWithin(L.snapshotPageSize, 'entities').default(DEFAULT_SNAPSHOT_PAGE_SIZE),
  retryBaseMs: integerWithin(L.retryBaseMs, 'ms').default(DEFAULT_RETRY_BASE_MS),
  retryMaxMs: integerWithin(L.retryMaxMs, 'ms').default(DEFAULT_RETRY_MAX_MS),
  tokenFile: filePath().optional(),
  tokensFrom: z.array(matching(REGION_NAME_PATTERN, 'a region name')).max(64).optional(),
  tombstoneRetentionSeconds: integerWithin(L.tombstoneRetentionSeconds, 'seconds').default(
    DEFAULT_TOMBSTONE_RETENTION_S,
  ),
  changeLogRetentionSeconds: integerWithin(L.changeLogRetentionSeconds, 'seconds').default(
    DEFAULT_CHANGE_LOG_RETENTION_S,
  ),
  maintenanceIntervalSeconds: integerWithin(L.maintenanceIntervalSeconds, 'seconds').default(
    DEFAULT_MAINTENANCE_INTERVAL_S,
  ),
}).prefault({});
