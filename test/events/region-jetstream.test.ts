/**
 * Regions whose event bus is a JetStream stream in their own NATS (events.engine: jetstream): what
 * a device, a bus reader and the region's health see.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, waitUntil } from '../../src/common/index.js';
import { eventStreamName, JetStreamEventBus } from '../../src/events/index.js';
import { type RunningAnalytics, startAnalytics, startControl } from '../../src/processes/index.js';
import { type Cluster, startCluster } from '../harness/cluster.js';
import { connect, provision } from '../harness/devices.js';
import { fetch } from '../harness/https.js';
import { natsSkipReason, type RunningNats, startNats } from '../harness/nats.js';

const skip = natsSkipReason();
const logger = createLogger({ level: 'silent' });

describe.skipIf(skip)(`regions on JetStream (${skip ?? 'nats-server'})`, () => {
  let cluster: Cluster;
  const nats: Record<string, RunningNats> = {};

  beforeAll(async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'iotdr-cluster-'));
    // Each region's own NATS, its certificates from the platform's CA.
    for (const name of ['us-east', 'us-west']) nats[name] = await startNats({ stateDir });
    const natsOf = (name: string) => {
      const port = Number(new URL(nats[name]?.servers[0] ?? '').port);
      return { nats: { servers: [{ name: 'nats-1', address: '127.0.0.1', clientPort: port }] } };
    };
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        stateDir,
        config: { events: { engine: 'jetstream' } },
        regionConfig: { 'us-east': natsOf('us-east'), 'us-west': natsOf('us-west') },
      },
    );
  }, 90_000);
  afterAll(async () => {
    await cluster?.close();
    for (const n of Object.values(nats)) await n.stop();
  });

  it('appends what a device publishes to its region’s stream before the PUBACK, and serves it over the bus API', async () => {
    const east = cluster.regions['us-east'];
    if (!east) throw new Error('no us-east');
    const device = await provision(east, 'js-sensor-1');
    const client = await connect(east, device);
    const ids = Array.from({ length: 5 }, (_, i) => `js-sensor-1-msg-${i}`);
    try {
      for (const [seq, messageId] of ids.entries())
        await client.publishAsync('devices/js-sensor-1/telemetry', JSON.stringify({ messageId, seq }), {
          qos: 1,
        });
    } finally {
      await client.endAsync();
    }
    // Acknowledged, so on the stream: read it as another process of the region would.
    const bus = await JetStreamEventBus.open({
      region: 'us-east',
      nats: nats['us-east']?.link() ?? { servers: [], name: '' },
    });
    try {
      const page = await bus.read({ from: 1, limit: 1000 });
      const mine = page.events.filter((e) => e.thingName === 'js-sensor-1');
      expect(mine.map((e) => e.id)).toEqual(ids);
      expect(mine[0]).toMatchObject({
        region: 'us-east',
        source: { type: 'rule', rule: 'telemetry' },
        topic: 'devices/js-sensor-1/telemetry',
        payload: { type: 'json', value: { messageId: ids[0], seq: 0 } },
      });
      // The region's bus API reads the same stream at the same offsets.
      const api = await east.call('GET', '/v1/events?from=0&limit=1000');
      expect(api.status).toBe(200);
      const viaApi = api.body.events.filter((e: { thingName?: string }) => e.thingName === 'js-sensor-1');
      expect(viaApi.map((e: { id: string; offset: number }) => [e.id, e.offset])).toEqual(
        mine.map((e) => [e.id, e.offset]),
      );
      // Its stream, nobody else's: us-west's stream has none of it.
      const west = await JetStreamEventBus.open({
        region: 'us-west',
        nats: nats['us-west']?.link() ?? { servers: [], name: '' },
      });
      try {
        const other = await west.read({ from: 1, limit: 1000 });
        expect(other.events.filter((e) => e.thingName === 'js-sensor-1')).toEqual([]);
      } finally {
        await west.close();
      }
      expect(bus.stream).toBe(eventStreamName('us-east'));
    } finally {
      await bus.close();
    }
  });

  it('fails its events checkpoint while its NATS is down, acknowledges nothing meanwhile, and takes the message again once it is back', async () => {
    const west = cluster.regions['us-west'];
    const server = nats['us-west']?.nodes[0];
    if (!west || !server) throw new Error('no us-west');
    const device = await provision(west, 'js-sensor-2');
    const client = await connect(west, device);
    try {
      await server.kill('SIGKILL');
      await waitUntil(
        async () => {
          const health = await west.call('GET', '/health');
          return health.body?.checks?.['events:appendRead']?.[0]?.status === 'fail';
        },
        { timeoutMs: 20_000, intervalMs: 200, what: 'the events checkpoint to fail with NATS down' },
      );
      // QoS 1 without a bus: the broker does not acknowledge what it could not store.
      const pending = client.publishAsync(
        'devices/js-sensor-2/telemetry',
        JSON.stringify({ messageId: 'js-sensor-2-msg-0' }),
        { qos: 1 },
      );
      let acked = false;
      void pending.then(
        () => {
          acked = true;
        },
        () => {},
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(acked).toBe(false);
      await server.start();
      await waitUntil(
        async () => {
          const health = await west.call('GET', '/health');
          return health.body?.checks?.['events:appendRead']?.[0]?.status === 'pass';
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'the events checkpoint to pass again' },
      );
    } finally {
      await client.endAsync(true);
    }
    // The device sends it again (its SDK would, after reconnecting): it is stored once.
    const again = await connect(west, device);
    try {
      for (let i = 0; i < 2; i++)
        await again.publishAsync(
          'devices/js-sensor-2/telemetry',
          JSON.stringify({ messageId: 'js-sensor-2-msg-0' }),
          { qos: 1 },
        );
    } finally {
      await again.endAsync();
    }
    const page = await west.call('GET', '/v1/events?from=0&limit=1000');
    const mine = page.body.events.filter((e: { thingName?: string }) => e.thingName === 'js-sensor-2');
    expect(mine.map((e: { id: string }) => e.id)).toEqual(['js-sensor-2-msg-0']);
  });

  it('is read by analytics with a durable consumer per region, counted once across a restart of analytics', async () => {
    const control = await startControl({
      config: cluster.config,
      stateDir: cluster.stateDir,
      logger,
      listen: { host: '127.0.0.1', port: 0 },
    });
    const start = () =>
      startAnalytics({
        config: cluster.config,
        stateDir: cluster.stateDir,
        logger,
        listen: { host: '127.0.0.1', port: 0 },
        controlUrl: control.controlUrl,
        ingest: { waitMs: 1000, retryBaseMs: 20, retryMaxMs: 200 },
        mirrorIntervalMs: 100,
      });
    const get = async (analytics: RunningAnalytics, path: string) => {
      const res = await fetch(`${analytics.url}${path}`, {
        headers: { authorization: `Bearer ${cluster.adminToken}` },
      });
      return res.json() as Promise<any>;
    };
    try {
      let analytics = await start();
      // The five messages of us-east's device and the one of us-west's, each once.
      await waitUntil(async () => (await get(analytics, '/v1/totals')).messages === 6, {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'analytics to count the 6 device messages of both streams',
      });
      const ingest = await get(analytics, '/v1/ingest');
      expect(ingest.items.map((i: any) => [i.region, i.state.type])).toEqual([
        ['us-east', 'ingesting'],
        ['us-west', 'ingesting'],
      ]);
      await analytics.stop();

      // More while analytics is down, then analytics again: it resumes where it was.
      const east = cluster.regions['us-east'];
      if (!east) throw new Error('no us-east');
      const device = await provision(east, 'js-sensor-3');
      const client = await connect(east, device);
      try {
        for (let i = 0; i < 3; i++)
          await client.publishAsync(
            'devices/js-sensor-3/telemetry',
            JSON.stringify({ messageId: `js-3-${i}` }),
            {
              qos: 1,
            },
          );
      } finally {
        await client.endAsync();
      }
      analytics = await start();
      try {
        await waitUntil(async () => (await get(analytics, '/v1/totals')).messages === 9, {
          timeoutMs: 20_000,
          intervalMs: 100,
          what: 'analytics to count the 3 messages sent while it was down',
        });
        const totals = await get(analytics, '/v1/totals');
        expect(totals).toMatchObject({ messages: 9, duplicates: 0, devicesWithGaps: 0 });
      } finally {
        await analytics.stop();
      }
    } finally {
      await control.stop();
    }
  });
});
