/**
 * `iotdr up --control-nodes 3`: the embedded control plane of three control nodes (127.0.0.21…)
 * electing their leader through three etcd members (127.0.0.31…), each a supervised process of its
 * own; endpoints.json lists them, exactly one node leads and every node sees it, and Ctrl-C stops
 * every process, etcd included. A configuration that lists control nodes already is refused. etcd
 * data of another run's N is deleted, data of another set of configured members refused.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { waitUntil } from '../../src/common/index.js';
import { embeddedControlPlane } from '../../src/control/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { etcdSkipReason } from '../harness/etcd.js';
import { fetch } from '../harness/https.js';
import { freePorts, type IotdrProcess, killGroup, ROOT, spawnIotdr } from '../harness/process.js';

const skip = etcdSkipReason();
const REGION = '127.0.0.81';
const NODES = [
  { name: 'ctl-1', url: 'https://127.0.0.21:8080', dns: { host: '127.0.0.21', port: 5353 } },
  { name: 'ctl-2', url: 'https://127.0.0.22:8080', dns: { host: '127.0.0.22', port: 5353 } },
  { name: 'ctl-3', url: 'https://127.0.0.23:8080', dns: { host: '127.0.0.23', port: 5353 } },
];

/** The processes of a process group other than its leader, from /proc. */
function groupMembers(pgid: number): { pid: number; command: string }[] {
  const members: { pid: number; command: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === pgid) continue;
    try {
      // pid (comm) state ppid pgrp …; comm may hold spaces, so count from its closing parenthesis.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (Number(pgrp) === pgid) members.push({ pid: Number(entry), command });
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

const homes: string[] = [];
afterEach(async () => {
  for (const home of homes.splice(0)) await rm(home, { recursive: true, force: true });
});

/** A configuration file of one region on its own address, analytics on a free port, and `more`. */
async function configFile(more: Record<string, unknown> = {}): Promise<{ home: string; file: string }> {
  const home = await mkdtemp(join(tmpdir(), 'iotdr-up-nodes-'));
  homes.push(home);
  const [api] = await freePorts(1, REGION);
  const [analytics] = await freePorts(1);
  const yaml = {
    regions: [
      {
        name: 'us-east',
        priority: 1,
        address: REGION,
        api: { port: api },
        cnc: { port: 0 },
        mqtt: { port: 0 },
      },
    ],
    analytics: { address: '127.0.0.1', port: analytics },
    ...more,
  };
  const file = join(home, 'iotdr.yaml');
  // JSON is YAML.
  await writeFile(file, JSON.stringify(yaml));
  return { home, file };
}

async function cli(home: string, ...args: string[]): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const io: CliIo = { out: () => {}, err: (l) => err.push(l), env: { IOTDR_HOME: home }, cwd: home };
  return { code: await main(args, io), err: err.join('\n') };
}

/** Leaves in `home` the data etcd makes for the member `name` of the configuration `yaml`, as an earlier run would. */
async function etcdDataOf(home: string, yaml: Record<string, unknown>, name: string): Promise<void> {
  await loadOrCreateCa(join(home, 'pki'));
  const file = join(home, 'before.yaml');
  await writeFile(file, JSON.stringify(yaml));
  const member = spawnIotdr(['etcd', '--member', name, '--config', file], { IOTDR_HOME: home }, ROOT, {
    group: true,
  });
  try {
    // Made at once, before the member waits for its peers.
    await waitUntil(() => existsSync(join(home, 'etcd', name, 'member')), {
      timeoutMs: 20_000,
      what: `etcd to make ${name}'s data`,
    });
  } finally {
    member.child.kill('SIGTERM');
    await member.exited;
  }
}

describe('iotdr up --control-nodes', () => {
  it('takes 1 to 5, and refuses a configuration that lists control nodes already', async () => {
    const { home, file } = await configFile({
      control: {
        nodes: [{ name: 'cp-a', address: '127.0.0.1' }],
        etcd: { members: [{ name: 'e-a', address: '127.0.0.1' }] },
      },
    });
    for (const n of ['0', '6', 'three']) {
      const r = await cli(home, 'up', '--control-nodes', n, '--config', file);
      expect(r.code).toBe(2);
      expect(r.err).toContain('--control-nodes: an integer from 1 to 5');
    }
    const listed = await cli(home, 'up', '--control-nodes', '3', '--config', file);
    expect(listed.code).toBe(2);
    expect(listed.err).toContain(`--control-nodes: ${file} lists control.nodes already (cp-a)`);
  });

  describe.skipIf(skip !== undefined)('with etcd', () => {
    let up: IotdrProcess | undefined;
    afterEach(() => {
      if (up) killGroup(up);
      up = undefined;
    });

    /** `iotdr up --control-nodes N --fleet 0`, once it says it is up. */
    async function startUp(home: string, file: string, count: number): Promise<IotdrProcess> {
      const proc = spawnIotdr(
        ['up', '--control-nodes', String(count), '--fleet', '0', '--config', file],
        { IOTDR_HOME: home },
        ROOT,
        { group: true },
      );
      up = proc;
      await waitUntil(
        () => {
          if (proc.child.exitCode !== null) throw new Error(`iotdr up exited:\n${proc.output()}`);
          return proc.output().includes('iotdr is up');
        },
        {
          timeoutMs: 150_000,
          what: 'iotdr up to start',
          fatal: () => true,
          timeoutError: (m) => new Error(`${m}\n${proc.output()}`),
        },
      );
      return proc;
    }

    it('runs three control nodes over three etcd members; one leads, endpoints.json lists them, Ctrl-C stops them all', async () => {
      const { home, file } = await configFile();
      const proc = await startUp(home, file, 3);
      const output = proc.output();
      expect(output).toContain(`with 3 control nodes (${join(home, 'iotdr.control-nodes.yaml')})`);
      for (const [i, node] of NODES.entries()) {
        expect(output).toMatch(
          new RegExp(
            `control ${node.name}\\s+${node.url.replaceAll('.', '\\.')}\\s+dns ${node.dns.host}:5353`,
          ),
        );
        expect(output).toMatch(new RegExp(`etcd etcd-${i + 1}\\s+https://127\\.0\\.0\\.3${i + 1}:2379`));
      }
      expect(output).toContain('try           dig @127.0.0.21 -p 5353 mqtt.iot.test');

      const endpoints = JSON.parse(await readFile(join(home, 'endpoints.json'), 'utf8'));
      expect(endpoints).toMatchObject({
        control: NODES[0]?.url,
        controlNodes: NODES,
        etcd: ['https://127.0.0.31:2379', 'https://127.0.0.32:2379', 'https://127.0.0.33:2379'],
        dns: { host: '127.0.0.21', port: 5353 },
      });

      // One leader, the same at every node.
      const token = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
      type Control = { node: string; leads: boolean; leader: { node: string } | null };
      let seen: Control[] = [];
      await waitUntil(
        async () => {
          seen = await Promise.all(
            NODES.map(async (node) => {
              const res = await fetch(`${node.url}/v1/failover/state`, {
                headers: { authorization: `Bearer ${token}` },
              });
              return ((await res.json()) as { control: Control }).control;
            }),
          );
          const leaders = seen.filter((c) => c.leads);
          return leaders.length === 1 && seen.every((c) => c.leader?.node === leaders[0]?.node);
        },
        { timeoutMs: 20_000, what: `one leader every node sees (${JSON.stringify(seen)})` },
      );
      expect(seen.map((c) => c.node)).toEqual(NODES.map((n) => n.name));

      const pgid = proc.child.pid ?? 0;
      const running = groupMembers(pgid);
      expect(running.filter((p) => /^\/usr\/bin\/etcd /.test(p.command))).toHaveLength(3);
      expect(running.filter((p) => p.command.includes('bin.ts control --node'))).toHaveLength(3);
      proc.child.kill('SIGINT');
      expect(await proc.exited).toBe(0);
      expect(proc.output()).toContain('iotdr up: stopped');
      // Every process it started is gone, etcd included (helpers of theirs notice a moment later).
      await waitUntil(() => groupMembers(pgid).length === 0, {
        timeoutMs: 10_000,
        what: 'every process iotdr up started to be gone',
      });
    }, 240_000);

    it("starts the embedded etcd afresh when its data is of another run's N", async () => {
      const { home, file } = await configFile();
      // etcd-1 of a run with three members: alone now, it would wait for two peers for ever.
      await etcdDataOf(home, { control: embeddedControlPlane(3) }, 'etcd-1');
      const proc = await startUp(home, file, 1);
      expect(proc.output()).toContain(
        `iotdr up: ${join(home, 'etcd')} held the etcd data of another run (members etcd-1, etcd-2, etcd-3): deleted, the etcd members start afresh`,
      );
      const token = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
      await waitUntil(
        async () => {
          const res = await fetch(`${NODES[0]?.url}/v1/failover/state`, {
            headers: { authorization: `Bearer ${token}` },
          });
          return ((await res.json()) as { control: { leads: boolean } }).control.leads;
        },
        { timeoutMs: 20_000, what: 'ctl-1 to lead' },
      );
      proc.child.kill('SIGINT');
      expect(await proc.exited).toBe(0);
    }, 240_000);

    it('refuses etcd data of another member set for the members the configuration lists, naming what to delete', async () => {
      const [port, dnsPort, clientPort, peerPort, otherPeerPort] = await freePorts(5);
      const control = {
        nodes: [{ name: 'cp-a', address: '127.0.0.1', port, dnsPort }],
        etcd: { members: [{ name: 'e-a', address: '127.0.0.1', clientPort, peerPort }] },
      };
      const { home, file } = await configFile({ control });
      // e-a made with e-b beside it.
      const member = { name: 'e-b', address: '127.0.0.1', peerPort: otherPeerPort };
      const before = { control: { ...control, etcd: { members: [...control.etcd.members, member] } } };
      await etcdDataOf(home, before, 'e-a');
      const r = await cli(home, 'up', '--fleet', '0', '--config', file);
      expect(r.code).toBe(1);
      const dataDir = join(home, 'etcd', 'e-a');
      expect(r.err).toContain(
        `etcd member e-a: ${dataDir} holds its data in the cluster (e-a=https://127.0.0.1:${peerPort}, e-b=https://127.0.0.1:${otherPeerPort})`,
      );
      expect(r.err).toContain(`delete ${dataDir} to start it afresh`);
      expect(r.err).toContain('(IOTDR_ETCD_DATA_OF_ANOTHER_CLUSTER)');
    }, 60_000);
  });
});
