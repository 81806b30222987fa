// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InboundMessage } from '../../src/broker/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import {
  closed,
  collect,
  connect,
  connectDevice,
  type Device,
  endAll,
  eventually,
  nextMessage,
  provisionDevice,
  refusal,
  selfSignedDevice,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
  ZONE,
} from './support.js';

describe('broker: mutual TLS and policies from the registry', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  let device: Device;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry);
    device = await provisionDevice(registry.service, 'sensor-1');
  });
  afterAll(async () => {
    await endAll(clients);
    await broker?.close();
    await registry?.close();
  });

  async function open(d: Pick<Device, 'certPem' | 'keyPem'>, clientId: string): Promise<MqttClient> {
    const client = await connectDevice(broker.port, registry.ca, d, clientId);
    clients.push(client);
    return client;
  }

  it('lets a device connect, subscribe and publish within its policy, and hands the message to onMessage', async () => {
    const seen: InboundMessage[] = [];
    const off = broker.broker.onMessage((m) => {
      seen.push(m);
    });
    const client = await open(device, 'sensor-1');
    expect(await subscribe(client, 'devices/sensor-1/#')).toEqual([1]);
    const received = nextMessage(client, 'devices/sensor-1/telemetry');
    await client.publishAsync('devices/sensor-1/telemetry', JSON.stringify({ messageId: 'm-1', t: 21 }), {
      qos: 1,
    });
    expect(JSON.parse((await received).toString())).toEqual({ messageId: 'm-1', t: 21 });
    await eventually(async () => seen.length > 0, 'onMessage');
    expect(seen[0]).toMatchObject({
      topic: 'devices/sensor-1/telemetry',
      qos: 1,
      retain: false,
      clientId: 'sensor-1',
      thingName: 'sensor-1',
      messageId: 'm-1',
    });
    off();
  });

  it('acknowledges a QoS1 message only after its listeners took it; a failing listener gets no PUBACK', async () => {
    let release: () => void = () => {};
    const taken = new Promise<void>((resolve) => {
      release = resolve;
    });
    let fail = false;
    const off = broker.broker.onMessage(async () => {
      if (fail) throw new Error('bus unavailable');
      await taken;
    });
    const client = await open(device, 'sensor-1');
    try {
      let acked = false;
      const publish = client.publishAsync('devices/sensor-1/telemetry', '{"t":1}', { qos: 1 }).then(() => {
        acked = true;
      });
      await new Promise((r) => setTimeout(r, 200));
      expect(acked).toBe(false);
      release();
      await publish;
      expect(acked).toBe(true);

      fail = true;
      const gone = closed(client);
      const refused = client.publishAsync('devices/sensor-1/telemetry', '{"t":2}', { qos: 1 });
      refused.catch(() => {});
      await gone;
    } finally {
      off();
      await client.endAsync(true);
    }
  });

  it('refuses a subscription outside the policy with SUBACK 0x80 and keeps the session', async () => {
    const client = await open(device, 'sensor-1');
    expect(await subscribe(client, 'devices/other/#')).toEqual([128]);
    expect(await subscribe(client, '#')).toEqual([128]);
    expect(client.connected).toBe(true);
    await client.publishAsync('devices/sensor-1/still-ok', 'x', { qos: 1 });
    expect(broker.logs.refusals('subscribe_denied').length).toBeGreaterThanOrEqual(2);
  });

  it('closes the connection on a PUBLISH outside the policy', async () => {
    const client = await open(device, 'sensor-1');
    const gone = closed(client);
    client.publish('devices/other/telemetry', 'x', { qos: 1 });
    await gone;
    const line = broker.logs.refusals('publish_denied').at(-1);
    expect(line?.detail).toMatch(/iot:Publish topic\/devices\/other\/telemetry: not allowed by any policy/);
  });

  it('closes the connection on a retained PUBLISH without iot:RetainPublish', async () => {
    const client = await open(device, 'sensor-1');
    const gone = closed(client);
    client.publish('devices/sensor-1/state', 'x', { qos: 1, retain: true });
    await gone;
    expect(broker.logs.refusals('publish_denied').at(-1)?.detail).toMatch(/iot:RetainPublish/);
  });

  it('refuses a client id the policy does not allow with CONNACK 5', async () => {
    expect(await refusal(connectDevice(broker.port, registry.ca, device, 'someone-else'))).toBe(5);
    expect(broker.logs.refusals('connect_denied').length).toBeGreaterThan(0);
  });

  it('refuses unknown, INACTIVE and REVOKED certificates with CONNACK 5', async () => {
    const unknown = await registry.ca.issueDeviceCertificate();
    expect(
      await refusal(
        connectDevice(
          broker.port,
          registry.ca,
          { certPem: unknown.certificatePem, keyPem: unknown.privateKeyPem },
          'x',
        ),
      ),
    ).toBe(5);
    expect(broker.logs.refusals('not_authorized').at(-1)?.detail).toBe('certificate not registered');

    const inactive = await provisionDevice(registry.service, 'sensor-inactive');
    await registry.service.updateCertificateStatus(inactive.certificateId, { status: 'INACTIVE' });
    expect(await refusal(connectDevice(broker.port, registry.ca, inactive, 'sensor-inactive'))).toBe(5);
    expect(broker.logs.refusals('not_authorized').at(-1)?.detail).toBe('certificate is INACTIVE');

    const revoked = await provisionDevice(registry.service, 'sensor-revoked');
    await registry.service.updateCertificateStatus(revoked.certificateId, { status: 'REVOKED' });
    expect(await refusal(connectDevice(broker.port, registry.ca, revoked, 'sensor-revoked'))).toBe(5);
    expect(broker.logs.refusals('not_authorized').at(-1)?.detail).toBe('certificate is REVOKED');

    const pending = await provisionDevice(registry.service, 'sensor-pending');
    await registry.service.updateCertificateStatus(pending.certificateId, { status: 'PENDING_ACTIVATION' });
    expect(await refusal(connectDevice(broker.port, registry.ca, pending, 'sensor-pending'))).toBe(5);
  });

  it('refuses a connection without a client certificate', async () => {
    expect(
      await refusal(connect({ port: broker.port, ca: registry.ca.certificatePem, clientId: 'anon' })),
    ).toBe(5);
    expect(broker.logs.refusals('not_authorized').at(-1)?.detail).toBe('no client certificate');
  });

  it('accepts a device whose certificate a user-registered CA signed, while that CA is ACTIVE', async () => {
    const other = await loadOrCreateCa(join(registry.dir, 'user-ca'));
    await registry.service.registerCaCertificate({ caCertificatePem: other.certificatePem });
    const issued = await other.issueDeviceCertificate();
    const registered = await registry.service.registerCertificate({
      certificatePem: issued.certificatePem,
      caCertificatePem: other.certificatePem,
    });
    expect(registered.item.caCertificateId).toBe(other.certificateId);
    await registry.service.putThing('byoca-1', {});
    await registry.service.attachCertificate('byoca-1', issued.certificateId);
    await registry.service.attachPolicy(issued.certificateId, 'sensor-1-policy');
    const creds = { certPem: issued.certificatePem, keyPem: issued.privateKeyPem };
    const client = await open(creds, 'byoca-1');
    await client.publishAsync('devices/byoca-1/telemetry', 'x', { qos: 1 });
    await client.endAsync();
    await registry.service.updateCaCertificateStatus(other.certificateId, { status: 'INACTIVE' });
    expect(await refusal(connectDevice(broker.port, registry.ca, creds, 'byoca-1'))).toBe(5);
    expect(broker.logs.refusals('not_authorized').at(-1)?.detail).toMatch(
      /CA certificate [0-9a-f]{64} is INACTIVE/,
    );
  });

  it('accepts a self-signed certificate registered on its own', async () => {
    const creds = await selfSignedDevice('self-1');
    const registered = await registry.service.registerCertificate({ certificatePem: creds.certPem });
    expect(registered.item.caCertificateId).toBeNull();
    await registry.service.putThing('self-1', {});
    await registry.service.attachCertificate('self-1', registered.item.certificateId);
    await registry.service.attachPolicy(registered.item.certificateId, 'sensor-1-policy');
    const client = await open(creds, 'self-1');
    expect(await subscribe(client, 'devices/self-1/#')).toEqual([1]);
  });

  it('filters deliveries the subscriber may not receive (iot:Receive)', async () => {
    const policy = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/${iot:ClientId}' },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: 'topicfilter/common/*' },
        { Effect: 'Allow', Action: 'iot:Receive', Resource: 'topic/common/public' },
      ],
    };
    const listener = await provisionDevice(registry.service, 'listener-1', policy);
    const client = await open(listener, 'listener-1');
    const got = collect(client);
    expect(await subscribe(client, 'common/#')).toEqual([1]);
    await broker.broker.publish('common/secret', 'no', { qos: 1 });
    await broker.broker.publish('common/public', 'yes', { qos: 1 });
    await eventually(async () => got.length > 0, 'the public message');
    await broker.broker.publish('common/public', 'again', { qos: 1 });
    await eventually(async () => got.length > 1, 'the second public message');
    expect(got.map((m) => m.payload)).toEqual(['yes', 'again']);
    expect(
      broker.logs.refusals('receive_denied').some((l) => String(l.detail).includes('common/secret')),
    ).toBe(true);
  });

  it('presents a server certificate valid for mqtt.<zone> and api.<zone>, signed by the embedded CA', async () => {
    for (const servername of [`mqtt.${ZONE}`, `api.${ZONE}`]) {
      const client = await connect({
        port: broker.port,
        ca: registry.ca.certificatePem,
        cert: device.certPem,
        key: device.keyPem,
        clientId: 'sensor-1',
        servername,
      });
      await client.endAsync();
    }
    const error = await new Promise<Error | undefined>((resolve) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port: broker.port,
        servername: 'evil.example',
        ca: [registry.ca.certificatePem],
      });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('error', (e) => resolve(e));
    });
    expect(error?.message).toMatch(/evil\.example/);
  });
});
