/**
 * The `control` section of the configuration (docs/failover.md, "The control plane"): where the
 * control API listens, and, for a control plane that survives the loss of a site, the control
 * nodes and the etcd members they elect their leader through. Without `nodes` one control process
 * runs at `address:port` on SQLite, with no etcd.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import {
  expecting,
  integerWithin,
  type ListenerConfig,
  listener,
  matching,
  portSchema,
  type Range,
  REGION_NAME_PATTERN,
  section,
} from '../common/index.js';
import { DEFAULT_LEASE_TTL_MS, MIN_LEASE_TTL_MS } from './election.js';

/** HTTP API of `iotdr control` (the single node). */
export const DEFAULT_CONTROL_ADDRESS = '127.0.0.10';
export const DEFAULT_CONTROL_PORT = 8080;
/** A control node's DNS port, UDP and TCP, on its own address. */
export const DEFAULT_CONTROL_NODE_DNS_PORT = 5353;
export const DEFAULT_ETCD_CLIENT_PORT = 2379;
export const DEFAULT_ETCD_PEER_PORT = 2380;
/** Where the control plane's keys live in etcd (one fleet per prefix). */
export const DEFAULT_ETCD_PREFIX = '/iotdr/control/';

/** Control nodes: none (the single control process) or 1 to 5. */
export const MAX_CONTROL_NODES = 5;
/** etcd members: 1 to 7 (etcd's own advice: 3 or 5). */
export const MAX_ETCD_MEMBERS = 7;

/** Bounds of the section's numbers, inclusive. */
export const CONTROL_LIMITS = {
  /** ms: etcd grants whole seconds, at least 2; at most a minute. */
  'etcd.leaseTtlMs': { min: MIN_LEASE_TTL_MS, max: 60_000 },
} as const satisfies Record<string, Range>;

export interface ControlNodeConfig {
  /** The node's name: its site name (`urn:iotdr:site:control:<name>`), its checker's id, `--node NAME`. */
  readonly name: string;
  /** IPv4 or IPv6 literal its API and DNS listen on (DNS glue needs a literal). */
  readonly address: string;
  /** Its control API port. Default 8080. */
  readonly port: number;
  /** Its DNS port, UDP and TCP. Default 5353. */
  readonly dnsPort: number;
}

export interface EtcdMemberConfig {
  /** The member's name in the etcd cluster (also its site name, `urn:iotdr:site:etcd:<name>`). */
  readonly name: string;
  readonly address: string;
  /** Port for clients (the control nodes). Default 2379. */
  readonly clientPort: number;
  /** Port for the other members. Default 2380. */
  readonly peerPort: number;
}

export interface EtcdConfig {
  /** The cluster's members: the control nodes call their client ports; `iotdr etcd --member NAME` runs one. */
  readonly members: readonly EtcdMemberConfig[];
  /** The prefix of the control plane's keys, ending in `/`. Default /iotdr/control/. */
  readonly prefix: string;
  /**
   * A control node's lease, ms (whole seconds). The leader stops deciding before it can end, and
   * another node leads within about this long after the leader is lost. Default 5,000.
   */
  readonly leaseTtlMs: number;
}

export interface ControlConfig extends ListenerConfig {
  /** Control nodes electing a leader through etcd; empty: the single node at address:port. */
  readonly nodes: readonly ControlNodeConfig[];
  readonly etcd: EtcdConfig;
}

const L = CONTROL_LIMITS;
const IP_MESSAGE = 'expected an IPv4 or IPv6 literal (a node serves DNS glue, so not a hostname)';
const ipLiteral = z
  .string({ error: expecting(IP_MESSAGE) })
  .refine((value) => isIP(value) !== 0, { error: expecting(IP_MESSAGE) });
const nodeName = matching(
  REGION_NAME_PATTERN,
  'a node name: a lowercase letter, then lowercase letters, digits or hyphens',
);

export const controlSection = section({
  ...listener(DEFAULT_CONTROL_ADDRESS, DEFAULT_CONTROL_PORT),
  nodes: z
    .array(
      section({
        name: nodeName,
        address: ipLiteral,
        port: portSchema.default(DEFAULT_CONTROL_PORT),
        dnsPort: portSchema.default(DEFAULT_CONTROL_NODE_DNS_PORT),
      }),
      { error: expecting('expected a list of { name, address, port, dnsPort }') },
    )
    .max(MAX_CONTROL_NODES, { error: `expected at most ${MAX_CONTROL_NODES} control nodes` })
    .prefault(() => []),
  etcd: section({
    members: z
      .array(
        section({
          name: nodeName,
          address: ipLiteral,
          clientPort: portSchema.default(DEFAULT_ETCD_CLIENT_PORT),
          peerPort: portSchema.default(DEFAULT_ETCD_PEER_PORT),
        }),
        { error: expecting('expected a list of { name, address, clientPort, peerPort }') },
      )
      .max(MAX_ETCD_MEMBERS, { error: `expected at most ${MAX_ETCD_MEMBERS} etcd members` })
      .prefault(() => []),
    prefix: z
      .string({ error: expecting('expected a key prefix such as /iotdr/control/') })
      .regex(/^\/[\x21-\x7e]*\/$/, {
        error: 'expected a key prefix that starts and ends with / (printable ASCII, no spaces)',
      })
      .default(DEFAULT_ETCD_PREFIX),
    leaseTtlMs: integerWithin(L['etcd.leaseTtlMs'], 'ms')
      .refine((ms) => ms % 1000 === 0, { error: 'expected whole seconds (etcd grants leases in seconds)' })
      .default(DEFAULT_LEASE_TTL_MS),
  }).prefault({}),
}).prefault({});

/** The control plane `iotdr up --control-nodes N` runs on one machine: N nodes and N etcd members on loopback. */
export function embeddedControlPlane(count: number): {
  nodes: ControlNodeConfig[];
  etcd: { members: EtcdMemberConfig[] };
} {
  const range = Array.from({ length: count }, (_, i) => i + 1);
  return {
    nodes: range.map((i) => ({
      name: `ctl-${i}`,
      address: `127.0.0.${20 + i}`,
      port: DEFAULT_CONTROL_PORT,
      dnsPort: DEFAULT_CONTROL_NODE_DNS_PORT,
    })),
    etcd: {
      members: range.map((i) => ({
        name: `etcd-${i}`,
        address: `127.0.0.${30 + i}`,
        clientPort: DEFAULT_ETCD_CLIENT_PORT,
        peerPort: DEFAULT_ETCD_PEER_PORT,
      })),
    },
  };
}
