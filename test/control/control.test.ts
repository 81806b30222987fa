/**
 * `iotdr control` over two real regions: the checker probes their /health, the controller decides,
 * and the built-in DNS answers — asked with real DNS queries.
 */
import { Resolver } from 'node:dns/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { type RunningControl, startControl } from '../../src/control.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';

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

  async function start(): Promise<{ east: ClusterRegion; control: RunningControl }> {
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        addresses: [EAST, WEST],
        config: { failover: FAILOVER },
      },
    );
    const east = cluster.regions['us-east'] as ClusterRegion;
    control = await startControl({
      config: cluster.config,
      stateDir: cluster.stateDir,
      logger: createLogger({ level: 'silent' }),
      listen: { host: '127.0.0.1', port: 0 },
      dnsListen: { host: '127.0.0.1', port: 0 },
    });
    return { east, control };
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
});
