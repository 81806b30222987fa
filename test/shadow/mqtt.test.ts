import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShadowTopics } from '../../src/broker/shadow/index.js';
import {
  connectDevice,
  type Device,
  endAll,
  nextMessage,
  provisionDevice,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
} from '../broker/support.js';
import { topic } from './support.js';

/**
 * The engine behind the region's real broker: a device with a certificate from the embedded CA
 * talks to its shadow over mutual TLS with mqtt.js, under the default device policy.
 */
describe('shadows over MQTT', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  let shadows: ShadowTopics;
  let device: Device;
  let client: MqttClient | undefined;
  let detach: (() => void) | undefined;

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry);
    shadows = new ShadowTopics({
      service: registry.service,
      publish: (t, payload, options) => broker.broker.publish(t, payload, options),
    });
    shadows.start();
    detach = broker.broker.onMessage((message) => void shadows.handle(message));
    device = await provisionDevice(registry.service, 'thermo-1');
    client = await connectDevice(broker.port, registry.ca, device, 'thermo-1');
    for (const suffix of ['get/+', 'update/+', 'delete/+']) {
      expect(await subscribe(client, topic('thermo-1', suffix))).toEqual([1]);
    }
  });
  afterAll(async () => {
    await endAll([client]);
    detach?.();
    await shadows?.stop();
    await broker?.close();
    await registry?.close();
  });

  const json = async (pending: Promise<Buffer>) => JSON.parse((await pending).toString('utf8'));

  it('updates, gets, hears the delta and deletes', async () => {
    if (!client) throw new Error('not connected');
    const accepted = nextMessage(client, topic('thermo-1', 'update/accepted'));
    const delta = nextMessage(client, topic('thermo-1', 'update/delta'));
    const documents = nextMessage(client, topic('thermo-1', 'update/documents'));
    await client.publishAsync(
      topic('thermo-1', 'update'),
      JSON.stringify({ state: { desired: { target: 21 }, reported: { target: 19 } }, clientToken: 'm-1' }),
      { qos: 1 },
    );
    expect(await json(accepted)).toMatchObject({ version: 1, clientToken: 'm-1' });
    expect(await json(delta)).toMatchObject({ state: { target: 21 }, version: 1 });
    expect(await json(documents)).toMatchObject({ previous: null, current: { version: 1 } });

    const got = nextMessage(client, topic('thermo-1', 'get/accepted'));
    await client.publishAsync(topic('thermo-1', 'get'), '', { qos: 1 });
    expect(await json(got)).toMatchObject({
      state: { desired: { target: 21 }, reported: { target: 19 }, delta: { target: 21 } },
      version: 1,
    });

    const rejected = nextMessage(client, topic('thermo-1', 'update/rejected'));
    await client.publishAsync(topic('thermo-1', 'update'), '{"state":', { qos: 1 });
    expect(await json(rejected)).toMatchObject({ code: 400, message: 'Invalid JSON' });

    const deleted = nextMessage(client, topic('thermo-1', 'delete/accepted'));
    await client.publishAsync(topic('thermo-1', 'delete'), '', { qos: 1 });
    expect(await json(deleted)).toMatchObject({ version: 1 });
    const missing = nextMessage(client, topic('thermo-1', 'get/rejected'));
    await client.publishAsync(topic('thermo-1', 'get'), '', { qos: 1 });
    expect(await json(missing)).toMatchObject({ code: 404 });
  });
});
