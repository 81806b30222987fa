/**
 * How one server of a region's NATS is launched with JetStream: where Debian's `nats-server`
 * (2.9 or later) is, and the configuration file that makes it a JetStream server alone or one node
 * of a cluster. This module only says how a server starts, not who starts it.
 *
 * NATS reads JSON as its configuration format, so the file is written with JSON.stringify: no
 * value can break out of its quotes. With TLS, clients and routes (cluster links) are mutual TLS
 * against the platform's CA: the server presents its site certificate and accepts only
 * certificates that CA signed.
 */
import { findExecutable } from '../common/index.js';

/** One server of the cluster as its peers dial it. */
export interface NatsRoute {
  address: string;
  clusterPort: number;
}

export interface NatsServerSpec {
  /** The server's name, unique in its cluster (JetStream places replicas by it). */
  name: string;
  /** The address clients and the cluster port listen on (IPv4, IPv6 or a DNS name). */
  address: string;
  clientPort: number;
  /** Where JetStream keeps its streams; created by the server. */
  storeDir: string;
  /**
   * The cluster, for a server of several: its name (the same on every node) and the port this
   * node's peers dial; `routes` lists every node, this one included.
   */
  cluster?: { name: string; clusterPort: number; routes: readonly NatsRoute[] };
  /** Mutual TLS on client and cluster links (PEM file paths). Without it both are plain. */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /** Port of the monitoring endpoint (`/healthz`, `/jsz`), on the same address; none by default. */
  monitorPort?: number;
  /** Most bytes JetStream stores on disk; default the server's (75% of the free space). */
  maxStoreBytes?: number;
}

/** The `nats-server` binary: on PATH, else /usr/sbin or /usr/bin; undefined when none is there. */
export function findNatsServer(): string | undefined {
  return findExecutable('nats-server', ['/usr/sbin', '/usr/bin']);
}

function hostPort(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** The URL a client connects to one server at. */
export function natsClientUrl(address: string, port: number, tls: boolean): string {
  return `${tls ? 'tls' : 'nats'}://${hostPort(address, port)}`;
}

/** The configuration file of one server, as JSON (which nats-server reads as its format). */
export function natsServerConfig(spec: NatsServerSpec): string {
  const tls =
    spec.tls === undefined
      ? undefined
      : {
          cert_file: spec.tls.certFile,
          key_file: spec.tls.keyFile,
          ca_file: spec.tls.caFile,
          verify: true,
          timeout: 2,
        };
  const config: Record<string, unknown> = {
    server_name: spec.name,
    listen: hostPort(spec.address, spec.clientPort),
    jetstream: {
      store_dir: spec.storeDir,
      ...(spec.maxStoreBytes === undefined ? {} : { max_file_store: spec.maxStoreBytes }),
    },
    // Slow readers are disconnected rather than holding the server's memory.
    write_deadline: '5s',
    ...(tls === undefined ? {} : { tls }),
    ...(spec.monitorPort === undefined ? {} : { http: hostPort(spec.address, spec.monitorPort) }),
  };
  if (spec.cluster !== undefined) {
    // Routes negotiate TLS from the cluster's tls block; their URLs stay nats-route://.
    config.cluster = {
      name: spec.cluster.name,
      listen: hostPort(spec.address, spec.cluster.clusterPort),
      routes: spec.cluster.routes
        .filter((r) => !(r.address === spec.address && r.clusterPort === spec.cluster?.clusterPort))
        .map((r) => `nats-route://${hostPort(r.address, r.clusterPort)}`),
      ...(tls === undefined ? {} : { tls }),
    };
  }
  return `${JSON.stringify(config, null, 2)}\n`;
}
