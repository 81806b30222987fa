/**
 * Where the platform keeps its files and where its processes answer: the state directory's layout
 * (secrets, PKI, name-server state) and the API URLs, derived from the configuration. One place for
 * every process, the CLI, the drill and the fleet simulator.
 */
import { isIP } from 'node:net';
import { isAbsolute, join } from 'node:path';
import { baseUrl, ConfigError } from '../common/index.js';
import { CONTROL_NAMESERVER } from '../dns/index.js';
import {
  DEFAULT_NATS_CLIENT_PORT,
  DEFAULT_NATS_CLUSTER_PORT,
  type NatsConfig,
  natsClientUrl,
} from '../events/index.js';
import { DEFAULT_CHECKER_ID } from '../failover/index.js';
import type { SiteId } from '../pki/index.js';
import type { RegionConfig } from './region-schema.js';
import type { IotdrConfig } from './schema.js';
import { SECRETS_DIR } from './secrets.js';

/** The admin token: role admin in every region, made on first start. */
export function adminTokenPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'admin.token');
}

/** The token `iotdr analytics` reads every region's bus and the decision log with; role reader. */
export function analyticsTokenPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'analytics.token');
}

/** The token remote checkers (`iotdr checker`) present to the control API; role operator. */
export function checkerTokenPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'checker.token');
}

/** The token `iotdr dns` servers present to the control API to follow decisions; role reader. */
export function dnsTokenPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'dns.token');
}

/** The replicator token file: configured, or `<state>/secrets/replicator.token`. */
export function replicatorTokenPath(config: IotdrConfig, stateDir: string): string {
  const file = config.replication.tokenFile;
  if (file === undefined) return join(stateDir, SECRETS_DIR, 'replicator.token');
  return isAbsolute(file) ? file : join(stateDir, file);
}

/**
 * The secret every broker derives its TLS session ticket keys from (docs/broker.md). Regions on
 * other hosts get a copy, as they get the CA.
 */
export function tlsTicketSecretPath(stateDir: string): string {
  return join(stateDir, SECRETS_DIR, 'tls-tickets.key');
}

/** The fleet's CA certificate (its key stays beside it, in the state directory's PKI folder). */
export function caCertPath(stateDir: string): string {
  return join(stateDir, 'pki', 'ca.pem');
}

/** Where a name server keeps the last decision it served. */
export function nameServerStatePath(stateDir: string, name: string): string {
  return join(stateDir, 'dns', `${name}.decision.json`);
}

/** Where a site keeps its certificate (PEM, 0644) and key (0600): `<state>/pki/sites/<kind>-<name>.pem`. */
export function siteCertificatePaths(stateDir: string, site: SiteId): { cert: string; key: string } {
  const base = join(stateDir, 'pki', 'sites', `${site.kind}-${site.name}`);
  return { cert: `${base}.pem`, key: `${base}.key` };
}

/** `https` when the processes' links are mutual TLS (the default), `http` on the loopback switch. */
export function linkScheme(config: IotdrConfig): 'http' | 'https' {
  return config.links.mode === 'mutual-tls' ? 'https' : 'http';
}

/** A region's API base URL from its configuration. */
export function apiUrlOf(config: IotdrConfig, region: RegionConfig): string {
  return baseUrl(region.address, region.api.port, linkScheme(config));
}

/** A control node as the other processes reach it: its API and its name server. */
export interface ControlNode {
  /** `control` for the single node; else `control.nodes[].name`. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** Base URL of its control API. */
  readonly url: string;
  /** Where its DNS server listens (UDP and TCP), and the zone's NS label it answers as. */
  readonly dns: { readonly address: string; readonly port: number; readonly label: string };
}

/** The name of the single control node: its site, its checker's id. */
export const SOLE_CONTROL_NODE = 'control';

/**
 * Every control node: the configured `control.nodes`, or the single control process at
 * `control.address:port` with its DNS at `dns.address:port` (NS label `ns`).
 */
export function controlNodesOf(config: IotdrConfig): ControlNode[] {
  const scheme = linkScheme(config);
  if (config.control.nodes.length === 0)
    return [
      {
        name: SOLE_CONTROL_NODE,
        address: config.control.address,
        port: config.control.port,
        url: baseUrl(config.control.address, config.control.port, scheme),
        dns: { address: config.dns.address, port: config.dns.port, label: CONTROL_NAMESERVER },
      },
    ];
  return config.control.nodes.map((node) => ({
    name: node.name,
    address: node.address,
    port: node.port,
    url: baseUrl(node.address, node.port, scheme),
    dns: { address: node.address, port: node.dnsPort, label: node.name },
  }));
}

/** One control node by name (`--node NAME`); the single node when none is configured and none is named. */
export function controlNodeOf(config: IotdrConfig, name: string | undefined): ControlNode {
  const nodes = controlNodesOf(config);
  if (name === undefined) {
    if (config.control.nodes.length === 0) return nodes[0] as ControlNode;
    throw new ConfigError(
      `control.nodes lists ${nodes.length} control nodes: say which this is with --node (${nodes.map((n) => n.name).join(', ')})`,
      [{ path: 'control.nodes', message: 'name the node with --node NAME' }],
    );
  }
  const node = nodes.find((n) => n.name === name);
  if (node) return node;
  throw new ConfigError(
    config.control.nodes.length === 0
      ? `--node ${name}: control.nodes is empty; the single control node runs without --node`
      : `--node ${name} is not in control.nodes (${nodes.map((n) => n.name).join(', ')})`,
    [{ path: 'control.nodes', message: `a node named ${name}` }],
  );
}

/**
 * The control nodes a process that calls them uses: every node, or with `url` (a `--control URL`
 * flag) that one only, named as the configured node it is the URL of, or as the only node. Its name
 * says whose site certificate to expect over mutual TLS.
 */
export function controlNodesAt(config: IotdrConfig, url: string | undefined): ControlNode[] {
  const nodes = controlNodesOf(config);
  if (url === undefined) return nodes;
  const at = url.replace(/\/+$/, '');
  const node = nodes.find((n) => n.url === at) ?? (nodes.length === 1 ? nodes[0] : undefined);
  if (node) return [{ ...node, url: at }];
  throw new ConfigError(
    `--control ${url} is not the URL of one of the ${nodes.length} control nodes (${nodes.map((n) => n.url).join(', ')}); give one of them, or leave --control out to use them all`,
    [{ path: 'control.nodes', message: `a node at ${url}` }],
  );
}

/**
 * A control node's process in the platform (`iotdr up`, the drill, their logs): `control` for the
 * single node, `control-<node>` for each of `control.nodes`.
 */
export function controlProcessName(config: IotdrConfig, node: string): string {
  return config.control.nodes.length === 0 ? 'control' : `control-${node}`;
}

/** An etcd member's process in the platform: `etcd-<member>`. */
export function etcdProcessName(member: string): string {
  return `etcd-${member}`;
}

/** The control API's URL from the configuration: the first control node's. */
export function controlUrlOf(config: IotdrConfig): string {
  return (controlNodesOf(config)[0] as ControlNode).url;
}

/** Every control node's API URL, in configuration order. */
export function controlUrlsOf(config: IotdrConfig): string[] {
  return controlNodesOf(config).map((n) => n.url);
}

/** The fleet's name servers, `address:port`: every control node's, then every `dns.servers` entry's. */
export function nameServersOf(config: IotdrConfig): string[] {
  return [
    ...controlNodesOf(config).map((n) => hostPort(n.dns.address, n.dns.port)),
    ...config.dns.servers.map((s) => hostPort(s.address, s.port)),
  ];
}

function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * The checkers whose majority decides. With control nodes and `failover.checkers` left at its
 * default (`control`), each node's own checker: one per node, named as the node.
 */
export function failoverCheckersOf(config: IotdrConfig): string[] {
  const listed = config.failover.checkers;
  const nodes = config.control.nodes;
  if (
    nodes.length > 0 &&
    listed.length === 1 &&
    listed[0] === DEFAULT_CHECKER_ID &&
    !nodes.some((n) => n.name === DEFAULT_CHECKER_ID)
  )
    return nodes.map((n) => n.name);
  return [...listed];
}

/** The etcd members' client URLs (https over mutual TLS links). */
export function etcdEndpointsOf(config: IotdrConfig): string[] {
  return config.control.etcd.members.map((m) => baseUrl(m.address, m.clientPort, linkScheme(config)));
}

/**
 * A server of a region's NATS as a site: `urn:iotdr:site:nats:<region>.<server>` (server names
 * are unique within a region only).
 */
export function natsSiteOf(region: string, server: string): SiteId {
  return { kind: 'nats', name: `${region}.${server}` };
}

/** The platform's name for a NATS server's process (and its log): `nats-<region>-<server>`. */
export function natsProcessName(region: string, server: string): string {
  return `nats-${region}-${server}`;
}

/** Every client URL of a region's NATS (`tls://` over mutual-TLS links); none without one. */
export function natsServersOf(config: IotdrConfig, region: RegionConfig): string[] {
  const tls = config.links.mode === 'mutual-tls';
  return (region.nats?.servers ?? []).map((s) => natsClientUrl(s.address, s.clientPort, tls));
}

/**
 * The NATS `iotdr up --events jetstream` runs for a region on this machine: `count` servers
 * nats-1… on the region's own address, client ports 4222…, cluster ports 6222….
 */
export function embeddedNats(region: { readonly address: string }, count: number): NatsConfig {
  return {
    servers: Array.from({ length: count }, (_, i) => ({
      name: `nats-${i + 1}`,
      address: region.address,
      clientPort: DEFAULT_NATS_CLIENT_PORT + i,
      clusterPort: DEFAULT_NATS_CLUSTER_PORT + i,
    })),
  };
}

/** The analytics API's URL from the configuration. */
export function analyticsUrlOf(config: IotdrConfig): string {
  return baseUrl(config.analytics.address, config.analytics.port, linkScheme(config));
}
