/**
 * Control nodes in this process over real regions (`startCluster`) and a real three-member etcd
 * cluster (`startEtcd`), mutual TLS on every link: one state directory, whose CA signs the etcd
 * members too, holds the regions, the nodes and the CA. Tests start it once per file and `stop()`
 * it in afterAll.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/common/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { type RunningControl, startControl } from '../../src/processes/index.js';
import { type Cluster, startCluster } from './cluster.js';
import { type RunningEtcd, startEtcd } from './etcd.js';
import { freePort } from './process.js';

/** A node's lease, ms: the shortest the configuration allows, so a lost leader is replaced soon. */
const LEASE_TTL_MS = 2000;

export interface ControlNodes {
  etcd: RunningEtcd;
  cluster: Cluster;
  /** The running nodes by name, in the order listed; a test that stops one deletes it here. */
  nodes: Map<string, RunningControl>;
  /** Stops the nodes left in `nodes`, then the regions (removing the state directory), then etcd. */
  stop(): Promise<void>;
}

export interface ControlNodesOptions {
  /** Prefix of the state directory's name (`iotdr-nodes-`, say). */
  prefix: string;
  /** The regions, in priority order, each on the address of the same index. */
  regions: readonly string[];
  addresses: readonly string[];
  /** Each node's name and address (its API and DNS on free ports there). */
  nodes: readonly { name: string; address: string }[];
  /** The `failover` section. */
  failover: Record<string, unknown>;
}

/** Starts etcd, the regions, then every node; on a failure stops what started and throws. */
export async function startControlNodes(options: ControlNodesOptions): Promise<ControlNodes> {
  const stateDir = await mkdtemp(join(tmpdir(), options.prefix));
  await loadOrCreateCa(join(stateDir, 'pki'));
  let etcd: RunningEtcd | undefined;
  let cluster: Cluster | undefined;
  const nodes = new Map<string, RunningControl>();
  const stop = async (): Promise<void> => {
    for (const node of nodes.values()) await node.stop();
    await cluster?.close();
    await etcd?.stop();
  };
  try {
    const members = await startEtcd({ members: 3, stateDir });
    etcd = members;
    cluster = await startCluster(
      [...options.regions],
      { engine: 'sqlite' },
      {
        stateDir,
        addresses: [...options.addresses],
        config: {
          failover: options.failover,
          control: {
            nodes: await Promise.all(
              options.nodes.map(async ({ name, address }) => ({
                name,
                address,
                port: await freePort(),
                dnsPort: await freePort(),
              })),
            ),
            etcd: {
              members: members.members.map((m) => ({
                name: m.name,
                address: '127.0.0.1',
                clientPort: m.clientPort,
                peerPort: m.peerPort,
              })),
              leaseTtlMs: LEASE_TTL_MS,
            },
          },
        },
      },
    );
    for (const { name } of options.nodes)
      nodes.set(
        name,
        await startControl({
          config: cluster.config,
          stateDir,
          node: name,
          logger: createLogger({ level: 'silent' }),
        }),
      );
    return { etcd: members, cluster, nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
