/**
 * `iotdr control` over two real regions: the checker probes their /health, the controller decides,
 * and the built-in DNS answers — asked with real DNS queries.
 */
import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { FAILOVER_NOTICE_TOPIC } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { Checker, HttpObservationSink } from '../../src/failover/index.js';
import {
  type RunningControl,
  type RunningNameServer,
  startControl,
  startNameServer,
} from '../../src/processes/index.js';
import {
  type Cluster,
  type ClusterRegion,
  clusterCli,
  clusterConfigFile,
  eventually,
  startCluster,
} from '../harness/cluster.js';
import { connect, provision } from '../harness/devices.js';
import { fetch } from '../harness/https.js';
import { powerDnsSkipReason, startPowerDns } from '../harness/pdns.js';
import { freePort, spawnIotdr, waitForHttp } from '../harness/process.js';
import { siteAgentOf } from '../harness/region.js';

const EAST = '127.0.0.21';
const WEST = '127.0.0.22';
const PDNS_SKIP = powerDnsSkipReason();

const FAILOVER = { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 2 };

async function resolveMqtt(server: { dns: { port: number } }): Promise<string[]> {
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([`127.0.0.1:${server.dns.port}`]);
  return resolver.resolve4('mqtt.iot.test');
}

/** Health-checked services: a path answers 503 while it is in `down`, 200 otherwise. */
async function startServices(): Promise<{ down: Set<string>; base: string; services: Server }> {
  const down = new Set<string>();
  const services = createServer((req, res) => {
    res.writeHead(down.has(req.url ?? '') ? 503 : 200).end();
  });
  services.listen(0, '127.0.0.1');
  await once(services, 'listening');
  return { down, base: `http://127.0.0.1:${(services.address() as AddressInfo).port}`, services };
}

async function healthOf(url: string): Promise<{ code: number; body: any }> {
  const res = await fetch(`${url}/health`);
  return { code: res.status, body: await res.json() };
}

describe('iotdr control', () => {
  let cluster: Cluster | undefined;
  let control: RunningControl | undefined;

  afterEach(async () => {
    await control?.stop();
    await cluster?.close();
    control = undefined;
    cluster = undefined;
  });

  /** Two regions and control, all on the ports the configuration names, so the CLI finds them. */
  async function start(
    failover: Record<string, unknown> = {},
    config: Record<string, unknown> = {},
  ): Promise<{ east: ClusterRegion; control: RunningControl }> {
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        addresses: [EAST, WEST],
        config: {
          failover: { ...FAILOVER, ...failover },
          control: { address: '127.0.0.1', port: await freePort() },
          dns: { address: '127.0.0.1', port: await freePort() },
          ...config,
        },
      },
    );
    const east = cluster.regions['us-east'] as ClusterRegion;
    control = await startControl({
      config: cluster.config,
      stateDir: cluster.stateDir,
      logger: createLogger({ level: 'silent' }),
    });
    return { east, control };
  }

  /** The cluster's configuration as a file, for the command line. */
  async function configFile(): Promise<string> {
    if (!cluster) throw new Error('no cluster');
    return clusterConfigFile(cluster);
  }

  /** Runs `iotdr ARGS --config FILE` in this process against the cluster's state directory. */
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    if (!cluster) throw new Error('no cluster');
    return clusterCli(cluster, args);
  }

  it("moves mqtt.<zone> to the secondary within interval × threshold + timeout + 500 ms of the primary's broker stopping", async () => {
    const { east, control } = await start();
    expect(await resolveMqtt(control)).toEqual([EAST]);
    // Let the checker see both regions healthy first.
    await eventually(
      async () => control.controller.state().mode.type === 'health',
      'the controller following health',
    );

    const stoppedAt = Date.now();
    await east.running?.broker.close();
    let movedAt = 0;
    await eventually(async () => {
      const answer = await resolveMqtt(control).catch(() => []);
      if (answer[0] === WEST) movedAt = Date.now();
      return movedAt > 0;
    }, 'mqtt.iot.test answering us-west');
    const bound = FAILOVER.intervalMs * FAILOVER.failureThreshold + FAILOVER.timeoutMs + 500;
    expect(movedAt - stoppedAt).toBeLessThan(bound);
    const state = control.controller.state();
    expect(state).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
  });

  it('moves the fleet by routing control from the command line, and back with failback', async () => {
    const { control } = await start();
    await eventually(
      async () => control.controller.state().mode.type === 'health',
      'the controller following health',
    );

    const status = await cli('status');
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/active region\s+us-east \(epoch 0/);
    expect(status.out).toMatch(/us-east \*\s+1\s+up/);

    expect((await cli('failover', '--to', 'us-west')).code).toBe(2);
    const moved = await cli('failover', '--to', 'us-west', '--reason', 'drill');
    expect(moved.code).toBe(0);
    expect(moved.out).toContain('override to us-west by admin: drill');
    expect(await resolveMqtt(control)).toEqual([WEST]);
    expect(control.controller.state()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });

    const unknown = await cli('failover', '--to', 'eu-north', '--reason', 'typo');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('eu-north');

    const back = await cli('failback', '--reason', 'drill over');
    expect(back.code).toBe(0);
    expect(await resolveMqtt(control)).toEqual([EAST]);
    const after = await cli('status');
    expect(after.out).toMatch(/active region\s+us-east \(epoch 2, health/);
    expect(after.out).toMatch(/last switch\s+us-west → us-east \(epoch 2, failback\)/);
    expect(after.out).toMatch(/DNS answers changed\s+\+\d+ ms/);
  });

  it('keeps the fleet when one of three checkers is cut off from the primary, and moves it on a quorum of two', async () => {
    const { east, control } = await start({ checkers: ['control', 'remote', 'cut-off'] });
    if (!cluster) throw new Error('no cluster');
    const west = cluster.regions['us-west'] as ClusterRegion;
    // A real `iotdr checker` process, reporting over HTTP.
    const remote = spawnIotdr(['checker', '--id', 'remote', '--config', await configFile()], {
      IOTDR_HOME: cluster.stateDir,
    });
    // A checker whose own network cannot reach us-east: nothing listens where it probes. It is a
    // site of its own, with its certificate.
    const site = { kind: 'checker', name: 'cut-off' } as const;
    const cutOff = new Checker({
      id: 'cut-off',
      regions: [
        { name: 'us-east', url: `https://127.0.0.1:${await freePort()}` },
        {
          name: 'us-west',
          url: west.url,
          agent: await siteAgentOf(cluster.stateDir, site, { kind: 'region', name: 'us-west' }),
        },
      ],
      sink: new HttpObservationSink({
        controlUrl: control.controlUrl,
        agent: await siteAgentOf(cluster.stateDir, site, { kind: 'control', name: 'control' }),
      }),
      intervalMs: FAILOVER.intervalMs,
      timeoutMs: FAILOVER.timeoutMs,
    });
    cutOff.start();
    try {
      const eastView = () => control.controller.state().regions.find((r) => r.region === 'us-east');
      await eventually(
        async () =>
          eastView()?.checkers['cut-off']?.vote === 'down' && eastView()?.checkers.remote?.vote === 'up',
        'the cut-off checker voting us-east down while the remote one votes it up',
      );
      // Several thresholds' worth of probes later, the fleet has not moved.
      await new Promise((r) => setTimeout(r, 4 * FAILOVER.intervalMs * FAILOVER.failureThreshold));
      expect(control.controller.state()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
      expect(await resolveMqtt(control)).toEqual([EAST]);

      // The primary really fails: now two of three see it.
      await east.running?.broker.close();
      await eventually(
        async () => (await resolveMqtt(control).catch(() => []))[0] === WEST,
        'us-west answered',
      );
      expect(control.controller.state()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
    } finally {
      await cutOff.stop();
      remote.child.kill('SIGTERM');
      await remote.exited;
    }
  });

  it('moves on a failing critical app checkpoint, and not on a failing non-critical analytics one', async () => {
    // Each region's own application and analytics services, told apart by the {region} in the URL.
    const { down, base, services } = await startServices();
    try {
      const { control } = await start(
        {},
        {
          health: {
            critical: ['broker', 'registry', 'events', 'app', 'cnc'],
            checks: [
              { name: 'orders', component: 'app', url: `${base}/{region}/app` },
              { name: 'reports', component: 'analytics', url: `${base}/{region}/analytics` },
            ],
          },
        },
      );
      await eventually(
        async () => control.controller.state().mode.type === 'health',
        'the controller following health',
      );

      down.add('/us-east/analytics');
      await new Promise((r) => setTimeout(r, 4 * FAILOVER.intervalMs * FAILOVER.failureThreshold));
      expect(control.controller.state()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
      expect(await resolveMqtt(control)).toEqual([EAST]);

      down.add('/us-east/app');
      await eventually(
        async () => (await resolveMqtt(control).catch(() => []))[0] === WEST,
        'us-west answered',
      );
      const state = control.controller.state();
      expect(state).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
      expect(state.lastSwitch?.trigger).toMatchObject({ type: 'health', region: 'us-east' });
    } finally {
      services.close();
    }
  });

  it.each(['cnc', 'analytics'])(
    'moves within interval × threshold + timeout + 500 ms when a critical %s checkpoint of the primary starts failing',
    async (component) => {
      const { down, base, services } = await startServices();
      try {
        // The default critical components: broker, app, cnc, analytics.
        const { control } = await start(
          {},
          {
            health: {
              checks: [{ name: `${component}-probe`, component, url: `${base}/{region}/${component}` }],
            },
          },
        );
        await eventually(
          async () => control.controller.state().mode.type === 'health',
          'the controller following health',
        );
        const failingAt = Date.now();
        down.add(`/us-east/${component}`);
        let movedAt = 0;
        await eventually(async () => {
          if ((await resolveMqtt(control).catch(() => []))[0] === WEST) movedAt = Date.now();
          return movedAt > 0;
        }, 'us-west answered');
        expect(movedAt - failingAt).toBeLessThan(
          FAILOVER.intervalMs * FAILOVER.failureThreshold + FAILOVER.timeoutMs + 500,
        );
        const event = control.controller.state().lastSwitch;
        expect(event?.trigger).toMatchObject({ type: 'health', region: 'us-east' });
      } finally {
        services.close();
      }
    },
  );

  it('keeps its decision across a restart, and answers it from the first query', async () => {
    const { control: first } = await start();
    await eventually(
      async () => first.controller.state().mode.type === 'health',
      'the controller following health',
    );
    expect((await cli('failover', '--to', 'us-west', '--reason', 'maintenance')).code).toBe(0);
    expect(await resolveMqtt(first)).toEqual([WEST]);
    await first.stop();

    if (!cluster) throw new Error('no cluster');
    control = await startControl({
      config: cluster.config,
      stateDir: cluster.stateDir,
      logger: createLogger({ level: 'silent' }),
    });
    expect(await resolveMqtt(control)).toEqual([WEST]);
    expect(control.controller.state()).toMatchObject({
      activeRegion: 'us-west',
      epoch: 1,
      mode: { type: 'override', override: { region: 'us-west', reason: 'maintenance' } },
    });
    // Healthy regions and time passing do not undo a routing control.
    await new Promise((r) => setTimeout(r, 4 * FAILOVER.intervalMs * FAILOVER.recoveryThreshold));
    expect(control.controller.state()).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
  });

  it('publishes the failover notice to a device on the secondary and disconnects the devices still on the primary', async () => {
    const { east, control } = await start();
    if (!cluster) throw new Error('no cluster');
    const west = cluster.regions['us-west'] as ClusterRegion;
    const onEast = await provision(east, 'meter-on-east');
    const onWest = await provision(east, 'meter-on-west');
    // Provisioned in us-east, the device's identity reaches us-west by replication.
    let westClient: MqttClient | undefined;
    await eventually(async () => {
      westClient = await connect(west, onWest).catch(() => undefined);
      return westClient !== undefined;
    }, 'the us-west device connecting with its replicated identity');
    const onWestClient = westClient;
    if (!onWestClient) throw new Error('unreachable');
    const eastClient = await connect(east, onEast);
    try {
      await onWestClient.subscribeAsync(FAILOVER_NOTICE_TOPIC, { qos: 1 });
      const notice = new Promise<Record<string, unknown>>((resolve) =>
        onWestClient.on('message', (topic, payload) => {
          if (topic === FAILOVER_NOTICE_TOPIC) resolve(JSON.parse(payload.toString()));
        }),
      );
      const closed = new Promise<void>((resolve) => eastClient.once('close', () => resolve()));
      await eventually(
        async () => control.controller.state().mode.type === 'health',
        'the controller following health',
      );

      expect((await cli('failover', '--to', 'us-west', '--reason', 'notice drill')).code).toBe(0);
      expect(await notice).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
      await closed;
      expect(eastClient.connected).toBe(false);
      expect(onWestClient.connected).toBe(true);

      await eventually(
        async () => control.controller.state().lastSwitch?.timings.disconnectsRequestedAt != null,
        'the disconnect recorded on the switch',
      );
      expect(control.controller.state().lastSwitch?.timings.noticesPublishedAt).toEqual(expect.any(Number));
      const events = await fetch(`${control.controlUrl}/v1/failover/events?type=switch`, {
        headers: { authorization: `Bearer ${cluster.adminToken}` },
      });
      const last = ((await events.json()) as { items: any[] }).items.at(-1);
      expect(last.steps.disconnectsRequested).toMatchObject({ region: 'us-east', ok: true, disconnected: 1 });
      expect(last.steps.noticesPublished).toMatchObject({ 'us-east': { ok: true }, 'us-west': { ok: true } });
    } finally {
      await onWestClient.endAsync(true);
      await eastClient.endAsync(true);
    }
  });

  it('keeps more DNS servers on the decision, and one that loses the controller serves the last one and says so', async () => {
    const [portA, httpA, portB, httpB] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const servers = [
      { name: 'ns-east', address: '127.0.0.1', port: portA, httpPort: httpA },
      { name: 'ns-west', address: '127.0.0.1', port: portB, httpPort: httpB },
    ];
    const { control: first } = await start(
      {},
      { dns: { address: '127.0.0.1', port: await freePort(), servers } },
    );
    if (!cluster) throw new Error('no cluster');
    const stateDir = cluster.stateDir;
    // ns-west is a real `iotdr dns` process; ns-east runs here, so the test can restart it.
    const westProcess = spawnIotdr(['dns', '--name', 'ns-west', '--config', await configFile()], {
      IOTDR_HOME: stateDir,
    });
    let east: RunningNameServer | undefined;
    const startEast = () =>
      startNameServer({
        config: cluster?.config ?? (undefined as never),
        stateDir,
        name: 'ns-east',
        logger: createLogger({ level: 'silent' }),
        waitMs: 1000,
      });
    try {
      east = await startEast();
      await waitForHttp(`https://127.0.0.1:${httpB}/health`, westProcess);
      const nsWest = { dns: { port: portB } };
      await eventually(
        async () =>
          (await resolveMqtt(east as RunningNameServer))[0] === EAST &&
          (await resolveMqtt(nsWest))[0] === EAST,
        'both servers answering us-east',
      );
      // The zone names every server.
      const resolver = new Resolver({ timeout: 500, tries: 1 });
      resolver.setServers([`127.0.0.1:${portA}`]);
      expect((await resolver.resolveNs('iot.test')).sort()).toEqual([
        'ns-east.iot.test',
        'ns-west.iot.test',
        'ns.iot.test',
      ]);

      expect((await cli('failover', '--to', 'us-west', '--reason', 'maintenance')).code).toBe(0);
      await eventually(
        async () =>
          (await resolveMqtt(east as RunningNameServer))[0] === WEST &&
          (await resolveMqtt(nsWest))[0] === WEST,
        'both servers answering us-west',
      );
      expect((await healthOf(east.httpUrl)).body.status).toBe('pass');

      // The controller goes away: both keep answering us-west, and their health says why it is a warning.
      await first.stop();
      control = undefined;
      for (const url of [east.httpUrl, `https://127.0.0.1:${httpB}`]) {
        await eventually(async () => (await healthOf(url)).body.status === 'warn', `${url} warning`);
        const { code, body } = await healthOf(url);
        expect(code).toBe(200);
        expect(body.checks['control:reachability'][0].output).toMatch(
          /is unreachable since .*serving the last decision: us-west \(127\.0\.0\.22\) at epoch 1/,
        );
      }
      expect(await resolveMqtt(east)).toEqual([WEST]);
      expect(await resolveMqtt(nsWest)).toEqual([WEST]);

      // Restarted without a controller, ns-east answers the kept decision from its first query.
      await east.stop();
      east = await startEast();
      expect(await resolveMqtt(east)).toEqual([WEST]);
      const restored = await healthOf(east.httpUrl);
      expect(restored.body.status).toBe('warn');
      expect(restored.body.checks['control:reachability'][0].output).toContain('restored from disk');

      // The controller is back, with its persisted decision: both confirm it.
      control = await startControl({
        config: cluster.config,
        stateDir,
        logger: createLogger({ level: 'silent' }),
      });
      for (const url of [east.httpUrl, `https://127.0.0.1:${httpB}`])
        await eventually(async () => (await healthOf(url)).body.status === 'pass', `${url} passing again`);
      const status = await (await fetch(`${east.httpUrl}/v1/dns/status`)).json();
      expect(status).toMatchObject({
        controller: 'connected',
        restored: false,
        serving: { region: 'us-west', epoch: 1 },
      });
    } finally {
      await east?.stop();
      westProcess.child.kill('SIGTERM');
      await westProcess.exited;
    }
  });

  it.skipIf(PDNS_SKIP !== undefined)(
    'drives a real PowerDNS with dns.provider powerdns, extra names included, beside its own DNS',
    async () => {
      const pdns = await startPowerDns();
      if ('skipped' in pdns) throw new Error(pdns.skipped);
      try {
        const stateDir = await mkdtemp(join(tmpdir(), 'iotdr-pdns-key-'));
        const keyFile = join(stateDir, 'pdns.key');
        await writeFile(keyFile, `${pdns.apiKey}\n`, { mode: 0o600 });
        const { control } = await start(
          {},
          {
            dns: {
              address: '127.0.0.1',
              port: await freePort(),
              provider: 'powerdns',
              extraNames: ['telemetry'],
              powerdns: { url: pdns.url, apiKeyFile: keyFile },
            },
          },
        );
        const resolver = new Resolver({ timeout: 500, tries: 1 });
        resolver.setServers([`127.0.0.1:${pdns.dnsPort}`]);
        const answers = async () =>
          Promise.all(
            ['mqtt', 'api', 'telemetry'].map((n) => resolver.resolve4(`${n}.iot.test`).catch(() => [])),
          );
        await eventually(
          async () => (await answers()).every((a) => a[0] === EAST),
          'PowerDNS answering us-east for every fleet name',
        );
        expect((await cli('failover', '--to', 'us-west', '--reason', 'pdns drill')).code).toBe(0);
        await eventually(
          async () => (await answers()).every((a) => a[0] === WEST),
          'PowerDNS answering us-west for every fleet name',
        );
        expect(await resolveMqtt(control)).toEqual([WEST]);
        const txt = (await resolver.resolveTxt('_iotdr.mqtt.iot.test')).map((r) => r.join(''));
        expect(txt[0]).toContain('epoch=1');
        expect(control.controller.state().lastSwitch?.steps.dnsUpdated).toMatchObject({
          sinks: { builtin: 'ok', powerdns: 'ok', followers: 'ok' },
        });
      } finally {
        await pdns.stop();
      }
    },
  );
});
