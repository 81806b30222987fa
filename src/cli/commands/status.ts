import { IotdrError } from '../../common/index.js';
import { type ControlNode, controlNodesOf, type LoadedConfig } from '../../config/index.js';
import { CONTROL_ROUTES, type EtcdMemberView } from '../../control/index.js';
import { FAILOVER_ROUTES, type FailoverState } from '../../failover/index.js';
import { ApiClient, CallError } from '../../http/index.js';
import { REPLICATION_ROUTES } from '../../replication/index.js';
import { adminToken, apiOf, platformCa, table } from '../api.js';
import { loadFor, parseCommand } from '../args.js';
import type { CliIo, Command } from '../io.js';
import { printState } from './failover.js';

const USAGE = `usage: iotdr status [--json] [--config FILE]

The control plane and the fleet at a glance. Every control node: whether it answers, whether it
leads, the leader it sees with that leader's lease, the epoch and the active region it serves.
Then, as the leader sees them, every region with its health per component and replication lag,
the active region, the epoch, and the last switch with the time of each of its steps. With
control nodes, every etcd member: its health, the raft leader it follows, the raft term, its
database size and its version.

Exits 0 when a control node leads and every node answers, 1 otherwise.`;

const SPEC = { name: 'status', usage: USAGE, options: { json: { type: 'boolean' } } } as const;

/** How long a control node, or a region asked for its replication lag, may take to answer, ms. */
const ASK_TIMEOUT_MS = 3000;
/** etcd members are asked by the node, each within 2 s: the node's answer gets a little more. */
const ETCD_TIMEOUT_MS = 5000;

/** A control node as `status` found it. */
interface NodeView {
  readonly node: ControlNode;
  readonly state: FailoverState | undefined;
  /** Why it gave no state. */
  readonly error: string | undefined;
}

/** The etcd cluster as one node reaches it. */
interface EtcdView {
  readonly seenBy: string;
  readonly members: readonly EtcdMemberView[];
}

/** A failed call in a few words: what a table cell can hold. */
function failureText(error: unknown): string {
  if (!(error instanceof CallError)) return (error as Error).message;
  const f = error.failure;
  switch (f.type) {
    case 'timeout':
      return `no answer within ${f.timeoutMs} ms`;
    case 'unreachable':
      return `unreachable (${f.cause})`;
    case 'refused':
      return `HTTP ${f.status}${f.code === undefined ? '' : ` ${f.code}`}`;
    case 'unexpected':
      return `unexpected answer (HTTP ${f.status})`;
  }
}

async function askNodes(loaded: LoadedConfig, token: string, ca: string | undefined): Promise<NodeView[]> {
  return Promise.all(
    controlNodesOf(loaded.config).map(async (node) => {
      const api = new ApiClient(node.name, node.url, token, ca);
      try {
        return {
          node,
          state: await api.request(FAILOVER_ROUTES.state, { timeoutMs: ASK_TIMEOUT_MS }),
          error: undefined,
        };
      } catch (error) {
        return { node, state: undefined, error: failureText(error) };
      }
    }),
  );
}

/** The etcd members as the leader reaches them, else as the first node that answers. */
async function askEtcd(
  views: readonly NodeView[],
  token: string,
  ca: string | undefined,
): Promise<EtcdView | undefined> {
  const order = [...views]
    .filter((v) => v.state)
    .sort((a, b) => Number(b.state?.control.leads) - Number(a.state?.control.leads));
  for (const { node } of order) {
    try {
      const answer = await new ApiClient(node.name, node.url, token, ca).request(CONTROL_ROUTES.etcd, {
        timeoutMs: ETCD_TIMEOUT_MS,
      });
      return { seenBy: node.name, members: answer.members };
    } catch {
      // the next node may reach them
    }
  }
  return undefined;
}

/** Replication lag as each region sees its links; a region that does not answer shows '?'. */
async function replicationLag(loaded: LoadedConfig): Promise<Map<string, string>> {
  const lag = new Map<string, string>();
  await Promise.all(
    loaded.config.regions.map(async (region) => {
      try {
        const api = await apiOf(loaded, region);
        const status = await api.request(REPLICATION_ROUTES.status, { timeoutMs: ASK_TIMEOUT_MS });
        lag.set(
          region.name,
          status.links
            .map((l) => `${l.peer} ${l.lagChanges ?? '-'} changes, ${l.lagMs ?? '-'} ms`)
            .join(', ') || '-',
        );
      } catch {
        lag.set(region.name, '?');
      }
    }),
  );
  return lag;
}

export const statusCommand: Command = async (argv, io) => {
  const parsed = parseCommand(SPEC, argv, io);
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const loaded = await loadFor(io, values);
  if (loaded.config.regions.length === 0)
    throw new IotdrError('IOTDR_CLI_NO_REGION', 'the configuration has no region');
  const token = await adminToken(loaded);
  const ca = await platformCa(loaded);
  const views = await askNodes(loaded, token, ca);
  const leader = views.find((v) => v.state?.control.leads);
  // The regions as the leader sees them; without one, as the first node that answers.
  const seen = leader ?? views.find((v) => v.state);
  const several = loaded.config.control.nodes.length > 0;
  const [etcd, lag] = await Promise.all([
    several ? askEtcd(views, token, ca) : undefined,
    seen ? replicationLag(loaded) : new Map<string, string>(),
  ]);
  const ok = leader !== undefined && views.every((v) => v.state);
  if (values.json) {
    io.out(JSON.stringify(statusDocument(views, seen?.state, lag, several, etcd, ok), null, 2));
    return ok ? 0 : 1;
  }
  printNodes(io, views);
  io.out('');
  if (!seen) io.out('no control node answers: nothing to say of the regions');
  else {
    if (!leader)
      io.out(`WARNING        no control node leads; the regions as ${seen.node.name} last saw them`);
    printState(io, seen.state as FailoverState, lag);
  }
  if (several) {
    io.out('');
    printEtcd(io, etcd);
  }
  return ok ? 0 : 1;
};

/**
 * `--json`: the state as the leader serves it (the fields `iotdr status --json` always had), the
 * replication lag, every control node as found, and the etcd members with control nodes.
 */
function statusDocument(
  views: readonly NodeView[],
  state: FailoverState | undefined,
  lag: Map<string, string>,
  several: boolean,
  etcd: EtcdView | undefined,
  ok: boolean,
) {
  return {
    ...(state ?? {}),
    replicationLag: Object.fromEntries(lag),
    ok,
    controlNodes: views.map(({ node, state: s, error }) => ({
      name: node.name,
      url: node.url,
      reachable: s !== undefined,
      ...(error === undefined ? {} : { error }),
      ...(s === undefined ? {} : { control: s.control, epoch: s.epoch, activeRegion: s.activeRegion }),
    })),
    ...(several ? { etcd: etcd ?? null } : {}),
  };
}

function printNodes(io: CliIo, views: readonly NodeView[]): void {
  const rows = views.map(({ node, state, error }) => {
    if (!state) return [node.name, node.url, error ?? 'no answer', '-', '-', '-', '-', '-', '-'];
    const l = state.control.leader;
    return [
      node.name,
      node.url,
      'yes',
      state.control.leads ? 'yes' : 'no',
      l?.node ?? 'none',
      l === null || l.lease === 'sole' ? '-' : l.lease,
      l === null || l.leaseTtlMs === 0 ? '-' : `${l.leaseTtlMs / 1000} s`,
      String(state.epoch),
      state.activeRegion,
    ];
  });
  const header = [
    'control node',
    'url',
    'answers',
    'leads',
    'leader',
    'lease',
    'ttl',
    'epoch',
    'active region',
  ];
  for (const line of table([header, ...rows])) io.out(line);
}

/** 20480 → `20 KiB`. */
function bytesText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function printEtcd(io: CliIo, etcd: EtcdView | undefined): void {
  if (!etcd) {
    io.out('etcd           no control node answered for its members');
    return;
  }
  io.out(`etcd members, as ${etcd.seenBy} reaches them`);
  const rows = etcd.members.map((m) => [
    m.name,
    m.url,
    m.healthy ? 'healthy' : 'unhealthy',
    m.status?.leader ?? '-',
    m.status ? String(m.status.raftTerm) : '-',
    m.status ? bytesText(m.status.dbSizeBytes) : '-',
    m.status?.version ?? '-',
    m.error ?? '',
  ]);
  const header = ['member', 'url', 'health', 'raft leader', 'term', 'db size', 'version', 'error'];
  for (const line of table([header, ...rows])) io.out(line);
}
