/**
 * `iotdr etcd --member NAME` as real processes: three members over mutual TLS on addresses of their
 * own form a cluster that a client with a control node's site certificate writes to and reads from;
 * a member stops cleanly on SIGINT and SIGTERM, and takes etcd down with it when it is killed; one
 * member over plain-loopback links is plain HTTP; a member keeps its data for its own member set and
 * refuses it to another; a missing binary says what to install.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { type IotdrConfig, parseConfig } from '../../src/config/index.js';
import { etcdClient } from '../../src/control/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import { controlSiteOf, siteCredentials, startEtcdMember } from '../../src/processes/index.js';
import { etcdSkipReason } from '../harness/etcd.js';
import { freePorts, type IotdrProcess, killGroup, ROOT, spawnIotdr } from '../harness/process.js';

const skip = etcdSkipReason();
/** Each member on an address of its own: its peers then call it from 127.0.0.1, which its certificate must name too. */
const ADDRESSES = ['127.0.0.71', '127.0.0.72', '127.0.0.73'];

const homes: string[] = [];
const processes: IotdrProcess[] = [];
const clients: Etcd3[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const proc of processes.splice(0)) killGroup(proc);
  for (const home of homes.splice(0)) await rm(home, { recursive: true, force: true });
});

/** A state directory with its CA made, and a configuration file listing `members` (each `[address, links]`). */
async function platform(
  addresses: readonly string[],
  links: 'mutual-tls' | 'plain-loopback',
): Promise<{ home: string; file: string; config: IotdrConfig; yaml: Record<string, unknown> }> {
  const home = await mkdtemp(join(tmpdir(), 'iotdr-etcd-cmd-'));
  homes.push(home);
  // Made once here, as `iotdr up` does, so the members starting side by side find it.
  await loadOrCreateCa(join(home, 'pki'));
  const ports = await freePorts(2 * addresses.length + 2);
  const yaml = {
    links: { mode: links },
    control: {
      nodes: [{ name: 'ctl-1', address: '127.0.0.1', port: ports.at(-1), dnsPort: ports.at(-2) }],
      etcd: {
        members: addresses.map((address, i) => ({
          name: `m${i + 1}`,
          address,
          clientPort: ports[2 * i],
          peerPort: ports[2 * i + 1],
        })),
      },
    },
  };
  const file = join(home, 'iotdr.yaml');
  await writeFile(file, JSON.stringify(yaml));
  return { home, file, config: parseConfig(yaml), yaml };
}

function member(home: string, file: string, name: string): IotdrProcess {
  const proc = spawnIotdr(['etcd', '--member', name, '--config', file], { IOTDR_HOME: home }, ROOT, {
    group: true,
  });
  processes.push(proc);
  return proc;
}

/** The pid of the etcd a member runs, from the line it prints at start. */
async function etcdPid(proc: IotdrProcess): Promise<number> {
  let pid = 0;
  await waitUntil(
    () => {
      if (proc.child.exitCode !== null) throw new Error(`iotdr etcd exited:\n${proc.output()}`);
      pid = Number(/\(etcd pid (\d+)\)/.exec(proc.output())?.[1] ?? 0);
      return pid > 0;
    },
    { timeoutMs: 20_000, what: 'iotdr etcd to start etcd', fatal: () => true },
  );
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Puts until one succeeds (the members elect a leader first), then reads the value back. */
async function putAndGet(client: Etcd3, key: string, value: string): Promise<string | null> {
  await waitUntil(
    async () => {
      await client.put(key).value(value);
      return true;
    },
    { timeoutMs: 30_000, what: `a put of ${key}` },
  );
  return client.get(key).string();
}

describe.skipIf(skip !== undefined)('iotdr etcd', () => {
  it('runs a three-member cluster over mutual TLS that a control node writes to, and stops each member cleanly', async () => {
    const { home, file, config } = await platform(ADDRESSES, 'mutual-tls');
    const members = ['m1', 'm2', 'm3'].map((name) => member(home, file, name));
    const node = await siteCredentials(config, home, controlSiteOf('ctl-1'), { addresses: ['127.0.0.1'] });
    const endpoints = config.control.etcd.members.map((m) => `https://${m.address}:${m.clientPort}`);
    const client = etcdClient({ endpoints, tls: node });
    clients.push(client);
    expect(await putAndGet(client, '/iotdr/test/greeting', 'hello')).toBe('hello');
    // Every member holds it, read from its own copy.
    for (const endpoint of endpoints) {
      const alone = etcdClient({ endpoints: [endpoint], tls: node });
      clients.push(alone);
      expect(await alone.get('/iotdr/test/greeting').serializable(true).string()).toBe('hello');
    }

    const pids = await Promise.all(members.map(etcdPid));
    const [first, second] = members as [IotdrProcess, IotdrProcess, IotdrProcess];
    first.child.kill('SIGINT');
    second.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(await second.exited).toBe(0);
    expect(first.output()).toContain('iotdr etcd: member m1 at https://127.0.0.71:');
    expect(alive(pids[0] as number)).toBe(false);
    expect(alive(pids[1] as number)).toBe(false);
  }, 90_000);

  it('runs one member over plain HTTP on plain-loopback links, and takes etcd down with it when killed', async () => {
    const { home, file, config } = await platform(['127.0.0.74'], 'plain-loopback');
    const proc = member(home, file, 'm1');
    const [m1] = config.control.etcd.members;
    const client = etcdClient({ endpoints: [`http://127.0.0.74:${m1?.clientPort}`] });
    clients.push(client);
    expect(await putAndGet(client, '/iotdr/test/plain', 'yes')).toBe('yes');
    const pid = await etcdPid(proc);
    proc.child.kill('SIGKILL');
    await proc.exited;
    await waitUntil(() => !alive(pid), { timeoutMs: 10_000, what: 'etcd to stop with iotdr etcd' });
  }, 60_000);

  it("keeps a member's data for its own member set, and refuses it to another set, naming what to delete", async () => {
    const { home, file, config, yaml } = await platform(['127.0.0.74'], 'plain-loopback');
    const [m1] = config.control.etcd.members;
    const url = `http://127.0.0.74:${m1?.clientPort}`;
    const first = member(home, file, 'm1');
    const client = etcdClient({ endpoints: [url] });
    clients.push(client);
    expect(await putAndGet(client, '/iotdr/test/kept', 'yes')).toBe('yes');
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    // The same member listed with a second one: its data is of a one-member cluster.
    const control = yaml.control as { etcd: { members: Record<string, unknown>[] } };
    const [peerPort] = await freePorts(2);
    const wider = parseConfig({
      ...yaml,
      control: {
        ...control,
        etcd: { members: [...control.etcd.members, { name: 'm2', address: '127.0.0.75', peerPort }] },
      },
    });
    const dataDir = join(home, 'etcd', 'm1');
    await expect(startEtcdMember({ config: wider, stateDir: home, member: 'm1' })).rejects.toMatchObject({
      code: 'IOTDR_ETCD_DATA_OF_ANOTHER_CLUSTER',
      message: expect.stringContaining(
        `${dataDir} holds its data in the cluster (m1=http://127.0.0.74:${m1?.peerPort}), not in the one control.etcd.members lists (m1=http://127.0.0.74:${m1?.peerPort}, m2=http://127.0.0.75:${peerPort}); delete ${dataDir}`,
      ),
    });

    // Its own set again: the member comes back with its keys.
    member(home, file, 'm1');
    const again = etcdClient({ endpoints: [url] });
    clients.push(again);
    await waitUntil(async () => (await again.get('/iotdr/test/kept').string()) === 'yes', {
      timeoutMs: 30_000,
      what: 'the key written before the restart',
    });
  }, 90_000);

  it('says what to install when there is no etcd, and which members there are for a wrong name', async () => {
    const { home, config } = await platform(['127.0.0.74'], 'plain-loopback');
    await expect(
      startEtcdMember({ config, stateDir: home, member: 'm1', findBinary: () => undefined }),
    ).rejects.toMatchObject({
      code: 'IOTDR_ETCD_NOT_FOUND',
      message: expect.stringContaining('apt-get install etcd-server'),
    });
    await expect(startEtcdMember({ config, stateDir: home, member: 'm9' })).rejects.toThrow(
      '--member m9 is not in control.etcd.members (m1)',
    );
  });
});
