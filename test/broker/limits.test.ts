import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerCheckpoint, HealthService } from '../../src/health/index.js';
import {
  ALLOW_ALL,
  closed,
  connectDevice,
  type Device,
  endAll,
  eventually,
  provisionDevice,
  refusal,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
  ZONE,
} from './support.js';

/** A raw TLS connection with a device certificate, to send bytes no MQTT client would. */
async function rawTls(port: number, ca: string, device: Device): Promise<TLSSocket> {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    servername: `mqtt.${ZONE}`,
    ca: [ca],
    cert: device.certPem,
    key: device.keyPem,
  });
  await once(socket, 'secureConnect');
  socket.on('error', () => undefined);
  // Read (and drop) what the broker answers, so that its close is seen.
  socket.resume();
  return socket;
}

function socketClosed(socket: Socket): Promise<void> {
  return socket.destroyed || socket.closed ? Promise.resolve() : once(socket, 'close').then(() => undefined);
}

/** A valid MQTT 3.1.1 CONNECT for `clientId` (clean session, keepalive 30 s). */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([
    Buffer.from([0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x1e]),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

describe('broker: limits and malformed input', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  let device: Device;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry, {
      limits: { maxPayloadBytes: 1024, maxTopicLength: 64, maxTopicLevels: 4, connectTimeoutMs: 500 },
    });
    device = await provisionDevice(registry.service, 'limit-1', ALLOW_ALL);
  });
  afterAll(async () => {
    await endAll(clients);
    await broker?.close();
    await registry?.close();
  });

  async function open(clientId = 'limit-1'): Promise<MqttClient> {
    const client = await connectDevice(broker.port, registry.ca, device, clientId);
    clients.push(client);
    return client;
  }

  /** The broker still serves: a fresh client connects, subscribes, and receives its own message. */
  async function stillServing(): Promise<void> {
    const client = await open('limit-check');
    expect(await subscribe(client, 'check/#')).toEqual([1]);
    const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
    await client.publishAsync('check/ok', 'ok', { qos: 1 });
    expect(await got).toBe('ok');
    await client.endAsync();
  }

  it('closes the connection on a payload over maxPayloadBytes', async () => {
    const client = await open();
    await client.publishAsync('a/b', Buffer.alloc(1024), { qos: 1 });
    const gone = closed(client);
    client.publish('a/b', Buffer.alloc(1025), { qos: 1 });
    await gone;
    expect(broker.logs.refusals('payload_too_large').at(-1)?.detail).toBe(
      'payload of 1025 bytes exceeds the limit of 1024',
    );
    await stillServing();
  });

  it('refuses a packet announcing a huge body before the body is sent', async () => {
    const socket = await rawTls(broker.port, registry.ca.certificatePem, device);
    socket.write(connectPacket('limit-raw'));
    // PUBLISH announcing 200 MB; none of it follows.
    socket.write(Buffer.from([0x30, 0x80, 0x80, 0xe8, 0x5f]));
    await socketClosed(socket);
    expect(broker.logs.refusals('packet_too_large').at(-1)?.detail).toMatch(/packet of 200\d+ bytes exceeds/);
    await stillServing();
  });

  it('refuses topics over maxTopicLength or maxTopicLevels: SUBACK 0x80, PUBLISH closes', async () => {
    const client = await open();
    expect(await subscribe(client, `t/${'x'.repeat(70)}`)).toEqual([128]);
    expect(await subscribe(client, 'a/b/c/d/e')).toEqual([128]);
    expect(await subscribe(client, 'a/b/c/#')).toEqual([1]);
    const gone = closed(client);
    client.publish('a/b/c/d/e', 'x', { qos: 1 });
    await gone;
    const again = await open();
    const goneAgain = closed(again);
    again.publish(`t/${'x'.repeat(70)}`, 'x', { qos: 1 });
    await goneAgain;
    expect(broker.logs.refusals('topic_too_deep').length).toBeGreaterThanOrEqual(2);
    expect(broker.logs.refusals('topic_too_long').length).toBeGreaterThanOrEqual(2);
  });

  it('survives garbage, a bad remaining length and a PUBLISH before CONNECT', async () => {
    const inputs = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]),
      Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61, 0x68, 0x69]),
      Buffer.from([0x00, 0x00, 0x00, 0x00]),
      Buffer.concat([connectPacket('limit-garbage'), Buffer.from([0xf0, 0x00, 0x13, 0x37])]),
    ];
    for (const bytes of inputs) {
      const socket = await rawTls(broker.port, registry.ca.certificatePem, device);
      socket.write(bytes);
      await socketClosed(socket);
    }
    expect(broker.logs.refusals('malformed_packet').length).toBeGreaterThanOrEqual(1);
    await stillServing();
  });

  it('closes a connection that sends no CONNECT within the connect timeout', async () => {
    const socket = await rawTls(broker.port, registry.ca.certificatePem, device);
    await socketClosed(socket);
    const plain = netConnect({ host: '127.0.0.1', port: broker.port });
    plain.on('error', () => undefined);
    plain.resume();
    await socketClosed(plain);
    await stillServing();
  });

  it('refuses connections over maxConnections with CONNACK 3', async () => {
    const small = await startBroker(registry, { limits: { maxConnections: 2 } });
    const open2 = [
      await connectDevice(small.port, registry.ca, device, 'limit-a'),
      await connectDevice(small.port, registry.ca, device, 'limit-b'),
    ];
    try {
      expect(await refusal(connectDevice(small.port, registry.ca, device, 'limit-c'))).toBe(3);
      expect(small.logs.refusals('max_connections')).toHaveLength(1);
      await open2[0]?.endAsync();
      await eventually(async () => small.broker.connections().length === 1, 'one session left');
      const c = await connectDevice(small.port, registry.ca, device, 'limit-c');
      await c.endAsync();
    } finally {
      await endAll(open2);
      await small.close();
    }
  });

  it('limits the connection rate per source address and keeps serving other addresses', async () => {
    const flooded = await startBroker(registry, {
      limits: { connectionBurst: 5, connectionsPerSecondPerAddress: 1 },
    });
    try {
      const sockets = Array.from({ length: 40 }, () => {
        const s = netConnect({ host: '127.0.0.1', port: flooded.port, localAddress: '127.0.0.7' });
        s.on('error', () => undefined);
        return s;
      });
      const refused = async () =>
        (await flooded.metrics.getSingleMetric('iotdr_broker_refusals_total')?.get())?.values.find(
          (v) => v.labels.reason === 'rate_limited',
        )?.value ?? 0;
      await eventually(async () => (await refused()) >= 35, 'flood refused');
      const lines = flooded.logs.refusals('rate_limited');
      expect(lines.length).toBeGreaterThanOrEqual(1);
      expect(lines.length).toBeLessThan(5);
      expect(lines.every((l) => l.address === '127.0.0.7')).toBe(true);
      const client = await connectDevice(flooded.port, registry.ca, device, 'limit-other');
      await client.publishAsync('other/ok', 'x', { qos: 1 });
      await client.endAsync();
      const metric = await flooded.metrics.getSingleMetricAsString('iotdr_broker_refusals_total');
      expect(metric).toMatch(/iotdr_broker_refusals_total\{reason="rate_limited"\} (3[5-9]|40)/);
      for (const s of sockets) s.destroy();
    } finally {
      await flooded.close();
    }
  });

  it("exempts its own address: a flood from one device address cannot fail the region's broker check", async () => {
    // The broker on 127.0.0.8; devices (and this flood) from 127.0.0.1, as a fleet on one host.
    const flooded = await startBroker(registry, {
      host: '127.0.0.8',
      limits: { connectionBurst: 5, connectionsPerSecondPerAddress: 1 },
    });
    const sockets: Socket[] = [];
    try {
      const identity = flooded.broker.healthIdentity();
      expect(identity.localAddress).toBe('127.0.0.8');
      const flood = () => {
        for (let i = 0; i < 20; i++) {
          const s = netConnect({ host: '127.0.0.8', port: flooded.port, localAddress: '127.0.0.1' });
          s.on('error', () => undefined);
          sockets.push(s);
        }
      };
      flood();
      await eventually(
        async () => flooded.logs.refusals('rate_limited').some((l) => l.address === '127.0.0.1'),
        'the flood refused',
      );
      const health = new HealthService({ serviceId: 'us-east', timeoutMs: 2000 }).add(
        brokerCheckpoint({ ...identity, url: `mqtts://127.0.0.8:${flooded.port}` }),
      );
      flood();
      expect((await health.check()).status).toBe('pass');
      // The probe's address is the broker's own; the limit still holds for the flood's.
      expect(flooded.logs.refusals('rate_limited').every((l) => l.address === '127.0.0.1')).toBe(true);
    } finally {
      for (const s of sockets) s.destroy();
      await flooded.close();
    }
  });
});
