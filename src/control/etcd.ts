/**
 * How one etcd member of the control plane is launched: where the `etcd` binary is, and the
 * command-line flags that make a member of a 1–5 member cluster out of Debian's `etcd-server`
 * (3.4). The control nodes elect their leader through that cluster; this module only says how a
 * member starts, not who starts it.
 *
 * With TLS both links, client (2379-like) and peer (2380-like), are mutual TLS against the
 * platform's CA: a member presents its site certificate (`urn:iotdr:site:etcd:<member>`, its
 * address in the SAN) to clients and to its peers, and accepts only certificates that CA signed.
 * etcd also checks that a peer's client certificate names the address the peer connects from, so
 * a member's certificate must carry the address it talks from as well as the one it listens on.
 */
import { baseUrl, findExecutable } from '../common/index.js';

/**
 * Revisions of history a member keeps: auto compaction (revision mode, which etcd 3.4 runs every
 * 5 minutes) drops older ones. The control plane reads current values and watches from now on,
 * so a short history keeps the database small whatever the write rate.
 */
export const ETCD_COMPACTION_RETENTION_REVISIONS = 1000;

/** One member as its peers know it. */
export interface EtcdPeer {
  /** The member's name, unique in the cluster (also its site name: `urn:iotdr:site:etcd:<name>`). */
  name: string;
  /** IPv4 or IPv6 address (or DNS name) its peer port listens on and its peers dial. */
  address: string;
  peerPort: number;
}

export interface EtcdMemberSpec {
  /** This member's name; must be one of `cluster`. */
  name: string;
  /** The address both ports listen on and are advertised at (IPv4, IPv6 or a DNS name). */
  address: string;
  /** Port for clients (gRPC and HTTP). */
  clientPort: number;
  /** Port for the other members (raft). */
  peerPort: number;
  /** The member's data directory; etcd creates it. A directory that already holds a member rejoins as that member. */
  dataDir: string;
  /** Every member of the cluster, this one included. */
  cluster: readonly EtcdPeer[];
  /** Keeps members of two clusters from joining each other's; the same for every member of one cluster. */
  clusterToken: string;
  /**
   * Mutual TLS on both links (PEM file paths): the CA that signs members and clients, and this
   * member's certificate and key. Without it both links are plain HTTP, for loopback tests only.
   */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /** Raft heartbeat interval, ms; default etcd's 100. */
  heartbeatMs?: number;
  /** Raft election timeout, ms; default etcd's 1000. etcd requires at least 5 × the heartbeat. */
  electionMs?: number;
}

/** The `etcd` binary: on PATH, else /usr/bin or /usr/sbin; undefined when none is there. */
export function findEtcd(): string | undefined {
  return findExecutable('etcd', ['/usr/bin', '/usr/sbin']);
}

/** The URL clients reach a member at (`https://[::1]:2379` for an IPv6 address). */
export function etcdClientUrl(address: string, port: number, tls: boolean): string {
  return baseUrl(address, port, tls ? 'https' : 'http');
}

/** The URL the other members reach a member at. */
export function etcdPeerUrl(address: string, port: number, tls: boolean): string {
  return baseUrl(address, port, tls ? 'https' : 'http');
}

/**
 * The flags that start one member (`etcd ...etcdMemberArgs(spec)`), as `--flag=value` so that no
 * value is ever read as a flag; boolean flags stand alone, as Go's flag package wants them.
 */
export function etcdMemberArgs(spec: EtcdMemberSpec): string[] {
  const tls = spec.tls !== undefined;
  const clientUrl = etcdClientUrl(spec.address, spec.clientPort, tls);
  const peerUrl = etcdPeerUrl(spec.address, spec.peerPort, tls);
  const initialCluster = spec.cluster
    .map((peer) => `${peer.name}=${etcdPeerUrl(peer.address, peer.peerPort, tls)}`)
    .join(',');
  const args = [
    `--name=${spec.name}`,
    `--data-dir=${spec.dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${initialCluster}`,
    // A data directory that already holds a member ignores this (etcd's rule), so the same flags
    // start a member the first time and restart it after.
    '--initial-cluster-state=new',
    `--initial-cluster-token=${spec.clusterToken}`,
    '--logger=zap',
    '--log-outputs=stderr',
    '--auto-compaction-mode=revision',
    `--auto-compaction-retention=${ETCD_COMPACTION_RETENTION_REVISIONS}`,
  ];
  if (spec.tls !== undefined) {
    const { caFile, certFile, keyFile } = spec.tls;
    args.push(
      '--client-cert-auth',
      `--trusted-ca-file=${caFile}`,
      `--cert-file=${certFile}`,
      `--key-file=${keyFile}`,
      '--peer-client-cert-auth',
      `--peer-trusted-ca-file=${caFile}`,
      `--peer-cert-file=${certFile}`,
      `--peer-key-file=${keyFile}`,
    );
  }
  if (spec.heartbeatMs !== undefined) args.push(`--heartbeat-interval=${spec.heartbeatMs}`);
  if (spec.electionMs !== undefined) args.push(`--election-timeout=${spec.electionMs}`);
  return args;
}
