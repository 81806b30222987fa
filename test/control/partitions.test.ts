/**
 * The control plane under real partitions: two regions, three etcd members and three control
 * nodes, each in its own network namespace (test/harness/lab-platform.ts), links cut and healed
 * with iptables, processes killed with SIGKILL. The cases of docs/failover.md, "The control plane":
 *
 * - a node cut off from the primary alone cannot move the fleet against the quorum;
 * - a leader cut off from etcd stops deciding before another starts: one switch, one epoch, in the
 *   decision log and in every name server's answers over time;
 * - kill -9 of the leader while the primary fails: the fleet still moves, within
 *   interval × threshold + the lease TTL + timeout.
 *
 * The cases run in order on one platform; each starts from a healthy primary that is active.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { etcdSkipReason } from '../harness/etcd.js';
import { type LabPlatform, MEMBERS, NODES, type Sample, startLabPlatform } from '../harness/lab-platform.js';
import { netlabSkipReason } from '../harness/netlab.js';

const skip = netlabSkipReason() ?? etcdSkipReason();
const FAILOVER = { intervalMs: 500, timeoutMs: 500, failureThreshold: 3, recoveryThreshold: 2 };
const LEASE_TTL_MS = 2000;

/** A line of a process's JSON log. */
type LogLine = { time: number; msg: string; node?: string };

function logLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
}

describe.skipIf(skip !== undefined)('the control plane under partitions', () => {
  let p: LabPlatform;

  beforeAll(async () => {
    p = await startLabPlatform({ failover: FAILOVER, leaseTtlMs: LEASE_TTL_MS });
  }, 120_000);
  afterAll(async () => {
    await p?.stop();
  });

  const eastAddress = () => p.hosts.get('us-east')?.address as string;
  const westAddress = () => p.hosts.get('us-west')?.address as string;

  async function leader(): Promise<string> {
    let found: string | undefined;
    await waitUntil(
      async () => {
        found = await p.leader();
        return found !== undefined;
      },
      { timeoutMs: 15_000, what: 'one leader' },
    );
    return found as string;
  }

  /** Waits until every node answers, decides from health, with `region` active at `epoch`. */
  async function settled(region: string, epoch: number): Promise<void> {
    await waitUntil(
      async () => {
        const states = await p.states();
        return (
          states.size === NODES.length &&
          [...states.values()].every(
            (s) =>
              s.activeRegion === region &&
              s.epoch === epoch &&
              s.regions.every((r: any) => r.status === 'up'),
          )
        );
      },
      { timeoutMs: 30_000, what: `every node at ${region}, epoch ${epoch}, every region up` },
    );
  }

  async function answers(node: string): Promise<string[]> {
    return p.probe.dns(p.dns(node)).catch(() => []);
  }

  it('keeps the fleet when one node is cut off from the primary: the quorum sees it up', async () => {
    await settled('us-east', 0);
    const l = await leader();
    await p.lab.cut(l, 'us-east');
    try {
      // Long past failureThreshold probes: the leader's own checker votes it down, the others up.
      await waitUntil(
        async () => {
          const state = (await p.states()).get(l);
          return state?.regions[0]?.checkers[l]?.vote === 'down';
        },
        { timeoutMs: 10_000, what: `${l}'s checker to vote us-east down` },
      );
      await new Promise((r) => setTimeout(r, FAILOVER.intervalMs * FAILOVER.failureThreshold * 2));
      const states = await p.states();
      for (const [node, state] of states) {
        expect(state, node).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
        expect(state.regions[0].status, node).toBe('up');
      }
      const east = states.get(l).regions[0].checkers;
      expect(Object.values(east).filter((v: any) => v.vote === 'up')).toHaveLength(2);
      for (const node of NODES) expect(await answers(node)).toEqual([eastAddress()]);
    } finally {
      await p.lab.heal(l, 'us-east');
    }
  }, 60_000);

  it('stops a leader cut off from etcd before another starts: one switch, one epoch everywhere', async () => {
    await settled('us-east', 0);
    const l = await leader();
    const others = NODES.filter((n) => n !== l);
    await p.probe.startSampling({
      dns: NODES.map((n) => p.dns(n)),
      urls: NODES.map((n) => `${p.url(n)}/v1/failover/state`),
      headers: p.admin,
      everyMs: 100,
    });
    const from = p.probe.samples.length;
    // The leader loses etcd while the primary dies: a switch is due, and only a new leader may make it.
    for (const member of MEMBERS) await p.lab.cut(l, member);
    await p.processes.get('us-east')?.kill('SIGKILL');
    try {
      await waitUntil(
        async () => {
          const states = await p.states();
          return others.every(
            (n) => states.get(n)?.activeRegion === 'us-west' && states.get(n)?.control.leader?.node !== l,
          );
        },
        { timeoutMs: 30_000, what: 'the others to move the fleet under a new leader' },
      );
      for (const n of others)
        await waitUntil(async () => (await answers(n)).includes(westAddress()), {
          timeoutMs: 5000,
          what: `${n}'s DNS to answer us-west`,
        });
    } finally {
      for (const member of MEMBERS) await p.lab.heal(l, member);
    }
    // Healed, the old leader follows the committed decision.
    await waitUntil(async () => (await answers(l)).includes(westAddress()), {
      timeoutMs: 10_000,
      what: `${l}'s DNS to answer us-west once healed`,
    });
    await new Promise((r) => setTimeout(r, 500));
    await p.probe.stopSampling();
    const samples: Sample[] = p.probe.samples.slice(from);

    // The old leader stopped deciding before the new one was elected (their own logs, one clock).
    const stepped = logLines(p.processes.get(l)?.output() ?? '').find(
      (x) => x.msg === 'not the leader any more',
    );
    const newLeader = (await p.states()).get(others[0] as string)?.control.leader?.node as string;
    expect(others).toContain(newLeader);
    const elected = logLines(p.processes.get(newLeader)?.output() ?? '')
      .filter((x) => x.msg === 'elected leader')
      .at(-1);
    expect(stepped, `${l} logged its step down`).toBeDefined();
    expect(elected, `${newLeader} logged its election`).toBeDefined();
    expect((stepped as LogLine).time).toBeLessThan((elected as LogLine).time);

    // One switch in the decision log, to us-west at epoch 1.
    const log = await p.probe.http(`${p.url(newLeader)}/v1/failover/events?type=switch`, {
      headers: p.admin,
    });
    expect(log.body.items.map((e: any) => [e.epoch, e.to])).toEqual([[1, 'us-west']]);

    // Over time, every name server went from us-east to us-west once and never back; every node
    // showed epoch 0 then 1 and nothing else; never two nodes leading in one sample.
    for (const node of NODES) {
      const seen = samples
        .map((s) => s.dns[p.dns(node)])
        .filter((a): a is string => a !== undefined && !a.startsWith('error'));
      const changes = seen.filter((a, i) => i === 0 || a !== seen[i - 1]);
      expect(changes, `${node}'s DNS answers`).toEqual([eastAddress(), westAddress()]);
      const epochs = samples
        .map((s) => s.states[`${p.url(node)}/v1/failover/state`]?.epoch)
        .filter((e): e is number => typeof e === 'number');
      expect([...new Set(epochs)], `${node}'s epochs`).toEqual([0, 1]);
    }
    for (const s of samples) {
      const leading = Object.values(s.states).filter((x) => x.leads === true);
      expect(leading.length, `sample at ${s.at}`).toBeLessThanOrEqual(1);
    }
  }, 90_000);

  it('moves the fleet after kill -9 of the leader while the primary fails, within interval × threshold + TTL + timeout', async () => {
    // Back to the primary: restart it, let it be seen healthy, fail back through any node.
    p.processes.get('us-east')?.restart();
    await waitUntil(
      async () => [...(await p.states()).values()].every((s) => s.regions[0]?.status === 'up'),
      { timeoutMs: 60_000, what: 'us-east healthy again' },
    );
    const back = await p.probe.http(`${p.url(NODES[2])}/v1/failover/failback`, {
      method: 'POST',
      headers: p.admin,
      body: { reason: 'primary repaired' },
    });
    expect(back.status, JSON.stringify(back.body)).toBe(200);
    await settled('us-east', 2);
    const l = await leader();
    const others = NODES.filter((n) => n !== l);

    const killedAt = Date.now();
    await Promise.all([p.processes.get(l)?.kill('SIGKILL'), p.processes.get('us-east')?.kill('SIGKILL')]);
    await waitUntil(
      async () =>
        (await Promise.all(others.map((n) => answers(n)))).every(
          (a) => a.length === 1 && a[0] === westAddress(),
        ),
      { timeoutMs: 20_000, intervalMs: 50, what: 'every remaining name server to answer us-west' },
    );
    const movedInMs = Date.now() - killedAt;
    const bound = FAILOVER.intervalMs * FAILOVER.failureThreshold + LEASE_TTL_MS + FAILOVER.timeoutMs;
    console.log(
      `kill -9 of leader ${l} and of us-east: the fleet moved in ${movedInMs} ms (bound ${bound} ms)`,
    );
    expect(movedInMs).toBeLessThanOrEqual(bound);
    const states = await p.states();
    for (const n of others) expect(states.get(n)).toMatchObject({ activeRegion: 'us-west', epoch: 3 });
    // The node that leads now: a node's view of the leader may lag behind its view of the decision.
    let newLeader = '';
    await waitUntil(
      async () => {
        newLeader = (await p.leader()) ?? '';
        return (others as readonly string[]).includes(newLeader);
      },
      { timeoutMs: 10_000, what: 'one of the others leading' },
    );
    const log = await p.probe.http(`${p.url(newLeader)}/v1/failover/events?type=switch`, {
      headers: p.admin,
    });
    const last = log.body.items.at(-1);
    expect(last).toMatchObject({ epoch: 3, to: 'us-west', trigger: { type: 'health', region: 'us-east' } });
    // The new leader made the switch and ran its actions.
    await waitUntil(
      async () =>
        (
          await p.probe.http(`${p.url(newLeader)}/v1/failover/events?type=switch`, { headers: p.admin })
        ).body.items.at(-1)?.timings.noticesPublishedAt !== null,
      { timeoutMs: 10_000, what: 'the notices of the switch' },
    );
  }, 120_000);
});
