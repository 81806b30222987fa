export { type Stamp, wins } from './conflict.js';
export { FeedError, HttpChangeFeed, type HttpChangeFeedOptions } from './feed-http.js';
export { replicationRoutes, snapshotRoutes } from './http.js';
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
