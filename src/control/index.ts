/** The control plane on etcd: how a member is launched, the client, the election and the store. */

export { ETCD_MEMBER_BACKOFF_MS, type EtcdClientOptions, etcdClient } from './client.js';
export {
  DEFAULT_LEASE_TTL_MS,
  EtcdElection,
  type EtcdElectionOptions,
  MIN_LEASE_TTL_MS,
  parseLeader,
} from './election.js';
export {
  ETCD_COMPACTION_RETENTION_REVISIONS,
  type EtcdMemberSpec,
  type EtcdPeer,
  etcdClientUrl,
  etcdMemberArgs,
  etcdPeerUrl,
  findEtcd,
} from './etcd.js';
export { DEFAULT_RETAIN_EVENTS, EtcdControlStore, type EtcdControlStoreOptions } from './store.js';
