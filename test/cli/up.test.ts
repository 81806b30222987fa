import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { eventually } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';
import { freePort, freePorts, type IotdrProcess, killGroup, ROOT, spawnIotdr } from '../harness/process.js';

/** The command line of a live process, arguments joined by spaces; undefined once it is gone. */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/** The processes of a process group other than its leader, from /proc. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === pgid) continue;
    try {
      // pid (comm) state ppid pgrp …; comm may hold spaces, so count from its closing parenthesis.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid) members.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

/** `eventually`, by an absolute deadline, failing with what the process printed. */
async function by(deadline: number, what: string, proc: IotdrProcess, check: () => Promise<boolean>) {
  try {
    await eventually(check, what, Math.max(1, deadline - Date.now()));
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${proc.output()}`);
  }
}

/** HTTP status of a GET, or 0 when nothing answers. */
async function statusOf(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

/** The A records control's DNS answers for `name`, from a resolver of its own (so nothing is cached). */
async function resolveA(server: string, name: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([server]);
  try {
    return await resolver.resolve4(name);
  } catch {
    return [];
  }
}

describe('iotdr up', () => {
  it('runs every region, writes endpoints.json, and stops them all on Ctrl-C', async () => {
    const home = await mkdtemp(join(tmpdir(), 'iotdr-up-'));
    try {
      const [east, west, control, dns, ns2, ns2Http, analytics] = await freePorts(7);
      const configPath = join(home, 'iotdr.yaml');
      await writeFile(
        configPath,
        [
          'regions:',
          '  - { name: us-east, priority: 1, address: 127.0.0.1, api: { port: ' +
            east +
            ' }, cnc: { port: 0 }, mqtt: { port: 0 } }',
          '  - { name: us-west, priority: 2, address: 127.0.0.1, api: { port: ' +
            west +
            ' }, cnc: { port: 0 }, mqtt: { port: 0 } }',
          `control: { address: 127.0.0.1, port: ${control} }`,
          `analytics: { address: 127.0.0.1, port: ${analytics} }`,
          `dns: { address: 127.0.0.1, port: ${dns}, servers: [{ name: ns-2, address: 127.0.0.1, port: ${ns2}, httpPort: ${ns2Http} }] }`,
          '',
        ].join('\n'),
      );
      const up = spawnIotdr(['up', '--config', configPath], { IOTDR_HOME: home });
      const deadline = Date.now() + 60_000;
      while (!up.output().includes('iotdr is up') && Date.now() < deadline) {
        if (up.child.exitCode !== null) throw new Error(up.output());
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(up.output()).toContain('iotdr is up');
      expect(up.output()).toMatch(/us-east\s+primary\s+https:\/\/127\.0\.0\.1:\d+/);

      const endpoints = JSON.parse(await readFile(join(home, 'endpoints.json'), 'utf8'));
      expect(endpoints).toMatchObject({
        zone: 'iot.test',
        names: { mqtt: 'mqtt.iot.test', api: 'api.iot.test' },
        regions: {
          'us-east': { api: `https://127.0.0.1:${east}`, role: 'primary' },
          'us-west': { api: `https://127.0.0.1:${west}`, role: 'secondary' },
        },
      });
      expect(endpoints).toMatchObject({
        dns: { host: '127.0.0.1', port: dns },
        control: `https://127.0.0.1:${control}`,
        analytics: `https://127.0.0.1:${analytics}`,
      });
      // Analytics follows both regions' buses.
      const adminToken = (await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim();
      const ingest = await fetch(`https://127.0.0.1:${analytics}/v1/ingest`, {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      expect(ingest.status).toBe(200);
      expect(((await ingest.json()) as { items: { region: string }[] }).items.map((i) => i.region)).toEqual([
        'us-east',
        'us-west',
      ]);
      expect(endpoints.regions['us-east'].cnc).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      // Every process's API is built the same way: each documents its own routes in /openapi.json.
      for (const [base, route] of [
        [endpoints.regions['us-east'].api, '/v1/things/{name}'],
        [endpoints.control, '/v1/failover/state'],
        [endpoints.analytics, '/v1/ingest'],
        [endpoints.regions['us-east'].cnc, '/v1/commands/{id}'],
        [endpoints.dnsServers[0].health.replace(/\/health$/, ''), '/v1/dns/status'],
      ] as const) {
        const res = await fetch(`${base}/openapi.json`);
        expect(res.status, base).toBe(200);
        const doc = (await res.json()) as { openapi: string; info: { title: string }; paths: object };
        expect(doc.openapi).toMatch(/^3\./);
        expect(Object.keys(doc.paths), `${base}: ${doc.info.title}`).toContain(route);
      }
      // The control plane's DNS answers the primary's address for the devices' name.
      const resolver = new Resolver();
      resolver.setServers([`127.0.0.1:${dns}`]);
      expect(await resolver.resolve4('mqtt.iot.test')).toEqual(['127.0.0.1']);
      // So does the second DNS server, following the controller, and its health says so.
      expect(endpoints.dnsServers).toEqual([
        {
          name: 'ns-2.iot.test',
          host: '127.0.0.1',
          port: ns2,
          health: `https://127.0.0.1:${ns2Http}/health`,
        },
      ]);
      resolver.setServers([`127.0.0.1:${ns2}`]);
      expect(await resolver.resolve4('mqtt.iot.test')).toEqual(['127.0.0.1']);
      expect((await resolver.resolveNs('iot.test')).sort()).toEqual(['ns-2.iot.test', 'ns.iot.test']);
      const ns2Health = await fetch(endpoints.dnsServers[0].health);
      expect(ns2Health.status).toBe(200);
      expect(((await ns2Health.json()) as { status: string }).status).toBe('pass');
      const state = await fetch(`https://127.0.0.1:${control}/v1/failover/state`, {
        headers: {
          authorization: `Bearer ${(await readFile(join(home, 'secrets', 'admin.token'), 'utf8')).trim()}`,
        },
      });
      expect(state.status).toBe(200);
      expect(((await state.json()) as { activeRegion: string }).activeRegion).toBe('us-east');
      // The brokers took free ports (mqtt.port 0); endpoints.json has the real ones, and they answer.
      for (const name of ['us-east', 'us-west']) {
        const mqttUrl = new URL(endpoints.regions[name].mqtt);
        expect(mqttUrl.protocol).toBe('mqtts:');
        expect(Number(mqttUrl.port)).toBeGreaterThan(0);
        const socket = connect(Number(mqttUrl.port), mqttUrl.hostname);
        await once(socket, 'connect');
        socket.destroy();
      }
      const tokenFile = join(home, 'secrets', 'admin.token');
      expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
      expect((await stat(join(home, 'pki', 'ca.key'))).mode & 0o777).toBe(0o600);
      const token = (await readFile(tokenFile, 'utf8')).trim();
      expect(up.output()).not.toContain(token);

      // Both regions answer with the one admin token, and each keeps its own registry.
      for (const [port, region] of [
        [east, 'us-east'],
        [west, 'us-west'],
      ] as const) {
        const res = await fetch(`https://127.0.0.1:${port}/v1/things/probe-${region}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: '{}',
        });
        expect(res.status).toBe(201);
        const live = (await (await fetch(`https://127.0.0.1:${port}/livez`)).json()) as { region: string };
        expect(live.region).toBe(region);
      }

      up.child.kill('SIGINT');
      expect(await up.exited).toBe(0);
      expect(up.output()).toContain('iotdr up: stopped');
      for (const port of [east, west]) {
        await expect(fetch(`https://127.0.0.1:${port}/livez`)).rejects.toThrow();
      }
      const log = await readFile(join(home, 'logs', 'us-east.log'), 'utf8');
      expect(log).not.toContain(token);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }, 90_000);

  it('survives a region killed with SIGKILL: the fleet moves, the rest serve on, the region comes back', async () => {
    const home = await mkdtemp(join(tmpdir(), 'iotdr-up-'));
    let up: IotdrProcess | undefined;
    let watching = false;
    try {
      // The regions on addresses of their own, so the DNS answer says which one is active.
      const EAST = '127.0.0.91';
      const WEST = '127.0.0.92';
      const [eastApi] = await freePorts(1, EAST);
      const [westApi] = await freePorts(1, WEST);
      const [control, dns, analytics] = await freePorts(3);
      const yaml = {
        regions: [
          { name: 'us-east', priority: 1, address: EAST, api: { port: eastApi } },
          { name: 'us-west', priority: 2, address: WEST, api: { port: westApi } },
        ].map((r) => ({ ...r, cnc: { port: 0 }, mqtt: { port: 0 } })),
        control: { address: '127.0.0.1', port: control },
        analytics: { address: '127.0.0.1', port: analytics },
        dns: { address: '127.0.0.1', port: dns },
        supervision: { restartDelayMs: 8000 },
      };
      const config = parseConfig(yaml);
      const configPath = join(home, 'iotdr.yaml');
      // JSON is YAML.
      await writeFile(configPath, JSON.stringify(yaml));
      const proc = spawnIotdr(['up', '--fleet', '0', '--config', configPath], { IOTDR_HOME: home }, ROOT, {
        group: true,
      });
      up = proc;
      await by(Date.now() + 60_000, 'iotdr up starting', proc, async () => {
        if (proc.child.exitCode !== null) throw new Error('iotdr up exited');
        return proc.output().includes('iotdr is up');
      });
      const dnsServer = `127.0.0.1:${dns}`;
      const eastLivez = `https://${EAST}:${eastApi}/livez`;
      const others = [
        `https://127.0.0.1:${control}/livez`,
        `https://127.0.0.1:${analytics}/livez`,
        `https://${WEST}:${westApi}/health`,
      ];
      // The pid `iotdr up` gives for the experiment is us-east's.
      const pid = Number(/kill -9 (\d+)/.exec(proc.output())?.[1]);
      expect(commandLine(pid)).toContain('region --name us-east');
      expect(proc.output()).toContain(
        '(the fleet moves to us-west; us-east is restarted in 8 s, then iotdr failback)',
      );
      expect(groupMembers(proc.child.pid ?? 0)).toContain(pid);
      await by(
        Date.now() + 10_000,
        'control DNS answering us-east',
        proc,
        async () => (await resolveA(dnsServer, 'mqtt.iot.test'))[0] === EAST,
      );

      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      const { intervalMs, failureThreshold, timeoutMs } = config.failover;
      const detectionLimitMs = intervalMs * failureThreshold + timeoutMs + 1000;
      const { restartDelayMs } = config.supervision;
      // (b) every other process is asked all along, on its own loop so the timings below are not held up.
      const failures: string[] = [];
      watching = true;
      const watcher = (async () => {
        while (watching) {
          const statuses = await Promise.all(others.map(statusOf));
          statuses.forEach((status, i) => {
            if (status !== 200)
              failures.push(`${others[i]} answered ${status} at +${Date.now() - killedAt} ms`);
          });
          await new Promise((r) => setTimeout(r, 200));
        }
      })();

      // (a) the control plane moves the fleet's name to us-west within the detection time.
      let movedAt = 0;
      await by(
        killedAt + detectionLimitMs,
        `control DNS answering us-west within ${detectionLimitMs} ms of the kill`,
        proc,
        async () => {
          const [answer] = await resolveA(dnsServer, 'mqtt.iot.test');
          movedAt = Date.now();
          return answer === WEST;
        },
      );
      expect(movedAt - killedAt).toBeLessThanOrEqual(detectionLimitMs);
      // (c) up runs on and said what happened.
      expect(proc.child.exitCode).toBeNull();
      expect(proc.output()).toMatch(
        /region us-east exited \(SIGKILL\); restarting it in 8 s; see \S+us-east\.log/,
      );

      // (d) the supervisor starts us-east again at restartDelayMs; it answers under a new pid.
      let backAt = 0;
      let newPid = 0;
      await by(killedAt + restartDelayMs + 15_000, 'us-east restarted and answering', proc, async () => {
        const status = await statusOf(eastLivez);
        backAt = Date.now();
        newPid = Number(/region us-east restarted \(pid (\d+)\)/.exec(proc.output())?.[1] ?? 0);
        return status === 200 && newPid > 0;
      });
      expect(backAt - killedAt).toBeGreaterThanOrEqual(restartDelayMs);
      expect(newPid).not.toBe(pid);
      expect(commandLine(newPid)).toContain('region --name us-east');
      expect(commandLine(pid)).toBeUndefined();
      watching = false;
      await watcher;
      expect(failures).toEqual([]);
      expect(proc.child.exitCode).toBeNull();

      // (e) Ctrl-C stops everything, cleanly: up waits for each of its processes to end.
      const pgid = proc.child.pid ?? 0;
      const children = groupMembers(pgid).filter((p) => commandLine(p)?.includes('bin.ts'));
      expect(children).toContain(newPid);
      expect(children).toHaveLength(4);
      proc.child.kill('SIGINT');
      expect(await proc.exited).toBe(0);
      expect(proc.output()).toContain('iotdr up: stopped');
      expect(children.filter((p) => commandLine(p) !== undefined)).toEqual([]);
      // Helpers of theirs (tsx's esbuild service) notice a moment later.
      await by(
        Date.now() + 5000,
        'every process iotdr up started gone',
        proc,
        async () => groupMembers(pgid).length === 0,
      );
    } finally {
      watching = false;
      if (up) killGroup(up);
      await rm(home, { recursive: true, force: true });
    }
  }, 90_000);

  it('fails clearly when a region cannot start', async () => {
    const home = await mkdtemp(join(tmpdir(), 'iotdr-up-'));
    try {
      const port = await freePort();
      const configPath = join(home, 'iotdr.yaml');
      // 192.0.2.1 (TEST-NET-1) is not an address of this machine, so the region cannot listen.
      await writeFile(
        configPath,
        `regions:\n  - { name: us-east, priority: 1, address: 192.0.2.1, api: { port: ${port} } }\n`,
      );
      const up = spawnIotdr(['up', '--config', configPath], { IOTDR_HOME: home });
      expect(await up.exited).toBe(1);
      expect(up.output()).toMatch(/region us-east exited/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }, 90_000);
});
