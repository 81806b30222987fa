/**
 * The whole region, as `iotdr region` runs it: broker, registry, replication, rules, bus and health
 * together, over real TLS (devices' MQTT, the HTTPS APIs), with two regions replicating to each other.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningRegion } from '../../src/processes/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { connect, provision } from '../harness/devices.js';
import { fetch } from '../harness/https.js';

function running(region: ClusterRegion): RunningRegion {
  if (!region.running) throw new Error(`${region.name} is not running`);
  return region.running;
}

describe('a region', () => {
  let cluster: Cluster;
  let east: ClusterRegion;
  let west: ClusterRegion;
  let app: Server;
  let appUp = true;

  beforeAll(async () => {
    // The application service the `app` checkpoint watches.
    app = createServer((_req, res) => {
      res.writeHead(appUp ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: appUp }));
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}/healthz`;
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        config: {
          rules: [{ name: 'telemetry', topicFilter: 'devices/+/telemetry', actions: [{ type: 'bus' }] }],
          health: {
            // Every request runs the checkpoints: the health test reads /health right after a stop.
            cacheMs: 0,
            checks: [{ name: 'orders-app', component: 'app', url: appUrl, bodyMatch: '"ok":true' }],
          },
        },
      },
    );
    east = cluster.regions['us-east'] as ClusterRegion;
    west = cluster.regions['us-west'] as ClusterRegion;
  }, 60_000);

  afterAll(async () => {
    await cluster?.close();
    app?.close();
  });

  it('disconnects a device on the secondary within a second of its revocation arriving from the primary', async () => {
    const device = await provision(east, 'revoked-1');
    await eventually(
      async () => (await west.call('GET', `/v1/certificates/${device.certificateId}`)).status === 200,
      'the certificate in us-west',
    );
    await eventually(
      async () =>
        (await west.call('GET', `/v1/certificates/${device.certificateId}/policies`)).body?.items?.length ===
        1,
      'the policy attachment in us-west',
    );
    const client = await connect(west, device);
    expect(client.connected).toBe(true);

    // When the revocation commits in us-west (applied by replication), and when the session closes.
    let arrivedAt: number | undefined;
    const off = running(west).service.onCommit((changes) => {
      if (
        changes.some(
          (c) => c.kind === 'certificate' && c.key === device.certificateId && c.origin === 'us-east',
        )
      )
        arrivedAt ??= Date.now();
    });
    const closedAt = new Promise<number>((resolve) => client.once('close', () => resolve(Date.now())));
    try {
      const revoked = await east.call('PATCH', `/v1/certificates/${device.certificateId}`, {
        status: 'REVOKED',
      });
      expect(revoked.status).toBe(200);
      const closed = await closedAt;
      await eventually(async () => arrivedAt !== undefined, 'the revocation in us-west');
      expect(closed - (arrivedAt as number)).toBeLessThan(1000);
      // And it stays out.
      await expect(connect(west, device, 'revoked-1-again')).rejects.toThrow();
    } finally {
      off();
      await client.endAsync(true);
    }
  });

  it('puts messages through a rule on the bus, where a consumer reads them from an offset', async () => {
    const device = await provision(east, 'sensor-7');
    const client = await connect(east, device);
    try {
      const ids = Array.from({ length: 5 }, (_, i) => `sensor-7-msg-${i}`);
      for (const [seq, messageId] of ids.entries()) {
        await client.publishAsync(
          'devices/sensor-7/telemetry',
          JSON.stringify({ messageId, seq, t: 20 + seq }),
          {
            qos: 1,
          },
        );
      }
      // Not taken by the rule: another topic.
      await client.publishAsync('devices/sensor-7/status', JSON.stringify({ messageId: 'status-1' }), {
        qos: 1,
      });
    } finally {
      await client.endAsync();
    }
    // PUBACK came after the append: the events are there at once.
    const all = await east.call('GET', '/v1/events?from=0&limit=1000');
    expect(all.status).toBe(200);
    const mine = all.body.events.filter((e: any) => e.thingName === 'sensor-7');
    expect(mine.map((e: any) => e.id)).toEqual(ids());
    expect(mine[0]).toMatchObject({
      region: 'us-east',
      source: { type: 'rule', rule: 'telemetry' },
      topic: 'devices/sensor-7/telemetry',
      clientId: 'sensor-7',
      payload: { type: 'json', value: { messageId: 'sensor-7-msg-0', seq: 0, t: 20 } },
    });
    // From the third message's offset on: the last three, and nothing of the other topic.
    const from = mine[2].offset as number;
    const page = await east.call('GET', `/v1/events?from=${from}&limit=1000`);
    const later = page.body.events.filter((e: any) => e.thingName === 'sensor-7');
    expect(later.map((e: any) => e.id)).toEqual(ids().slice(2));
    // A reader without a token gets nothing.
    const anonymous = await fetch(`${east.url}/v1/events?from=0`);
    expect(anonymous.status).toBe(401);

    function ids(): string[] {
      return Array.from({ length: 5 }, (_, i) => `sensor-7-msg-${i}`);
    }
  });

  it('keeps a shadow in step across regions and tells the device on the other side', async () => {
    const device = await provision(east, 'lamp-1');
    await eventually(
      async () =>
        (await west.call('GET', `/v1/certificates/${device.certificateId}/policies`)).body?.items?.length ===
        1,
      'lamp-1 in us-west',
    );
    const client = await connect(west, device);
    try {
      await client.subscribeAsync('$iotdr/things/lamp-1/shadow/update/delta', { qos: 1 });
      const delta = new Promise<any>((resolve) =>
        client.on('message', (topic, payload) => {
          if (topic.endsWith('/update/delta')) resolve(JSON.parse(payload.toString()));
        }),
      );
      const updated = await east.call('POST', '/v1/things/lamp-1/shadow', {
        state: { desired: { on: true } },
      });
      expect(updated.status).toBe(200);
      expect((await delta).state).toEqual({ on: true });
      const shadow = await west.call('GET', '/v1/things/lamp-1/shadow');
      expect(shadow.body.state.desired).toEqual({ on: true });
    } finally {
      await client.endAsync();
    }
  });

  it('fails /health when its broker stops and when the application service is down, within its budget', async () => {
    const ok = await fetch(`${east.url}/health`);
    expect(ok.headers.get('content-type')).toContain('application/health+json');
    const healthy = (await ok.json()) as any;
    expect(ok.status).toBe(200);
    expect(healthy.checks['broker:roundTrip'][0].status).toBe('pass');
    expect(healthy.checks['app:responseTime'][0].status).toBe('pass');
    expect(healthy.checks['events:appendRead'][0].status).toBe('pass');
    expect(healthy.checks['registry:writeRead'][0].status).toBe('pass');

    appUp = false;
    await running(east).broker.close();
    const started = Date.now();
    const res = await fetch(`${east.url}/health`);
    const elapsed = Date.now() - started;
    const body = (await res.json()) as any;
    expect(res.status).toBe(503);
    expect(body.status).toBe('fail');
    expect(body.checks['broker:roundTrip'][0]).toMatchObject({ status: 'fail' });
    expect(body.checks['app:responseTime'][0]).toMatchObject({ status: 'fail' });
    expect(body.checks['registry:writeRead'][0].status).toBe('pass');
    expect(elapsed).toBeLessThan(running(east).health.budgetMs);
    // The other region is not affected.
    const other = await fetch(`${west.url}/health/broker`);
    expect(other.status).toBe(200);
  });
});
