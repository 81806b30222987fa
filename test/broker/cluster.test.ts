/**
 * One region's broker on two hosts sharing the region's Redis: this process is the hub and one
 * node, a child process (standing for a second host) is another node. Messages, persistent
 * sessions, revocations and disconnects must work across them as within one broker.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_TOPIC_PREFIX } from '../../src/broker/index.js';
import { type RunningRedis, redisSkipReason, startRedis } from '../harness/redis.js';
import {
  closed,
  collect,
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

const skip = redisSkipReason();

/** Starts the second host; resolves with its MQTT port once it listens. */
function startOtherHost(dir: string, redis: string): Promise<{ child: ChildProcess; port: number }> {
  const script = fileURLToPath(new URL('../harness/broker-node-child.ts', import.meta.url));
  const spec = JSON.stringify({ dir, redis, region: 'us-east', node: 'host-b' });
  const child = spawn(process.execPath, ['--import', 'tsx', script, spec], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve({ child, port: (JSON.parse(line) as { port: number }).port });
    });
    child.once('exit', (code) => reject(new Error(`the other host exited with ${code}: ${err}`)));
  });
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: a policy variable, as in AWS IoT
const THING = '${iot:Connection.Thing.ThingName}';
/** Devices of one fleet talking on `fleet/…` (and trying the cluster's own topics). */
const SHARED = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: ['iot:Connect'], Resource: [`client/${THING}`] },
    { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: ['topic/*'] },
    { Effect: 'Allow', Action: ['iot:Subscribe'], Resource: ['topicfilter/*'] },
  ],
};

describe.skipIf(skip !== undefined)('a region on two hosts sharing one Redis', () => {
  let redis: RunningRedis;
  let registry: TestRegistry;
  let hub: TestBroker;
  let other: { child: ChildProcess; port: number };
  const devices: Device[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    registry = await startRegistry();
    hub = await startBroker(registry, { cluster: { redis: redis.url, node: 'host-a' } });
    other = await startOtherHost(registry.dir, redis.url);
    for (const name of ['cl-a', 'cl-b', 'cl-c', 'cl-d', 'cl-e'])
      devices.push(await provisionDevice(registry.service, name, SHARED, 'shared'));
    await eventually(async () => hub.broker.nodes().length === 2, 'both nodes heard');
  }, 60_000);

  afterAll(async () => {
    if (other) {
      other.child.kill('SIGTERM');
      await new Promise((r) => other.child.once('exit', r));
    }
    await hub?.close();
    await registry?.close();
    await redis?.stop();
  });

  const device = (i: number): Device => {
    const d = devices[i];
    if (!d) throw new Error(`no device ${i}`);
    return d;
  };

  it('delivers QoS 1 messages from a device on one host to a device on the other exactly once, in order', async () => {
    const a = device(0);
    const b = device(1);
    const sub = await connectDevice(other.port, registry.ca, b, b.thingName);
    const pub = await connectDevice(hub.port, registry.ca, a, a.thingName);
    const seen: string[] = [];
    const taken: string[] = [];
    const stop = hub.broker.onMessage((m) => {
      if (m.topic === 'fleet/q1') taken.push(m.payload.toString());
    });
    try {
      expect(await subscribe(sub, 'fleet/q1')).toEqual([1]);
      sub.on('message', (topic, payload) => {
        if (topic === 'fleet/q1') seen.push(payload.toString());
      });
      for (let i = 0; i < 30; i++) await pub.publishAsync('fleet/q1', `m${i}`, { qos: 1 });
      await eventually(async () => seen.length >= 30, '30 messages on the other host');
      // Anything sent twice would arrive within this.
      await new Promise((r) => setTimeout(r, 500));
      expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
      // The hub's listeners (rules, shadows) took each one before its PUBACK.
      expect(taken).toEqual(seen);
      // And the other way round: a device on the other host reaches one on this host.
      const back: string[] = [];
      expect(await subscribe(pub, 'fleet/back')).toEqual([1]);
      pub.on('message', (topic, payload) => topic === 'fleet/back' && back.push(payload.toString()));
      await sub.publishAsync('fleet/back', 'hello', { qos: 1 });
      await eventually(async () => back.length === 1, 'the reply on this host');
      expect(taken).toHaveLength(30);
    } finally {
      stop();
      await endAll([sub, pub]);
    }
  });

  it('keeps a persistent session and its queued QoS 1 messages when the device moves host', async () => {
    const a = device(0);
    const c = device(2);
    const first = await connectDevice(hub.port, registry.ca, c, c.thingName, { clean: false });
    expect(await subscribe(first, 'fleet/queued')).toEqual([1]);
    await first.endAsync();
    const pub = await connectDevice(hub.port, registry.ca, a, a.thingName);
    for (let i = 0; i < 5; i++) await pub.publishAsync('fleet/queued', `q${i}`, { qos: 1 });
    await pub.endAsync();
    const moved = await connectDevice(other.port, registry.ca, c, c.thingName, { clean: false });
    const got = collect(moved);
    try {
      expect(moved.connected).toBe(true);
      await eventually(async () => got.length >= 5, 'the queued messages on the other host');
      await new Promise((r) => setTimeout(r, 300));
      expect(got.map((m) => m.payload)).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
      // The subscription moved too: a new message reaches the device on its new host.
      const again = await connectDevice(hub.port, registry.ca, a, a.thingName);
      await again.publishAsync('fleet/queued', 'after', { qos: 1 });
      await eventually(async () => got.some((m) => m.payload === 'after'), 'a new message after the move');
      await again.endAsync();
    } finally {
      await endAll([moved]);
    }
  });

  it('closes the older session when a client id connects on the other host', async () => {
    const d = device(3);
    const old = await connectDevice(hub.port, registry.ca, d, d.thingName);
    const gone = closed(old);
    const fresh = await connectDevice(other.port, registry.ca, d, d.thingName);
    try {
      await gone;
      await eventually(
        async () => hub.broker.connections().filter((s) => s.thing === d.thingName).length === 1,
        'one session left in the region table',
      );
      expect(hub.broker.connections().find((s) => s.thing === d.thingName)?.node).toBe('host-b');
    } finally {
      await endAll([old, fresh]);
    }
  });

  it('cuts a revoked certificate’s session on whichever host holds it', async () => {
    const e = await provisionDevice(registry.service, 'cl-revoked', SHARED, 'shared');
    const session = await connectDevice(other.port, registry.ca, e, e.thingName);
    await eventually(async () => hub.broker.isConnected(e.thingName), 'the session in the region table');
    const cut = closed(session);
    await registry.service.updateCertificateStatus(e.certificateId, { status: 'REVOKED' });
    await cut;
    await eventually(async () => !hub.broker.isConnected(e.thingName), 'the session gone from the table');
  });

  it('lists every host’s sessions and disconnects all of them on request', async () => {
    const clients = await Promise.all([
      connectDevice(hub.port, registry.ca, device(0), device(0).thingName),
      connectDevice(other.port, registry.ca, device(1), device(1).thingName),
      connectDevice(other.port, registry.ca, device(4), device(4).thingName),
    ]);
    try {
      await eventually(async () => hub.broker.connections().length === 3, 'three sessions listed');
      expect(new Set(hub.broker.connections().map((s) => s.node))).toEqual(new Set(['host-a', 'host-b']));
      expect(hub.broker.isConnected(device(4).thingName)).toBe(true);
      const all = Promise.all(clients.map(closed));
      expect(await hub.broker.disconnect({ all: true })).toBe(3);
      await all;
      await eventually(async () => hub.broker.connections().length === 0, 'no session left');
    } finally {
      await endAll(clients);
    }
  });

  it('keeps clients off the nodes’ own topics whatever their policies allow', async () => {
    const a = device(0);
    const client = await connectDevice(other.port, registry.ca, a, a.thingName);
    try {
      expect(await subscribe(client, `${CLUSTER_TOPIC_PREFIX}#`)).toEqual([128]);
      // A wildcard that would match them hears nothing of the nodes' heartbeats.
      const heard = collect(client);
      expect(await subscribe(client, '$iotdr/#')).toEqual([1]);
      await new Promise((r) => setTimeout(r, 1500));
      expect(heard.filter((m) => m.topic.startsWith(CLUSTER_TOPIC_PREFIX))).toEqual([]);
      // Publishing there closes the session, as any refused PUBLISH does.
      const gone = closed(client);
      client.publish(`${CLUSTER_TOPIC_PREFIX}disconnect`, '{}', { qos: 1 });
      await gone;
      expect(hub.broker.nodes()).toHaveLength(2);
    } finally {
      await endAll([client]);
    }
  });
});
