export { type Stamp, wins } from './conflict.js';
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
export { FeedError, HttpChangeFeed, type HttpChangeFeedOptions } from './feed-http.js';
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
