/**
 * `iotdr devices` as an operator uses it: through api.<zone> resolved by the control plane's DNS,
 * a bulk list with a bad line refused whole, then onboarded in part with progress, a report and the
 * keys saved; then the device suspended, resumed, commanded and decommissioned.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { type RunningControl, startControl } from '../../src/processes/index.js';
import { type Cluster, type ClusterRegion, clusterCli, startCluster } from '../harness/cluster.js';
import { connect } from '../harness/devices.js';
import { freePort } from '../harness/process.js';

describe('iotdr devices', () => {
  let cluster: Cluster;
  let control: RunningControl;

  beforeAll(async () => {
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        addresses: ['127.0.0.61', '127.0.0.62'],
        cncPort: await freePort(),
        config: {
          control: { address: '127.0.0.1', port: await freePort() },
          dns: { address: '127.0.0.1', port: await freePort() },
        },
      },
    );
    control = await startControl({
      config: cluster.config,
      stateDir: cluster.stateDir,
      logger: createLogger({ level: 'silent' }),
    });
    const east = cluster.regions['us-east'] as ClusterRegion;
    expect(
      (await east.call('PUT', '/v1/policies/meter', { policyDocument: DEVICE_POLICY_TEMPLATE() })).status,
    ).toBe(201);
  });

  afterAll(async () => {
    await control?.stop();
    await cluster?.close();
  });

  function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    return clusterCli(cluster, ['devices', ...args]);
  }

  it('refuses a bad list whole, then onboards the valid part with progress, a report and the keys', async () => {
    const lines = ['thingName,attributes'];
    for (let i = 0; i < 200; i++) lines.push(`gauge-${i},site=a`);
    lines.push('gauge 200,site=a');
    const file = join(cluster.stateDir, 'gauges.csv');
    await writeFile(file, lines.join('\n'));

    const refused = await cli('onboard', '--file', file, '--template', 'meter');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('nothing was onboarded');
    expect(refused.err).toMatch(/line 202\.thingName: /);
    expect((await cli('show', 'gauge-0')).code).toBe(1);

    const out = join(cluster.stateDir, 'keys');
    const partial = await cli('onboard', '--file', file, '--template', 'meter', '--partial', '--out', out);
    expect(partial.code).toBe(1);
    expect(partial.out).toMatch(
      /job [0-9a-f-]{36}: 200 device\(s\) to onboard through api\.iot\.test \(us-east\)/,
    );
    expect(partial.out).toMatch(/\[#{20}\] 100% 200\/200, 0 failed/);
    expect(partial.out).toMatch(/completed-with-errors\s+200\s+200\s+0\s+1/);
    expect(partial.out).toMatch(/rejected line 202\.thingName: /);
    expect(partial.out).toContain(`200 certificate(s) and key(s) in ${out}`);
    expect((await readdir(out)).length).toBe(400);
    expect((await stat(join(out, 'gauge-7.key.pem'))).mode & 0o777).toBe(0o600);

    // The saved certificate and key connect the device.
    const device = {
      thingName: 'gauge-7',
      certificateId: '',
      certPem: await readFile(join(out, 'gauge-7.cert.pem'), 'utf8'),
      keyPem: await readFile(join(out, 'gauge-7.key.pem'), 'utf8'),
    };
    const client = await connect(cluster.regions['us-east'] as ClusterRegion, device);
    try {
      client.on('message', (topic, payload) => {
        if (topic.endsWith('/reply')) return;
        const { commandId } = JSON.parse(payload.toString()) as { commandId: string };
        void client.publishAsync(
          `${topic}/${commandId}/reply`,
          JSON.stringify({ status: 'succeeded', result: { id: commandId.length } }),
          { qos: 1 },
        );
      });
      await client.subscribeAsync('$iotdr/things/gauge-7/commands', { qos: 1 });
      const command = await cli('command', 'gauge-7', '--name', 'ping', '--payload', '{"n":1}');
      expect(command.code).toBe(0);
      expect(command.out).toMatch(/succeeded \(by us-east\)/);
      expect(command.out).toContain('{"id":36}');

      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      const suspended = await cli('suspend', 'gauge-7');
      expect(suspended.out).toMatch(/gauge-7: [0-9a-f]{12}… INACTIVE/);
      await closed;
    } finally {
      await client.endAsync(true);
    }
    expect((await cli('show', 'gauge-7')).out).toContain('gauge-7: suspended; groups -');
    expect((await cli('resume', 'gauge-7')).out).toContain('ACTIVE');
    const gone = await cli('decommission', 'gauge-7');
    expect(gone.out).toBe('gauge-7 decommissioned: 1 certificate(s), 0 membership(s), 1 command(s) removed');
    const missing = await cli('show', 'gauge-7');
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("no device 'gauge-7'");
    expect((await cli('onboard', 'gauge-9')).code).toBe(2);
  }, 60_000);
});
