/**
 * The control plane on etcd: how a member is launched, the client, the election, the store, and
 * the route that reports the members' health.
 */

export { ETCD_MEMBER_BACKOFF_MS, type EtcdClientOptions, etcdClient } from './client.js';
export {
  CONTROL_LIMITS,
  type ControlConfig,
  type ControlNodeConfig,
  controlSection,
  DEFAULT_CONTROL_ADDRESS,
  DEFAULT_CONTROL_NODE_DNS_PORT,
  DEFAULT_CONTROL_PORT,
  DEFAULT_ETCD_CLIENT_PORT,
  DEFAULT_ETCD_PEER_PORT,
  DEFAULT_ETCD_PREFIX,
  type EtcdConfig,
  type EtcdMemberConfig,
  embeddedControlPlane,
  MAX_CONTROL_NODES,
  MAX_ETCD_MEMBERS,
} from './config.js';
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
export { CONTROL_ROUTES, type EtcdMemberView, etcdRoutes } from './http.js';
export { DEFAULT_RETAIN_EVENTS, EtcdControlStore, type EtcdControlStoreOptions } from './store.js';
