/**
 * Command and control across a failover, as a console sees it: every request goes to `api.<zone>`
 * resolved by the built-in DNS of `iotdr control`, and the device connects to `mqtt.<zone>`.
 */
import { Resolver } from 'node:dns/promises';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { type RunningControl, startControl } from '../../src/processes/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { connect, type Device } from '../harness/devices.js';
import { fetch } from '../harness/https.js';
import { freePort } from '../harness/process.js';

const EAST = '127.0.0.31';
const WEST = '127.0.0.32';
const TEMPLATE = 'fleet-device';

describe('command and control through api.<zone> across a failover', () => {
  let cluster: Cluster;
  let control: RunningControl;
  let cncPort: number;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    cncPort = await freePort();
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        addresses: [EAST, WEST],
        cncPort,
        config: {
          failover: { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 2 },
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
      (await east.call('PUT', `/v1/policies/${TEMPLATE}`, { policyDocument: DEVICE_POLICY_TEMPLATE() }))
        .status,
    ).toBe(201);
  });

  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await control?.stop();
    await cluster?.close();
  });

  /** What `api.iot.test` answers now, asked of the control plane's DNS. */
  async function apiAddress(): Promise<string> {
    const resolver = new Resolver({ timeout: 500, tries: 1 });
    resolver.setServers([`127.0.0.1:${control.dns.port}`]);
    const [address] = await resolver.resolve4('api.iot.test');
    if (!address) throw new Error('no address');
    return address;
  }

  /** A console request to api.<zone>: the name resolved now, the command-and-control port. */
  async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`http://${await apiAddress()}:${cncPort}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${cluster.adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  }

  function regionAt(address: string): ClusterRegion {
    return cluster.regions[address === EAST ? 'us-east' : 'us-west'] as ClusterRegion;
  }

  async function deviceClient(device: Device): Promise<MqttClient> {
    let client: MqttClient | undefined;
    await eventually(async () => {
      client = await connect(regionAt(await apiAddress()), device).catch(() => undefined);
      return client !== undefined;
    }, `${device.thingName} connecting`);
    if (!client) throw new Error('unreachable');
    clients.push(client);
    return client;
  }

  it('onboards, fails over, then suspends and commands the device in the secondary, replaying a retried onboarding', async () => {
    expect(await apiAddress()).toBe(EAST);
    const request = { thingName: 'pump-7', template: TEMPLATE };
    const first = await api('POST', '/v1/devices', request, { 'idempotency-key': 'onboard-pump-7' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ thingName: 'pump-7', template: TEMPLATE, groups: [] });
    expect(first.body.privateKeyPem).toContain('PRIVATE KEY');
    const device: Device = {
      thingName: 'pump-7',
      certificateId: first.body.certificateId,
      certPem: first.body.certificatePem,
      keyPem: first.body.privateKeyPem,
    };
    // A command issued before the failover, while the device is offline.
    const early = await api('POST', '/v1/devices/pump-7/commands', {
      name: 'calibrate',
      payload: { zero: true },
    });
    expect(early.status).toBe(201);
    expect(early.body.state).toBe('pending');

    // The operator moves the fleet; api.<zone> now answers us-west.
    const moved = await fetch(`${control.controlUrl}/v1/failover/switch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'us-west', reason: 'drill' }),
    });
    expect(moved.status).toBe(200);
    expect(await apiAddress()).toBe(WEST);

    // The console retries its onboarding (it never saw the answer): the first answer, not a second device.
    let replay: Awaited<ReturnType<typeof api>> | undefined;
    await eventually(async () => {
      replay = await api('POST', '/v1/devices', request, { 'idempotency-key': 'onboard-pump-7' });
      return replay.status === 201;
    }, 'the replicated idempotency record answering in us-west');
    expect(replay?.headers.get('idempotent-replayed')).toBe('true');
    expect(replay?.body).toMatchObject({ certificateId: device.certificateId, privateKeyWithheld: true });
    expect(replay?.body.privateKeyPem).toBeUndefined();
    const detail = await api('GET', '/v1/devices/pump-7');
    expect(detail.body.certificates).toHaveLength(1);
    // The same key for another request is refused.
    const misuse = await api(
      'POST',
      '/v1/devices',
      { ...request, thingName: 'pump-8' },
      { 'idempotency-key': 'onboard-pump-7' },
    );
    expect(misuse.status).toBe(422);
    expect(misuse.body.code).toBe('IOTDR_CNC_IDEMPOTENCY_MISMATCH');

    // The device follows the name to us-west and takes the command issued in us-east.
    const client = await deviceClient(device);
    const received: Array<{ topic: string; body: any }> = [];
    client.on('message', (topic, payload) => {
      const body = JSON.parse(payload.toString());
      received.push({ topic, body });
      if (topic === '$iotdr/things/pump-7/commands')
        void client.publishAsync(
          `${topic}/${body.commandId}/reply`,
          JSON.stringify({ status: 'succeeded', result: { took: body.name } }),
          {
            qos: 1,
          },
        );
    });
    await client.subscribeAsync('$iotdr/things/pump-7/commands', { qos: 1 });
    await eventually(
      async () => (await api('GET', `/v1/commands/${early.body.commandId}`)).body.state === 'succeeded',
      'the early command answered',
    );
    const done = await api('GET', `/v1/commands/${early.body.commandId}`);
    expect(done.body).toMatchObject({
      state: 'succeeded',
      deliveredBy: 'us-west',
      region: 'us-east',
      result: { took: 'calibrate' },
    });

    // A command issued now, through the same name, reaches the device in us-west.
    const now = await api(
      'POST',
      '/v1/devices/pump-7/commands',
      { name: 'reboot' },
      { 'idempotency-key': 'reboot-1' },
    );
    expect(now.status).toBe(201);
    const again = await api(
      'POST',
      '/v1/devices/pump-7/commands',
      { name: 'reboot' },
      { 'idempotency-key': 'reboot-1' },
    );
    expect(again.body.commandId).toBe(now.body.commandId);
    await eventually(
      async () => (await api('GET', `/v1/commands/${now.body.commandId}`)).body.state === 'succeeded',
      'reboot answered',
    );
    expect(received.filter((m) => m.body.name === 'reboot')).toHaveLength(1);
    const history = await api('GET', '/v1/devices/pump-7/commands');
    expect(history.body.items.map((c: { name: string }) => c.name)).toEqual(['reboot', 'calibrate']);

    // Suspension closes the device's live session and refuses it from then on, in both regions.
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const suspended = await api('POST', '/v1/devices/pump-7/suspend');
    expect(suspended.status).toBe(200);
    expect(suspended.body.certificates).toEqual([
      { certificateId: device.certificateId, status: 'INACTIVE' },
    ]);
    await closed;
    await expect(connect(regionAt(WEST), device)).rejects.toThrow();
    await eventually(async () => {
      const east = await regionAt(EAST).call('GET', `/v1/certificates/${device.certificateId}`);
      return east.body.status === 'INACTIVE';
    }, 'the suspension replicated to us-east');
    await expect(connect(regionAt(EAST), device)).rejects.toThrow();
    expect((await api('GET', '/v1/devices/pump-7')).body.state).toBe('suspended');

    const resumed = await api('POST', '/v1/devices/pump-7/resume');
    expect(resumed.body.certificates[0].status).toBe('ACTIVE');
    clients.push(await connect(regionAt(WEST), device));
  });
});
