export {
  DEFAULT_BATCH_SIZE,
  DEFAULT_CHANGE_LOG_RETENTION_S,
  DEFAULT_MAINTENANCE_INTERVAL_S,
  DEFAULT_RETRY_BASE_MS,
  DEFAULT_RETRY_MAX_MS,
  DEFAULT_SNAPSHOT_PAGE_SIZE,
  DEFAULT_TOMBSTONE_RETENTION_S,
  DEFAULT_WAIT_MS,
  REPLICATION_LIMITS,
  type ReplicationConfig,
  replicationSection,
} from './config.js';
export { type Stamp, stampOf, wins } from './conflict.js';
export { REPLICATION_ROUTES } from './contracts.js';
export {
  type BucketEntry,
  type BucketPage,
  bucketEntries,
  bucketOf,
  computeDigest,
  DEFAULT_BUCKET_LIMIT,
  DEFAULT_DIGEST_PAGE_SIZE,
  DIGEST_ALGORITHM,
  DIGEST_BUCKETS,
  type DigestEntry,
  type DigestSource,
  digestOf,
  EMPTY_DIGEST,
  entryHash,
  type KindDigest,
  MAX_BUCKET_LIMIT,
  type RegionDigest,
} from './digest.js';
export { FeedError, REPLICATION_ERRORS } from './errors.js';
export { HttpChangeFeed, type HttpChangeFeedOptions } from './feed-http.js';
export { digestRoutes, replicationRoutes, snapshotRoutes } from './http.js';
export {
  Replication,
  type ReplicationOptions,
  type ReplicationSettings,
  type ReplicationStatus,
} from './manager.js';
export { type AppliedEvent, Replicator, type ReplicatorOptions } from './replicator.js';
export { RegistryTarget } from './targets/registry.js';
export type {
  ApplyTarget,
  BatchResult,
  ChangeFeed,
  ChangeOutcome,
  DeadLetter,
  FeedPage,
  LinkProgress,
  LinkState,
  LinkStatus,
  SnapshotPage,
} from './types.js';
