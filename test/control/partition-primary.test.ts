/**
 * The primary cut off from every control node while its devices, the other region and analytics
 * still reach it, in a network lab (test/harness/lab-platform.ts): the fleet moves, the devices
 * still on the old primary are told and cut through the other region (disconnectOnFailover:
 * when-reachable), and once healed both registries converge (`iotdr replication diff` exits 0) and
 * analytics holds every message the devices accepted, once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { etcdSkipReason } from '../harness/etcd.js';
import {
  type LabPlatform,
  type LabProcess,
  NODES,
  ROOT_CLI,
  startLabPlatform,
} from '../harness/lab-platform.js';
import { netlabSkipReason } from '../harness/netlab.js';

const skip = netlabSkipReason() ?? etcdSkipReason();
const FAILOVER = { intervalMs: 500, timeoutMs: 500, failureThreshold: 3, recoveryThreshold: 2 };
const DEVICES = 10;

describe.skipIf(skip !== undefined)('the primary cut off from the control plane', () => {
  let p: LabPlatform;
  let fleet: LabProcess | undefined;

  beforeAll(async () => {
    p = await startLabPlatform({
      failover: FAILOVER,
      leaseTtlMs: 2000,
      analytics: true,
      extraHosts: ['devices'],
    });
  }, 120_000);
  afterAll(async () => {
    await fleet?.kill('SIGKILL');
    await p?.stop();
  });

  const address = (host: string) => p.hosts.get(host)?.address as string;

  async function connections(region: string): Promise<string[]> {
    const res = await p.probe.http(`${p.url(region)}/v1/connections`, { headers: p.admin });
    return res.status === 200
      ? res.body.items.map((c: { thingName?: string; clientId?: string }) => c.thingName ?? c.clientId)
      : [];
  }

  it('moves the fleet, tells and cuts the devices on the old primary through the other region, and loses nothing', async () => {
    // A fleet on the primary, publishing.
    fleet = p.iotdr('fleet', 'devices', ['fleet', '--devices', String(DEVICES), '--name', 'part']);
    await waitUntil(async () => (await connections('us-east')).length === DEVICES, {
      timeoutMs: 60_000,
      what: `${DEVICES} devices on us-east`,
    });
    for (let i = 0; i < 3; i++)
      await p.probe.http(`${p.url('us-east')}/v1/things/before-${i}`, {
        method: 'PUT',
        headers: p.admin,
        body: { attributes: { i: String(i) } },
      });

    // Cut the primary from every control node; its devices, us-west and analytics still reach it.
    for (const node of NODES) await p.lab.cut('us-east', node);
    try {
      await waitUntil(
        async () => {
          const states = await p.states();
          return (
            states.size === NODES.length && [...states.values()].every((s) => s.activeRegion === 'us-west')
          );
        },
        { timeoutMs: 30_000, what: 'the fleet moved to us-west' },
      );
      // Told and cut through us-west: every device ends up on us-west.
      await waitUntil(async () => (await connections('us-west')).length === DEVICES, {
        timeoutMs: 60_000,
        what: `${DEVICES} devices on us-west`,
      });
      expect(await connections('us-east')).toEqual([]);
      // A step is recorded once it finished, after the devices may have moved: wait for the disconnect's.
      let sw: any;
      await waitUntil(
        async () => {
          const leader = await p.leader();
          if (leader === undefined) return false;
          const log = await p.probe.http(`${p.url(leader)}/v1/failover/events?type=switch`, {
            headers: p.admin,
          });
          sw = log.body.items?.at(-1);
          return sw?.timings?.disconnectsRequestedAt != null;
        },
        { timeoutMs: 15_000, what: 'the switch with its disconnect recorded' },
      );
      expect(sw).toMatchObject({ epoch: 1, from: 'us-east', to: 'us-west' });
      expect(sw.steps.noticesPublished['us-east']).toMatchObject({ ok: true, via: 'us-west' });
      expect(sw.steps.disconnectsRequested).toMatchObject({ region: 'us-east', ok: true, via: 'us-west' });

      // Registry writes on both sides during the partition.
      for (let i = 0; i < 3; i++) {
        await p.probe.http(`${p.url('us-east')}/v1/things/during-east-${i}`, {
          method: 'PUT',
          headers: p.admin,
          body: { attributes: { i: String(i) } },
        });
        await p.probe.http(`${p.url('us-west')}/v1/things/during-west-${i}`, {
          method: 'PUT',
          headers: p.admin,
          body: { attributes: { i: String(i) } },
        });
      }
    } finally {
      for (const node of NODES) await p.lab.heal('us-east', node);
    }

    // Healed: both registries the same (iotdr replication diff, run where the regions are reachable).
    await waitUntil(
      async () =>
        (
          await p.lab.run(
            'probe',
            process.execPath,
            [...ROOT_CLI, 'replication', 'diff', '--config', p.configPath],
            { IOTDR_HOME: p.stateDir },
          )
        ).code === 0,
      { timeoutMs: 30_000, what: 'iotdr replication diff to exit 0' },
    );

    // The fleet stops; analytics holds every accepted message once.
    await fleet.kill('SIGINT');
    const table = fleet.output();
    const total = table.split('\n').find((l) => l.trim().startsWith('total'));
    expect(total, table).toBeDefined();
    const accepted = Number((total as string).trim().split(/\s+/)[2]);
    expect(accepted).toBeGreaterThan(0);
    let totals = { messages: 0, duplicates: -1 };
    await waitUntil(
      async () => {
        totals = (await p.probe.http(`https://${address('analytics')}:8080/v1/totals`, { headers: p.admin }))
          .body;
        return totals.messages >= accepted;
      },
      { timeoutMs: 60_000, what: `analytics to hold ${accepted} messages` },
    );
    expect(totals).toMatchObject({ messages: accepted, devicesWithGaps: 0 });
  }, 240_000);
});
