import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, freePorts, spawnIotdr } from '../harness/process.js';

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
      expect(up.output()).toMatch(/us-east\s+primary\s+http:\/\/127\.0\.0\.1:\d+/);

      const endpoints = JSON.parse(await readFile(join(home, 'endpoints.json'), 'utf8'));
      expect(endpoints).toMatchObject({
        zone: 'iot.test',
        names: { mqtt: 'mqtt.iot.test', api: 'api.iot.test' },
        regions: {
          'us-east': { api: `http://127.0.0.1:${east}`, role: 'primary' },
          'us-west': { api: `http://127.0.0.1:${west}`, role: 'secondary' },
        },
      });
      expect(endpoints).toMatchObject({
        dns: { host: '127.0.0.1', port: dns },
        control: `http://127.0.0.1:${control}`,
        analytics: `http://127.0.0.1:${analytics}`,
      });
      // Analytics follows both regions' buses.
      const ingest = await fetch(`http://127.0.0.1:${analytics}/v1/ingest`);
      expect(ingest.status).toBe(200);
      expect(((await ingest.json()) as { items: { region: string }[] }).items.map((i) => i.region)).toEqual([
        'us-east',
        'us-west',
      ]);
      expect(endpoints.regions['us-east'].cnc).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      // The control plane's DNS answers the primary's address for the devices' name.
      const resolver = new Resolver();
      resolver.setServers([`127.0.0.1:${dns}`]);
      expect(await resolver.resolve4('mqtt.iot.test')).toEqual(['127.0.0.1']);
      // So does the second DNS server, following the controller, and its health says so.
      expect(endpoints.dnsServers).toEqual([
        { name: 'ns-2.iot.test', host: '127.0.0.1', port: ns2, health: `http://127.0.0.1:${ns2Http}/health` },
      ]);
      resolver.setServers([`127.0.0.1:${ns2}`]);
      expect(await resolver.resolve4('mqtt.iot.test')).toEqual(['127.0.0.1']);
      expect((await resolver.resolveNs('iot.test')).sort()).toEqual(['ns-2.iot.test', 'ns.iot.test']);
      const ns2Health = await fetch(endpoints.dnsServers[0].health);
      expect(ns2Health.status).toBe(200);
      expect(((await ns2Health.json()) as { status: string }).status).toBe('pass');
      const state = await fetch(`http://127.0.0.1:${control}/v1/failover/state`, {
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
        const res = await fetch(`http://127.0.0.1:${port}/v1/things/probe-${region}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: '{}',
        });
        expect(res.status).toBe(201);
        const live = (await (await fetch(`http://127.0.0.1:${port}/livez`)).json()) as { region: string };
        expect(live.region).toBe(region);
      }

      up.child.kill('SIGINT');
      expect(await up.exited).toBe(0);
      expect(up.output()).toContain('iotdr up: stopped');
      for (const port of [east, west]) {
        await expect(fetch(`http://127.0.0.1:${port}/livez`)).rejects.toThrow();
      }
      const log = await readFile(join(home, 'logs', 'us-east.log'), 'utf8');
      expect(log).not.toContain(token);
    } finally {
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
