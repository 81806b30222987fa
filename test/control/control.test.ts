/**
 * `iotdr control` over two real regions: the checker probes their /health, the controller decides,
 * and the built-in DNS answers — asked with real DNS queries.
 */
import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { createLogger } from '../../src/common/index.js';
import { checkerTokenPath, type RunningControl, startControl } from '../../src/control.js';
import { Checker, HttpObservationSink } from '../../src/failover/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { freePort, spawnIotdr } from '../harness/process.js';

const EAST = '127.0.0.21';
const WEST = '127.0.0.22';
const FAILOVER = { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 2 };

async function resolveMqtt(control: RunningControl): Promise<string[]> {
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([`127.0.0.1:${control.dns.port}`]);
  return resolver.resolve4('mqtt.iot.test');
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
    const configPath = join(cluster.stateDir, 'iotdr.yaml');
    // JSON is YAML.
    await writeFile(configPath, JSON.stringify(cluster.configYaml));
    return configPath;
  }

  /** Runs `iotdr ARGS --config FILE` in this process against the cluster's state directory. */
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    if (!cluster) throw new Error('no cluster');
    const configPath = await configFile();
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      env: { IOTDR_HOME: cluster.stateDir },
      cwd: cluster.stateDir,
    };
    const code = await main([...args, '--config', configPath], io);
    return { code, out: out.join('\n'), err: err.join('\n') };
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
    // A checker whose own network cannot reach us-east: nothing listens where it probes.
    const cutOff = new Checker({
      id: 'cut-off',
      regions: [
        { name: 'us-east', url: `http://127.0.0.1:${await freePort()}` },
        { name: 'us-west', url: west.url },
      ],
      sink: new HttpObservationSink({
        controlUrl: control.controlUrl,
        token: (await readFile(checkerTokenPath(cluster.stateDir), 'utf8')).trim(),
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
    const down = new Set<string>();
    const services = createServer((req, res) => {
      res.writeHead(down.has(req.url ?? '') ? 503 : 200).end();
    });
    services.listen(0, '127.0.0.1');
    await once(services, 'listening');
    const base = `http://127.0.0.1:${(services.address() as AddressInfo).port}`;
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
});
