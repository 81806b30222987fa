/**
 * How one server of a region's NATS is launched with JetStream: where Debian's `nats-server`
 * (2.9 or later) is, and the configuration file that makes it a JetStream server alone or one node
 * of a cluster. This module only says how a server starts, not who starts it.
 *
 * NATS reads JSON as its configuration format, so the file is written with JSON.stringify: no
 * value can break out of its quotes. With TLS, clients and routes (cluster links) are mutual TLS
 * against the platform's CA: the server presents its site certificate and accepts only
 * certificates that CA signed. With `clients` as well, a client is the site its certificate names
 * (its URI subject alternative name is its user): the writers may do anything, the readers may
 * read and keep consumers but neither publish events nor change the stream, and any other
 * certificate of the CA (another site, a device) is refused. The routes of a cluster authenticate
 * with the cluster's secret besides (`cluster.authorization`), on plain links too: a certificate of
 * the CA alone does not make a route.
 */
import { isIP } from 'node:net';
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
  cluster?: {
    name: string;
    clusterPort: number;
    routes: readonly NatsRoute[];
    /**
     * The password every route of the cluster authenticates with, the same on every node: routes
     * dial with it in their URL and are taken only with it. It is written to the configuration
     * file alone (keep that file private), never logged.
     */
    secret: string;
  };
  /** Mutual TLS on client and cluster links (PEM file paths). Without it both are plain. */
  tls?: { caFile: string; certFile: string; keyFile: string };
  /**
   * With `tls`: who may connect, by the site URI of their certificate (`urn:iotdr:site:…`).
   * Writers may do anything; readers may read the stream and make, use and delete consumers, but
   * not publish events or change the stream. Without it any certificate of the CA connects, as a
   * writer.
   */
  clients?: { writers: readonly string[]; readers: readonly string[] };
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

/** Subjects events are published on: `iotdr.events.<region>`, every region's. */
const EVENT_SUBJECTS = 'iotdr.events.>';

/**
 * The JetStream API subjects that change a stream or its messages. A reader's consumers go
 * through `$JS.API.CONSUMER.…` and its reads through `$JS.API.STREAM.INFO`/`MSG.GET` and
 * `$JS.API.DIRECT.GET`, which stay open.
 */
const STREAM_CHANGING_APIS = [
  '$JS.API.STREAM.CREATE.>',
  '$JS.API.STREAM.UPDATE.>',
  '$JS.API.STREAM.DELETE.>',
  '$JS.API.STREAM.PURGE.>',
  '$JS.API.STREAM.MSG.DELETE.>',
  '$JS.API.STREAM.RESTORE.>',
] as const;

/** Who may connect, mapped from the certificate's URI (`verify_and_map`), and what readers may not do. */
function authorizationOf(clients: NonNullable<NatsServerSpec['clients']>): Record<string, unknown> {
  const readOnly = { publish: { deny: [EVENT_SUBJECTS, ...STREAM_CHANGING_APIS] } };
  return {
    users: [
      ...clients.writers.map((user) => ({ user })),
      ...clients.readers.map((user) => ({ user, permissions: readOnly })),
    ],
  };
}

/**
 * TLS of the cluster links. When every route is dialled at a DNS name, a server accepts a route
 * only with a certificate naming one of those names (`verify_cert_and_check_known_urls`), which a
 * device certificate never does. nats-server 2.9 matches that check against DNS names alone, so
 * over IP addresses it would refuse every route: there TLS asks a route for a certificate of the
 * CA only, and the cluster's secret (`cluster.authorization`) does the rest.
 */
function routeTls(files: Record<string, unknown>, routes: readonly NatsRoute[]): Record<string, unknown> {
  const byName = routes.every((r) => isIP(r.address) === 0);
  return byName ? { ...files, verify_cert_and_check_known_urls: true } : { ...files, verify: true };
}

/** The user a route authenticates as (its password is the cluster's secret). */
const ROUTE_USER = 'iotdr-route';

/**
 * A route's URL, with the cluster's user and secret, which nats-server decodes from it and does not
 * log (it shows routes by address alone).
 */
function routeUrl(route: NatsRoute, secret: string): string {
  const credentials = `${ROUTE_USER}:${encodeURIComponent(secret)}`;
  return `nats-route://${credentials}@${hostPort(route.address, route.clusterPort)}`;
}

/** The configuration file of one server, as JSON (which nats-server reads as its format). */
export function natsServerConfig(spec: NatsServerSpec): string {
  const files =
    spec.tls === undefined
      ? undefined
      : { cert_file: spec.tls.certFile, key_file: spec.tls.keyFile, ca_file: spec.tls.caFile, timeout: 2 };
  // With clients, a client is the user its certificate's URI names (over TLS only).
  const clients = files === undefined ? undefined : spec.clients;
  const tls = files && (clients ? { ...files, verify_and_map: true } : { ...files, verify: true });
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
    ...(clients === undefined ? {} : { authorization: authorizationOf(clients) }),
    ...(spec.monitorPort === undefined ? {} : { http: hostPort(spec.address, spec.monitorPort) }),
  };
  const cluster = spec.cluster;
  if (cluster !== undefined) {
    // Routes negotiate TLS from the cluster's tls block; their URLs stay nats-route://. Over IP
    // addresses any certificate of the CA passes that block (routeTls): the secret is what keeps a
    // device's certificate from joining as a route.
    config.cluster = {
      name: cluster.name,
      listen: hostPort(spec.address, cluster.clusterPort),
      authorization: { user: ROUTE_USER, password: cluster.secret, timeout: 2 },
      routes: cluster.routes
        .filter((r) => !(r.address === spec.address && r.clusterPort === cluster.clusterPort))
        .map((r) => routeUrl(r, cluster.secret)),
      ...(files === undefined ? {} : { tls: routeTls(files, cluster.routes) }),
    };
  }
  return `${JSON.stringify(config, null, 2)}\n`;
}
