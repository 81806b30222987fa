// biome-ignore-all lint/suspicious/noTemplateCurlyInString: republish topics are written ${thingName}, like AWS IoT substitution templates
/**
 * A region on JetStream whose broker runs on two workers (`broker.workers: 2`, the region's Redis):
 * the workers append device messages to the region's stream themselves and hand the hub only what
 * needs it (shadow requests, republish and HTTP actions), with the event id they used.
 */

import { mkdtemp } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/common/index.js';
import { type BusEvent, JetStreamEventBus } from '../../src/events/index.js';
import { endAll, nextMessage, subscribe } from '../broker/support.js';
import { type Cluster, type ClusterRegion, startCluster } from '../harness/cluster.js';
import { connect, type Device, provision } from '../harness/devices.js';
import { fetch } from '../harness/https.js';
import { natsSkipReason, type RunningNats, startNats } from '../harness/nats.js';
import { type RunningRedis, redisSkipReason, startRedis } from '../harness/redis.js';

const skip = redisSkipReason() ?? natsSkipReason();

describe.skipIf(skip !== undefined)(`a region on JetStream with two broker workers (${skip ?? 'ok'})`, () => {
  let redis: RunningRedis;
  let nats: RunningNats;
  let cluster: Cluster;
  let east: ClusterRegion;
  let stream: JetStreamEventBus;
  let hook: Server;
  const hooked: IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    const stateDir = await mkdtemp(join(tmpdir(), 'iotdr-cluster-'));
    nats = await startNats({ stateDir });
    hook = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hooked.push(req.headers);
        res.end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alarm`;
    const clientPort = Number(new URL(nats.servers[0] ?? '').port);
    cluster = await startCluster(
      ['us-east'],
      { engine: 'sqlite' },
      {
        stateDir,
        config: {
          events: { engine: 'jetstream' },
          broker: { workers: 2 },
          ruleHttp: { allowedNetworks: ['127.0.0.1'] },
          rules: [
            { name: 'telemetry', topicFilter: 'devices/+/telemetry', actions: [{ type: 'bus' }] },
            {
              name: 'echo',
              topicFilter: 'devices/+/ping',
              actions: [{ type: 'bus' }, { type: 'republish', topic: 'devices/${thingName}/pong', qos: 1 }],
            },
            {
              name: 'alarm',
              topicFilter: 'devices/+/alarm',
              actions: [{ type: 'bus' }, { type: 'http', url: hookUrl }],
            },
          ],
        },
        regionConfig: {
          'us-east': {
            redis: { url: redis.url },
            nats: { servers: [{ name: 'nats-1', address: '127.0.0.1', clientPort }] },
          },
        },
      },
    );
    const region = cluster.regions['us-east'];
    if (!region) throw new Error('no us-east');
    east = region;
    await waitUntil(async () => broker().nodes().length === 2, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'both workers heard',
    });
    stream = await JetStreamEventBus.open({ region: 'us-east', nats: nats.link() });
  }, 120_000);

  afterAll(async () => {
    await stream?.close();
    await cluster?.close();
    await nats?.stop();
    await redis?.stop();
    await new Promise((r) => hook?.close(r));
  });

  function broker() {
    const running = east.running;
    if (!running) throw new Error('us-east is not running');
    return running.broker;
  }

  async function onStream(topicSuffix: string): Promise<BusEvent[]> {
    const out: BusEvent[] = [];
    for (let from = 1; ; ) {
      const page = await stream.read({ from, limit: 1000 });
      out.push(...page.events.filter((e) => e.topic.endsWith(topicSuffix)));
      if (page.events.length === 0) return out;
      from = (page.events.at(-1)?.offset ?? from) + 1;
    }
  }

  /** The region's /metrics series of a rule's matches: the workers' (labelled `node`) and the hub's. */
  async function matches(rule: string): Promise<{ workers: number; hub: number }> {
    const text = await (await fetch(`${east.url}/metrics`)).text();
    const out = { workers: 0, hub: 0 };
    for (const [, labels = '', value] of text.matchAll(/^iotdr_rule_matches_total\{([^}]*)\} (\S+)$/gm)) {
      if (!labels.includes(`rule="${rule}"`)) continue;
      if (labels.includes('node="')) out.workers += Number(value);
      else out.hub += Number(value);
    }
    return out;
  }

  async function devicesOnBothWorkers(prefix: string, count: number): Promise<[Device[], MqttClient[]]> {
    const devices: Device[] = [];
    const clients: MqttClient[] = [];
    for (let i = 0; i < count; i++) {
      const device = await provision(east, `${prefix}-${i}`);
      devices.push(device);
      clients.push(await connect(east, device));
    }
    const nodeOf = (thing: string) =>
      broker()
        .connections()
        .find((s) => s.thing === thing)?.node;
    await waitUntil(async () => devices.every((d) => nodeOf(d.thingName) !== undefined), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'every session listed',
    });
    expect(new Set(devices.map((d) => nodeOf(d.thingName))).size).toBe(2);
    return [devices, clients];
  }

  it('appends what devices on both workers publish to the stream from the workers, each acknowledged message once', async () => {
    const [devices, clients] = await devicesOnBothWorkers('wjs', 4);
    const sent: string[] = [];
    try {
      for (const [d, device] of devices.entries()) {
        const client = clients[d];
        if (!client) throw new Error('no client');
        for (let i = 0; i < 5; i++) {
          const messageId = `${device.thingName}-m${i}`;
          await client.publishAsync(
            `devices/${device.thingName}/telemetry`,
            JSON.stringify({ messageId, i }),
            {
              qos: 1,
            },
          );
          sent.push(messageId);
        }
        // Without a message id, and one sent twice (as after a lost PUBACK).
        await client.publishAsync(`devices/${device.thingName}/telemetry`, JSON.stringify({ plain: d }), {
          qos: 1,
        });
        for (let again = 0; again < 2; again++)
          await client.publishAsync(
            `devices/${device.thingName}/telemetry`,
            JSON.stringify({ messageId: `${device.thingName}-twice` }),
            { qos: 1 },
          );
        sent.push(`${device.thingName}-twice`);
      }
    } finally {
      await endAll(clients);
    }
    // Acknowledged, so on the stream: every id once, and one event per message without an id.
    const events = (await onStream('/telemetry')).filter((e) => e.thingName?.startsWith('wjs-'));
    const ids = events.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.filter((id) => !id.startsWith('wjs-'))).toHaveLength(4);
    expect(ids.filter((id) => id.startsWith('wjs-')).sort()).toEqual([...sent].sort());
    // The workers ran the rule, the hub never saw these messages.
    expect(await matches('telemetry')).toEqual({ workers: 4 * 8, hub: 0 });
  });

  it('still serves shadow requests through the hub', async () => {
    const [devices, clients] = await devicesOnBothWorkers('wjs-shadow', 2);
    try {
      for (const [d, device] of devices.entries()) {
        const client = clients[d];
        if (!client) throw new Error('no client');
        const accepted = `$iotdr/things/${device.thingName}/shadow/update/accepted`;
        expect(await subscribe(client, accepted)).toEqual([1]);
        const reply = nextMessage(client, accepted);
        await client.publishAsync(
          `$iotdr/things/${device.thingName}/shadow/update`,
          JSON.stringify({ state: { reported: { temp: 20 + d } } }),
          { qos: 1 },
        );
        expect(JSON.parse((await reply).toString()).state.reported.temp).toBe(20 + d);
      }
    } finally {
      await endAll(clients);
    }
  });

  it('republishes through the hub and calls HTTP actions with the event id the worker appended', async () => {
    const [devices, clients] = await devicesOnBothWorkers('wjs-echo', 2);
    try {
      for (const [d, device] of devices.entries()) {
        const client = clients[d];
        if (!client) throw new Error('no client');
        const pong = `devices/${device.thingName}/pong`;
        expect(await subscribe(client, pong)).toEqual([1]);
        const echoed = nextMessage(client, pong);
        await client.publishAsync(`devices/${device.thingName}/ping`, JSON.stringify({ n: d }), { qos: 1 });
        expect(JSON.parse((await echoed).toString())).toEqual({ n: d });
        // No message id: the worker made one, and the hub's HTTP action names the same event.
        await client.publishAsync(`devices/${device.thingName}/alarm`, JSON.stringify({ level: d }), {
          qos: 1,
        });
      }
    } finally {
      await endAll(clients);
    }
    const pings = (await onStream('/ping')).filter((e) => e.thingName?.startsWith('wjs-echo-'));
    expect(pings.map((e) => e.payload)).toEqual([
      { type: 'json', value: { n: 0 } },
      { type: 'json', value: { n: 1 } },
    ]);
    const alarms = (await onStream('/alarm')).filter((e) => e.thingName?.startsWith('wjs-echo-'));
    expect(alarms).toHaveLength(2);
    await waitUntil(async () => hooked.length >= 2, {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'two alarms hooked',
    });
    expect(hooked.map((h) => h['x-iotdr-event-id']).sort()).toEqual(alarms.map((e) => e.id).sort());
    // Each match counted once, by the worker that appended.
    expect(await matches('echo')).toEqual({ workers: 2, hub: 0 });
  });

  it('applies a rule made through the region API in the workers within seconds', async () => {
    const [devices, clients] = await devicesOnBothWorkers('wjs-late', 2);
    try {
      const made = await east.call('PUT', '/v1/rules/late', {
        topicFilter: 'devices/+/late',
        actions: [{ type: 'bus' }],
      });
      expect(made.status).toBe(201);
      let n = 0;
      for (const [d, device] of devices.entries()) {
        const client = clients[d];
        if (!client) throw new Error('no client');
        // Sent until the worker holding this device appends it: it reads the rules every 2 s.
        await waitUntil(
          async () => {
            await client.publishAsync(
              `devices/${device.thingName}/late`,
              JSON.stringify({ messageId: `late-${d}-${n++}` }),
              { qos: 1 },
            );
            return (await onStream('/late')).some((e) => e.thingName === device.thingName);
          },
          {
            timeoutMs: 10_000,
            intervalMs: 200,
            what: `the late rule applied to ${device.thingName}'s worker`,
          },
        );
      }
    } finally {
      await endAll(clients);
    }
    expect((await matches('late')).hub).toBe(0);
  });
});
