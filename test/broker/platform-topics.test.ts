/**
 * The platform's topics ($iotdr/) carry its own word: failover notices every device obeys,
 * commands, shadow replies. A device may write there only its own requests (shadow get, update,
 * delete; command replies), whatever its policies allow — `iot:*` on `*` included.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILOVER_NOTICE_TOPIC } from '../../src/broker/index.js';
import {
  ALLOW_ALL,
  closed,
  connectDevice,
  type Device,
  endAll,
  eventually,
  provisionDevice,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
} from './support.js';

describe('broker: the platform topics', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  let device: Device;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry);
    device = await provisionDevice(registry.service, 'plat-1', ALLOW_ALL);
  });
  afterAll(async () => {
    await endAll(clients);
    await broker?.close();
    await registry?.close();
  });

  async function open(clientId: string): Promise<MqttClient> {
    const client = await connectDevice(broker.port, registry.ca, device, clientId);
    clients.push(client);
    return client;
  }

  it("refuses a device's forged failover notice, commands and shadow replies, even with iot:* on *", async () => {
    const listener = await open('plat-1-listener');
    expect(await subscribe(listener, '$iotdr/#')).toEqual([1]);
    const heard: string[] = [];
    listener.on('message', (topic) => heard.push(topic));
    const forged = [
      FAILOVER_NOTICE_TOPIC,
      '$iotdr/things/plat-1/commands',
      '$iotdr/things/plat-1/shadow/update/delta',
      '$iotdr/things/plat-1/shadow/get/accepted',
      '$iotdr/things/plat-2/shadow/update',
      '$iotdr/things/plat-2/commands/c1/reply',
    ];
    for (const topic of forged) {
      const forger = await open('plat-1');
      const gone = closed(forger);
      // MQTT 3.1.1 has no negative PUBACK: the broker closes the connection, as AWS IoT does.
      forger.publish(topic, JSON.stringify({ activeRegion: 'evil', epoch: 1e12 }), { qos: 1 });
      await gone;
      expect(broker.logs.refusals('publish_denied').at(-1)?.detail, topic).toBe(
        `iot:Publish topic/${topic}: a platform topic; a device publishes there only its own shadow requests and command replies`,
      );
    }
    // Its own requests still pass: a shadow update and a command reply reach their subscriber.
    const device = await open('plat-1');
    await device.publishAsync('$iotdr/things/plat-1/shadow/update', JSON.stringify({ state: {} }), {
      qos: 1,
    });
    await device.publishAsync(
      '$iotdr/things/plat-1/commands/c1/reply',
      JSON.stringify({ status: 'succeeded' }),
      {
        qos: 1,
      },
    );
    await eventually(
      async () => heard.includes('$iotdr/things/plat-1/commands/c1/reply'),
      'the command reply at the listener',
    );
    expect(heard).toContain('$iotdr/things/plat-1/shadow/update');
    // Sent before them, on connections the broker closed: none of the forgeries was delivered.
    expect(heard.filter((t) => forged.includes(t))).toEqual([]);
  });
});
