import type { FastifyInstance } from 'fastify';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  brokerRoutes,
  DEVICE_POLICY_TEMPLATE,
  FAILOVER_NOTICE_TOPIC,
  type FailoverNotice,
} from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { buildRegistryApi, parsePolicyDocument } from '../../src/registry/index.js';
import {
  closed,
  connect,
  connectDevice,
  type Device,
  endAll,
  nextMessage,
  provisionDevice,
  refusal,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
} from './support.js';

describe('broker: connections, server-side disconnect, failover notice, health identity', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  let api: FastifyInstance;
  let admin: string;
  let operator: string;
  let reader: string;
  const devices: Device[] = [];
  let clients: MqttClient[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry);
    api = await buildRegistryApi({
      service: registry.service,
      logger: createLogger({ level: 'silent' }),
      routes: [brokerRoutes(broker.broker)],
    });
    admin = (await registry.service.createToken('root', 'admin')).token;
    operator = (await registry.service.createToken('ops', 'operator')).token;
    reader = (await registry.service.createToken('viewer', 'reader')).token;
    for (const name of ['ops-1', 'ops-2', 'ops-3'])
      devices.push(await provisionDevice(registry.service, name));
    await registry.service.putThingGroup('floor-1', {});
    await registry.service.addThingToGroup('floor-1', 'ops-1');
    await registry.service.addThingToGroup('floor-1', 'ops-2');
  });
  afterAll(async () => {
    await endAll(clients);
    await api?.close();
    await broker?.close();
    await registry?.close();
  });

  function call(method: 'GET' | 'POST', url: string, token: string, payload?: unknown) {
    return api.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
  }

  async function connectAll(): Promise<MqttClient[]> {
    await endAll(clients);
    clients = await Promise.all(devices.map((d) => connectDevice(broker.port, registry.ca, d, d.thingName)));
    return clients;
  }

  it('lists live sessions with thing, client id, address, since and auth', async () => {
    await connectAll();
    const res = await call('GET', '/v1/connections', reader);
    expect(res.statusCode).toBe(200);
    const items = (res.json() as { items: Array<Record<string, unknown>> }).items;
    expect(items.map((i) => i.thing).sort()).toEqual(['ops-1', 'ops-2', 'ops-3']);
    for (const item of items) {
      expect(item).toMatchObject({ clientId: item.thing, address: '127.0.0.1', auth: 'mtls' });
      expect(typeof item.since).toBe('number');
    }
  });

  it('disconnects one thing, a group, or everyone, and says how many', async () => {
    let [one, two, three] = await connectAll();
    let gone = one ? closed(one) : Promise.resolve();
    let res = await call('POST', '/v1/connections/disconnect', operator, { thing: 'ops-1' });
    expect(res.json()).toEqual({ disconnected: 1 });
    await gone;
    expect(two?.connected && three?.connected).toBe(true);

    [one, two, three] = await connectAll();
    gone = Promise.all([one, two].map((c) => (c ? closed(c) : undefined))).then(() => undefined);
    res = await call('POST', '/v1/connections/disconnect', operator, { group: 'floor-1' });
    expect(res.json()).toEqual({ disconnected: 2 });
    await gone;
    expect(three?.connected).toBe(true);

    await connectAll();
    gone = Promise.all(clients.map((c) => closed(c))).then(() => undefined);
    res = await call('POST', '/v1/connections/disconnect', operator, { all: true });
    expect(res.json()).toEqual({ disconnected: 3 });
    await gone;
    expect(broker.broker.connections()).toEqual([]);
  });

  it('refuses a malformed disconnect body (400), an unknown group (404) and a reader (403)', async () => {
    for (const body of [
      {},
      { thing: 'a', group: 'b' },
      { all: false },
      { thing: 'bad name!' },
      { everyone: true },
    ]) {
      const res = await call('POST', '/v1/connections/disconnect', operator, body);
      expect(res.statusCode).toBe(400);
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      expect(res.json().code).toBe('IOTDR_VALIDATION_FAILED');
    }
    const unknown = await call('POST', '/v1/connections/disconnect', operator, { group: 'no-such-group' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('IOTDR_REGISTRY_NOT_FOUND');
    expect((await call('POST', '/v1/connections/disconnect', reader, { all: true })).statusCode).toBe(403);
  });

  it('publishes the failover notice retained; a device with the template policy receives it', async () => {
    const template = DEVICE_POLICY_TEMPLATE();
    expect(() => parsePolicyDocument(template, 'policyDocument')).not.toThrow();
    const notice: FailoverNotice = { activeRegion: 'us-west', epoch: 7, at: '2026-11-27T03:00:00.000Z' };
    expect((await call('POST', '/v1/notices/failover', operator, notice)).statusCode).toBe(403);
    expect((await call('POST', '/v1/notices/failover', admin, { ...notice, epoch: -1 })).statusCode).toBe(
      400,
    );
    const res = await call('POST', '/v1/notices/failover', admin, notice);
    expect(res.statusCode).toBe(202);

    // Connecting after the notice: the retained message arrives on subscribe.
    const device = devices[2] as Device;
    const client = await connectDevice(broker.port, registry.ca, device, device.thingName);
    clients.push(client);
    const first = nextMessage(client, FAILOVER_NOTICE_TOPIC);
    expect(await subscribe(client, FAILOVER_NOTICE_TOPIC)).toEqual([1]);
    expect(JSON.parse((await first).toString())).toEqual(notice);

    // And a later notice reaches the live subscriber, through the API.
    const next = nextMessage(client, FAILOVER_NOTICE_TOPIC);
    await broker.broker.publishFailoverNotice({
      activeRegion: 'us-east',
      epoch: 8,
      at: '2026-11-27T03:05:00Z',
    });
    expect(JSON.parse((await next).toString())).toMatchObject({ activeRegion: 'us-east', epoch: 8 });
    // The template allows the thing's commands and shadow replies too.
    expect(await subscribe(client, `$iotdr/things/${device.thingName}/commands`)).toEqual([1]);
    expect(await subscribe(client, `$iotdr/things/${device.thingName}/shadow/+/accepted`)).toEqual([1]);
    expect(await subscribe(client, '$iotdr/things/ops-1/commands')).toEqual([128]);
  });

  it('gives the health identity a round trip under its prefix only, and nothing else', async () => {
    const health = broker.broker.healthIdentity();
    expect(health.topicPrefix).toBe('$iotdr/health/us-east/');
    const options = {
      port: broker.port,
      ca: health.caPem,
      cert: health.certPem,
      key: health.keyPem,
      servername: health.servername,
    };
    expect(await refusal(connect({ ...options, clientId: 'not-health' }))).toBe(5);
    const client = await connect({ ...options, clientId: `${health.clientIdPrefix}probe-1` });
    clients.push(client);
    const topic = `${health.topicPrefix}probe-1`;
    expect(await subscribe(client, `${health.topicPrefix}#`)).toEqual([1]);
    expect(await subscribe(client, 'devices/#')).toEqual([128]);
    const got = nextMessage(client, topic);
    await client.publishAsync(topic, 'ping', { qos: 1 });
    expect((await got).toString()).toBe('ping');
    expect(broker.broker.connections().some((c) => c.clientId.startsWith('iotdr-health-'))).toBe(false);
    // The identity exists only in this broker's memory, never in the registry.
    const certs = await registry.service.listCertificates({ limit: 1000 });
    expect(certs.items.some((c) => c.certificatePem === health.certPem)).toBe(false);
    const gone = closed(client);
    client.publish('devices/ops-1/x', 'x', { qos: 1 });
    await gone;
  });
});
