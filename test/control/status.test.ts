/**
 * `iotdr status` over three real control nodes and a real three-member etcd cluster, mutual TLS on
 * every link: every node answers with the one leader it sees and that leader's lease, the regions
 * come as the leader sees them, and every etcd member is healthy and follows the same raft leader
 * (GET /v1/control/etcd on any node); an etcd member killed is shown unhealthy with why, and a node
 * stopped is shown unreachable with the command exiting 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import type { EtcdMemberView } from '../../src/control/index.js';
import type { RunningControl } from '../../src/processes/index.js';
import { type Cluster, clusterCli } from '../harness/cluster.js';
import { type ControlNodes, startControlNodes } from '../harness/control-nodes.js';
import { etcdSkipReason, type RunningEtcd } from '../harness/etcd.js';
import { fetch } from '../harness/https.js';

const skip = etcdSkipReason();
const EAST = '127.0.0.78';
const NODES = ['ctl-a', 'ctl-b', 'ctl-c'];
const ADDRESSES = ['127.0.0.75', '127.0.0.76', '127.0.0.77'];

describe.skipIf(skip !== undefined)('iotdr status with control nodes', () => {
  let plane: ControlNodes | undefined;
  let etcd: RunningEtcd;
  let cluster: Cluster;
  let nodes: Map<string, RunningControl>;

  beforeAll(async () => {
    plane = await startControlNodes({
      prefix: 'iotdr-status-',
      regions: ['us-east'],
      addresses: [EAST],
      nodes: NODES.map((name, i) => ({ name, address: ADDRESSES[i] as string })),
      failover: { intervalMs: 200, timeoutMs: 400 },
    });
    ({ etcd, cluster, nodes } = plane);
    // One leader, and every node sees it.
    await waitUntil(
      () =>
        [...nodes.values()].filter((n) => n.controller.leads()).length === 1 &&
        [...nodes.values()].every((n) => n.controller.leader() !== null),
      { timeoutMs: 20_000, what: 'one leader every node sees' },
    );
  }, 120_000);

  afterAll(() => plane?.stop());

  const leader = () => [...nodes.values()].find((n) => n.controller.leads()) as RunningControl;

  const cli = (...args: string[]) => clusterCli(cluster, args);

  async function etcdView(node: RunningControl): Promise<EtcdMemberView[]> {
    const res = await fetch(`${node.controlUrl}/v1/control/etcd`, {
      headers: { authorization: `Bearer ${cluster.adminToken}` },
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { members: EtcdMemberView[] }).members;
  }

  it('shows every node with the one leader and its lease, the regions, and every etcd member healthy', async () => {
    const lead = leader();
    const status = await cli('status');
    expect(status.code, `${status.out}\n${status.err}`).toBe(0);
    const lease = lead.controller.leader()?.lease as string;
    expect(lease).toMatch(/^\d+$/);
    for (const [i, name] of NODES.entries()) {
      const leads = name === lead.node ? 'yes' : 'no';
      const row = new RegExp(
        `^${name}\\s+https://${ADDRESSES[i]?.replaceAll('.', '\\.')}:\\d+\\s+yes\\s+${leads}\\s+${lead.node}\\s+${lease}\\s+2 s\\s+0\\s+us-east$`,
        'm',
      );
      expect(status.out).toMatch(row);
    }
    expect(status.out).toMatch(/active region\s+us-east \(epoch 0/);
    expect(status.out).toMatch(/us-east \*\s+1\s+/);
    expect(status.out).toContain(`etcd members, as ${lead.node} reaches them`);
    for (const member of etcd.members)
      expect(status.out).toMatch(
        new RegExp(
          `^${member.name}\\s+https://127\\.0\\.0\\.1:${member.clientPort}\\s+healthy\\s+member-\\d\\s+\\d+\\s+\\d+ KiB\\s+3\\.`,
          'm',
        ),
      );

    const json = await cli('status', '--json');
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.out);
    expect(doc).toMatchObject({
      ok: true,
      activeRegion: 'us-east',
      epoch: 0,
      control: { node: lead.node, leads: true },
    });
    expect(doc.controlNodes.map((n: { name: string; reachable: boolean }) => [n.name, n.reachable])).toEqual(
      NODES.map((n) => [n, true]),
    );
    expect(doc.controlNodes.filter((n: { control: { leads: boolean } }) => n.control.leads)).toHaveLength(1);
    expect(doc.etcd.seenBy).toBe(lead.node);
    expect(doc.etcd.members.map((m: EtcdMemberView) => m.healthy)).toEqual([true, true, true]);
  });

  it('reports etcd member by member on every node: one raft leader, and a killed member unhealthy with why', async () => {
    const views = await Promise.all([...nodes.values()].map(etcdView));
    for (const view of views) {
      expect(view.map((m) => m.name)).toEqual(etcd.members.map((m) => m.name));
      expect(view.every((m) => m.healthy && m.error === null)).toBe(true);
      const leaders = new Set(view.map((m) => m.status?.leader));
      expect(leaders.size).toBe(1);
      expect(etcd.members.map((m) => m.name)).toContain([...leaders][0]);
      expect(view[0]?.status).toMatchObject({
        version: expect.stringMatching(/^3\./),
        raftTerm: expect.any(Number),
      });
      expect(view[0]?.status?.dbSizeBytes).toBeGreaterThan(0);
    }

    const gone = etcd.members[2];
    if (gone === undefined) throw new Error('no member');
    await gone.kill();
    try {
      // Killing the raft leader leaves the others unhealthy until they elect another.
      let view: EtcdMemberView[] = [];
      await waitUntil(
        async () => {
          view = await etcdView(leader());
          return view.filter((m) => m.healthy).length === 2;
        },
        { timeoutMs: 10_000, what: 'the two members left to be healthy' },
      );
      const shown = view.find((m) => m.name === gone.name);
      expect(shown).toMatchObject({ healthy: false, status: null });
      expect(shown?.error).toBe('ECONNREFUSED');
      const status = await cli('status');
      expect(status.out).toMatch(
        new RegExp(`^${gone.name}\\s+\\S+\\s+unhealthy\\s+-\\s+-\\s+-\\s+-\\s+ECONNREFUSED$`, 'm'),
      );
    } finally {
      await gone.start();
    }
  }, 60_000);

  it('shows a stopped node unreachable, and exits 1', async () => {
    // The test before restarts an etcd member: the nodes may be electing a leader again.
    await waitUntil(() => leader() !== undefined, { timeoutMs: 20_000, what: 'a control node to lead' });
    const follower = [...nodes.values()].find((n) => !n.controller.leads()) as RunningControl;
    await follower.stop();
    nodes.delete(follower.node);
    const status = await cli('status');
    expect(status.code).toBe(1);
    expect(status.out).toMatch(
      new RegExp(`^${follower.node}\\s+\\S+\\s+unreachable \\(ECONNREFUSED\\)`, 'm'),
    );
    // The others still answer, and the regions are still shown as the leader sees them.
    expect(status.out).toMatch(new RegExp(`^${leader().node}\\s+\\S+\\s+yes\\s+yes`, 'm'));
    expect(status.out).toMatch(/active region\s+us-east/);
    const json = JSON.parse((await cli('status', '--json')).out);
    expect(json.ok).toBe(false);
    expect(json.controlNodes.find((n: { name: string }) => n.name === follower.node)).toMatchObject({
      reachable: false,
      error: 'unreachable (ECONNREFUSED)',
    });
  }, 30_000);
});
