/**
 * A region whose broker runs on two worker processes sharing its MQTT port (`broker.workers: 2`)
 * and the region's Redis: devices on different workers talk, the region lists and disconnects
 * every worker's sessions, revocation reaches the worker holding the session, health passes
 * through a worker, and a worker that dies is replaced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_POLICY_TEMPLATE, FAILOVER_NOTICE_TOPIC } from '../../src/broker/index.js';
import {
  closed,
  connectDevice,
  type Device,
  endAll,
  eventually,
  nextMessage,
  provisionDevice,
  subscribe,
} from '../broker/support.js';
import { fetch } from '../harness/https.js';
import { type RunningRedis, redisSkipReason, startRedis } from '../harness/redis.js';
import { startTestRegion, type TestRegion } from '../harness/region.js';

const skip = redisSkipReason();

// biome-ignore lint/suspicious/noTemplateCurlyInString: a policy variable, as in AWS IoT
const THING = '${iot:Connection.Thing.ThingName}';
const SHARED = {
  Version: '2012-10-17',
  Statement: [
    { Effect: 'Allow', Action: ['iot:Connect'], Resource: [`client/${THING}`] },
    { Effect: 'Allow', Action: ['iot:Publish', 'iot:Receive'], Resource: ['topic/fleet/*'] },
    { Effect: 'Allow', Action: ['iot:Subscribe'], Resource: ['topicfilter/fleet/*'] },
  ],
};

describe.skipIf(skip !== undefined)('a region with two broker workers', () => {
  let redis: RunningRedis;
  let east: TestRegion;
  let port: number;
  const devices: Device[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    east = await startTestRegion('us-east', {
      regions: [{ name: 'us-east', priority: 1, address: '127.0.0.1', redis: { url: redis.url } }],
      broker: { workers: 2 },
      rules: [{ name: 'across', topicFilter: 'fleet/across', actions: [{ type: 'bus' }] }],
    });
    port = Number(new URL(east.region.mqttUrl).port);
    for (let i = 0; i < 6; i++)
      devices.push(await provisionDevice(east.region.service, `wk-${i}`, SHARED, 'shared'));
    await eventually(async () => east.region.broker.nodes().length === 2, 'both workers heard');
  }, 60_000);

  afterAll(async () => {
    await east?.close();
    await redis?.stop();
  });

  const device = (i: number): Device => {
    const d = devices[i];
    if (!d) throw new Error(`no device ${i}`);
    return d;
  };
  const nodeOf = (thing: string) => east.region.broker.connections().find((s) => s.thing === thing)?.node;

  it('spreads sessions over both workers and delivers QoS 1 between them exactly once', async () => {
    const clients = [];
    for (let i = 0; i < 4; i++)
      clients.push(await connectDevice(port, east.region.ca, device(i), device(i).thingName));
    try {
      await eventually(async () => east.region.broker.connections().length === 4, 'four sessions listed');
      const byNode = new Map<string, number[]>();
      for (let i = 0; i < 4; i++) {
        const node = nodeOf(device(i).thingName) ?? '?';
        byNode.set(node, [...(byNode.get(node) ?? []), i]);
      }
      expect(byNode.size).toBe(2);
      const [first, second] = [...byNode.values()].map((list) => list[0] ?? -1);
      const sub = clients[first ?? 0];
      const pub = clients[second ?? 0];
      if (!sub || !pub) throw new Error('no client on each worker');
      expect(await subscribe(sub, 'fleet/across')).toEqual([1]);
      const seen: string[] = [];
      sub.on('message', (topic, payload) => topic === 'fleet/across' && seen.push(payload.toString()));
      for (let i = 0; i < 20; i++) await pub.publishAsync('fleet/across', `w${i}`, { qos: 1 });
      await eventually(async () => seen.length >= 20, 'twenty messages across workers');
      await new Promise((r) => setTimeout(r, 500));
      expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => `w${i}`));
      // The region's event bus took each one (rules run in the region's process).
      const events = await east.call('GET', '/v1/events?limit=100');
      expect(events.status).toBe(200);
      const onBus = (events.body.events as Array<{ topic: string }>).filter(
        (e) => e.topic === 'fleet/across',
      );
      expect(onBus).toHaveLength(20);
    } finally {
      await endAll(clients);
    }
  });

  it('disconnects every worker’s sessions on request, and cuts a revoked one where it is', async () => {
    const clients = [];
    for (let i = 0; i < 4; i++)
      clients.push(await connectDevice(port, east.region.ca, device(i), device(i).thingName));
    try {
      await eventually(async () => east.region.broker.connections().length === 4, 'four sessions listed');
      const revoked = device(4);
      const victim = await connectDevice(port, east.region.ca, revoked, revoked.thingName);
      await eventually(async () => nodeOf(revoked.thingName) !== undefined, 'the victim listed');
      const cut = closed(victim);
      await east.region.service.updateCertificateStatus(revoked.certificateId, { status: 'REVOKED' });
      await cut;
      const all = Promise.all(clients.map(closed));
      const res = await east.call('POST', '/v1/connections/disconnect', { body: { all: true } });
      expect(res.status).toBe(200);
      expect(res.body.disconnected).toBe(4);
      await all;
      await eventually(async () => east.region.broker.connections().length === 0, 'no session left');
    } finally {
      await endAll(clients);
    }
  });

  it('sends the retained failover notice to devices on every worker, and to those that come later', async () => {
    const noticed: Device[] = [];
    for (let i = 0; i < 2; i++)
      noticed.push(
        await provisionDevice(east.region.service, `wk-notice-${i}`, DEVICE_POLICY_TEMPLATE(), 'template'),
      );
    const clients = [];
    try {
      for (const d of noticed) clients.push(await connectDevice(port, east.region.ca, d, d.thingName));
      await eventually(async () => noticed.every((d) => nodeOf(d.thingName) !== undefined), 'both listed');
      expect(new Set(noticed.map((d) => nodeOf(d.thingName))).size).toBe(2);
      for (const c of clients) expect(await subscribe(c, FAILOVER_NOTICE_TOPIC)).toEqual([1]);
      const heard = clients.map((c) => nextMessage(c, FAILOVER_NOTICE_TOPIC));
      await east.region.broker.publishFailoverNotice({
        activeRegion: 'us-east',
        epoch: 7,
        at: new Date().toISOString(),
      });
      for (const payload of await Promise.all(heard)) expect(JSON.parse(payload.toString()).epoch).toBe(7);
      // Retained in the region's Redis: a device subscribing later, on either worker, gets it.
      await endAll(clients.splice(0));
      const late = noticed[0];
      if (!late) throw new Error('no device');
      const again = await connectDevice(port, east.region.ca, late, late.thingName);
      clients.push(again);
      const retained = nextMessage(again, FAILOVER_NOTICE_TOPIC);
      expect(await subscribe(again, FAILOVER_NOTICE_TOPIC)).toEqual([1]);
      expect(JSON.parse((await retained).toString()).epoch).toBe(7);
    } finally {
      await endAll(clients);
    }
  });

  it('replaces a worker that dies, and its devices come back through the others', async () => {
    const before = east.region.broker.nodes();
    const victim = before[0] ?? '';
    const pid = Number(victim.split('-').at(-1));
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
    await eventually(
      async () => {
        const now = east.region.broker.nodes();
        return now.length === 2 && !now.includes(victim);
      },
      'a new worker in place of the dead one',
      30_000,
    );
    const d = device(5);
    const client = await connectDevice(port, east.region.ca, d, d.thingName);
    await endAll([client]);
  });

  it('serves every worker’s broker metrics on the region’s /metrics, one family per name', async () => {
    const d = device(5);
    const client = await connectDevice(port, east.region.ca, d, d.thingName);
    try {
      await eventually(async () => nodeOf(d.thingName) !== undefined, 'the session listed');
      const node = nodeOf(d.thingName);
      const res = await fetch(`${east.url}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text.match(/^# TYPE iotdr_broker_sessions gauge$/gm)).toHaveLength(1);
      for (const worker of east.region.broker.nodes())
        expect(text).toContain(`iotdr_process_cpu_seconds_total{region="us-east",node="${worker}"}`);
      expect(text).toMatch(
        new RegExp(`iotdr_broker_sessions\\{[^}]*auth="mtls"[^}]*node="${node}"[^}]*\\} 1`),
      );
    } finally {
      await endAll([client]);
    }
  });

  it('passes its health checks through the workers', async () => {
    await eventually(
      async () => (await fetch(`${east.url}/health`)).status === 200,
      'a passing /health',
      20_000,
    );
    const res = await fetch(`${east.url}/health`);
    const body = (await res.json()) as { checks: Record<string, Array<{ status: string }>> };
    expect(body.checks['broker:roundTrip']?.[0]?.status).toBe('pass');
  });
});
