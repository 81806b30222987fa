/**
 * `iotdr analytics` over two real regions and a real `iotdr control`: devices publish over mTLS,
 * rules put their messages on each region's bus, analytics follows both buses over HTTP, and the
 * query API answers what a drill and the dashboard ask.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import {
  type RunningAnalytics,
  type RunningControl,
  startAnalytics,
  startControl,
} from '../../src/processes/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { connect, type Device, provision } from '../harness/devices.js';
import { fetch } from '../harness/https.js';
import { freePort } from '../harness/process.js';

const logger = createLogger({ level: 'silent' });

interface Answer {
  status: number;
  type: string;
  body: any;
}

describe('iotdr analytics', () => {
  let cluster: Cluster;
  let east: ClusterRegion;
  let west: ClusterRegion;
  let control: RunningControl;
  let analytics: RunningAnalytics | undefined;
  const clients: MqttClient[] = [];

  /** `faults`: accept stopping a region's ingestion (`--enable-faults`), as the drill starts it. */
  async function startIt(faults = true): Promise<RunningAnalytics> {
    analytics = await startAnalytics({
      faults,
      config: cluster.config,
      stateDir: cluster.stateDir,
      logger,
      listen: { host: '127.0.0.1', port: 0 },
      controlUrl: control.controlUrl,
      regionUrls: { 'us-east': east.url, 'us-west': west.url },
      ingest: { waitMs: 300, retryBaseMs: 20, retryMaxMs: 200 },
      mirrorIntervalMs: 100,
    });
    // Started means following both regions: the first reads over mutual TLS take a moment, and a
    // test that asks the health of an ingestion must not see the start of it.
    await eventually(async () => {
      for (const region of ['us-east', 'us-west'])
        if ((await get(`/v1/ingest/${region}/health`)).status !== 200) return false;
      return true;
    }, 'analytics following both regions');
    return analytics;
  }

  async function call(method: string, path: string, body?: unknown, token?: string): Promise<Answer> {
    if (!analytics) throw new Error('analytics is not running');
    const res = await fetch(`${analytics.url}${path}`, {
      method,
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      body: text ? JSON.parse(text) : undefined,
    };
  }
  /** Reads need a token of the reader role or above: the admin token here. */
  const get = (path: string) => call('GET', path, undefined, cluster.adminToken);

  /** A device provisioned in us-east and replicated to us-west, so it can publish in both. */
  async function deviceInBoth(
    name: string,
  ): Promise<{ device: Device; inEast: MqttClient; inWest: MqttClient }> {
    const device = await provision(east, name);
    await eventually(
      async () =>
        (await west.call('GET', `/v1/certificates/${device.certificateId}/policies`)).body?.items?.length ===
        1,
      `${name} replicated to us-west`,
    );
    const inEast = await connect(east, device);
    clients.push(inEast);
    const inWest = await connect(west, device, `${name}`);
    clients.push(inWest);
    return { device, inEast, inWest };
  }

  async function publish(client: MqttClient, thing: string, messageId: string, seq: number): Promise<void> {
    await client.publishAsync(`devices/${thing}/telemetry`, JSON.stringify({ messageId, seq, temp: 20 }), {
      qos: 1,
    });
  }

  async function deviceAnswer(thing: string): Promise<any> {
    const res = await get(`/v1/devices/${thing}`);
    return res.status === 200 ? res.body : undefined;
  }

  beforeAll(async () => {
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        // Distinct loopback addresses: every region listener on its own address and port.
        addresses: ['127.0.0.41', '127.0.0.42'],
        config: {
          rules: [{ name: 'telemetry', topicFilter: 'devices/+/telemetry', actions: [{ type: 'bus' }] }],
          failover: { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 2 },
          control: { address: '127.0.0.1', port: await freePort() },
          dns: { address: '127.0.0.1', port: await freePort() },
        },
      },
    );
    east = cluster.regions['us-east'] as ClusterRegion;
    west = cluster.regions['us-west'] as ClusterRegion;
    control = await startControl({ config: cluster.config, stateDir: cluster.stateDir, logger });
    await startIt();
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    await analytics?.stop();
    await control?.stop();
    await cluster?.close();
  });

  it('ingests both regions and counts a message published in both (one id) once', async () => {
    await eventually(
      async () => (await get('/v1/ingest')).body.items.every((i: any) => i.state.type === 'ingesting'),
      'both regions ingesting',
    );
    const before = (await get('/v1/totals')).body;
    const { inEast, inWest } = await deviceInBoth('dup-1');
    await publish(inEast, 'dup-1', 'dup-1-m1', 1);
    // Counted from us-east before its copy goes to us-west: which region's copy is the duplicate
    // is then known (the rates below show both regions), not a race between the two ingestors.
    await eventually(async () => (await deviceAnswer('dup-1'))?.messages === 1, 'the first message');
    await publish(inWest, 'dup-1', 'dup-1-m1', 1);
    await publish(inWest, 'dup-1', 'dup-1-m2', 2);
    await eventually(
      async () => (await get('/v1/totals')).body.duplicates === before.duplicates + 1,
      'the duplicate',
    );
    await eventually(async () => (await deviceAnswer('dup-1'))?.messages === 2, 'both messages');
    expect(await deviceAnswer('dup-1')).toMatchObject({
      thingName: 'dup-1',
      messages: 2,
      firstSeq: 1,
      lastSeq: 2,
      missing: 0,
      lastRegion: 'us-west',
    });
    const totals = (await get('/v1/totals')).body;
    expect(totals.messages).toBe(before.messages + 2);
    const ingest = (await get('/v1/ingest')).body.items;
    expect(ingest.map((i: any) => i.region)).toEqual(['us-east', 'us-west']);
    expect(ingest.reduce((n: number, i: any) => n + i.duplicates, 0)).toBe(totals.duplicates);
    // Both regions' messages show in the per-second rates.
    const rates = (await get('/v1/rates')).body.items;
    expect(new Set(rates.map((r: any) => r.region))).toEqual(new Set(['us-east', 'us-west']));
    const metrics = await (await fetch(`${analytics?.url}/metrics`)).text();
    expect(metrics).toMatch(/iotdr_analytics_duplicates_total\{region="us-(east|west)"\} 1/);
    expect(metrics).toContain('iotdr_analytics_region_healthy{region="us-east"} 1');
  });

  it('reports a device whose seq 3 never arrived, and fills the gap when seq 3 comes late through the other region', async () => {
    const { inEast, inWest } = await deviceInBoth('gap-1');
    for (const seq of [1, 2, 4, 5]) await publish(inEast, 'gap-1', `gap-1-m${seq}`, seq);
    await eventually(async () => (await deviceAnswer('gap-1'))?.messages === 4, 'four messages');
    expect(await deviceAnswer('gap-1')).toMatchObject({
      missing: 1,
      gaps: [{ from: 3, to: 3 }],
      firstSeq: 1,
      lastSeq: 5,
    });
    const withGaps = (await get('/v1/devices?gaps=true')).body.items.map((d: any) => d.thingName);
    expect(withGaps).toContain('gap-1');
    await publish(inWest, 'gap-1', 'gap-1-m3', 3);
    await eventually(async () => (await deviceAnswer('gap-1'))?.missing === 0, 'the gap filled');
    expect(await deviceAnswer('gap-1')).toMatchObject({ messages: 5, gaps: [] });
    expect((await get('/v1/devices?gaps=true')).body.items.map((d: any) => d.thingName)).not.toContain(
      'gap-1',
    );
  });

  it('resumes from the persisted offsets after a restart: nothing counted twice, nothing skipped', async () => {
    const device = await provision(east, 'restart-1');
    const client = await connect(east, device);
    clients.push(client);
    await publish(client, 'restart-1', 'restart-1-m1', 1);
    await eventually(async () => (await deviceAnswer('restart-1'))?.messages === 1, 'the first message');
    const before = (await get('/v1/totals')).body;
    const offsets = (await get('/v1/ingest')).body.items.map((i: any) => i.nextOffset);
    await analytics?.stop();
    analytics = undefined;
    // Published while analytics is down: still on the bus, read after the restart.
    for (const seq of [2, 3, 4]) await publish(client, 'restart-1', `restart-1-m${seq}`, seq);
    await startIt();
    const resumed = (await get('/v1/ingest')).body.items;
    for (const [i, status] of resumed.entries()) expect(status.nextOffset).toBeGreaterThanOrEqual(offsets[i]);
    await eventually(
      async () => (await deviceAnswer('restart-1'))?.messages === 4,
      'the messages sent while down',
    );
    expect(await deviceAnswer('restart-1')).toMatchObject({ firstSeq: 1, lastSeq: 4, missing: 0 });
    const after = (await get('/v1/totals')).body;
    expect(after.messages).toBe(before.messages + 3);
    expect(after.duplicates).toBe(before.duplicates);
  });

  it('mirrors the controller decision log: a manual switch shows in the timeline', async () => {
    const res = await fetch(`${control.controlUrl}/v1/failover/switch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'us-west', reason: 'analytics test' }),
    });
    expect(res.status).toBe(200);
    const decided = (await res.json()) as { switch: { seq: number; epoch: number } };
    await eventually(
      async () =>
        (await get('/v1/timeline?type=switch')).body.items.some((e: any) => e.seq === decided.switch.seq),
      'the switch in the timeline',
    );
    const entry = (await get('/v1/timeline?type=switch')).body.items.find(
      (e: any) => e.seq === decided.switch.seq,
    );
    expect(entry).toMatchObject({
      type: 'switch',
      event: {
        from: 'us-east',
        to: 'us-west',
        trigger: { type: 'manual', reason: 'analytics test', who: 'admin' },
        epoch: decided.switch.epoch,
      },
    });
    expect(entry.event.timings.decidedAt).toBeTypeOf('number');
    const all = (await get('/v1/timeline?limit=500')).body.items.map((e: any) => e.seq);
    expect(all).toEqual([...all].sort((a, b) => a - b));
    expect((await get('/v1/ingest')).body.control.state.type).toBe('following');
    // Health history is the timeline's region-health entries, of one region when asked.
    const history = (await get('/v1/health-history?region=us-east')).body.items;
    expect(history.every((e: any) => e.type === 'region-health' && e.event.region === 'us-east')).toBe(true);
  });

  it('refuses to stop a region without --enable-faults: fault injection, not an operation', async () => {
    await analytics?.stop();
    await startIt(false);
    try {
      const refused = await call('POST', '/v1/ingest/us-east/stop', { reason: 'drill' }, cluster.adminToken);
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe('IOTDR_FAULTS_DISABLED');
      expect(refused.body.detail).toContain('iotdr analytics --enable-faults');
      expect((await get('/v1/ingest/us-east/health')).status).toBe(200);
      expect((await get('/v1/ingest')).body.items[0].state.type).not.toBe('stopped');
    } finally {
      await analytics?.stop();
      await startIt();
    }
  });

  it('stops and resumes one region on an admin request; its health answers 503 while stopped', async () => {
    const healthy = await get('/v1/ingest/us-east/health');
    expect(healthy.status).toBe(200);
    expect(healthy.type).toContain('application/health+json');
    expect(healthy.body.status).toBe('pass');
    expect((await call('POST', '/v1/ingest/us-east/stop', { reason: 'drill' })).status).toBe(401);
    expect((await call('POST', '/v1/ingest/us-east/stop', {}, cluster.adminToken)).status).toBe(400);
    const stopped = await call('POST', '/v1/ingest/us-east/stop', { reason: 'drill' }, cluster.adminToken);
    expect(stopped.status).toBe(200);
    expect(stopped.body.state).toMatchObject({ type: 'stopped', reason: 'drill' });
    const unhealthy = await get('/v1/ingest/us-east/health');
    expect(unhealthy.status).toBe(503);
    expect(unhealthy.type).toContain('application/health+json');
    // The health answer is open (the regions' checkpoints call it): it tells no reason, /v1/ingest does.
    expect(unhealthy.body).toMatchObject({
      status: 'fail',
      output: 'ingestion stopped (GET /v1/ingest says why)',
      state: { type: 'stopped' },
    });
    expect(JSON.stringify(unhealthy.body)).not.toContain('drill');
    expect((await get('/v1/ingest')).body.items[0].state).toMatchObject({ type: 'stopped', reason: 'drill' });
    // Really stopped: a message appended to the us-east bus is not read while stopped.
    const device = await provision(east, 'stop-1');
    const client = await connect(east, device);
    clients.push(client);
    const nextOffset = (await get('/v1/ingest')).body.items[0].nextOffset;
    await publish(client, 'stop-1', 'stop-1-m1', 1);
    const busLast = async () =>
      (await east.call('GET', '/v1/events?from=0&limit=1')).body.lastOffset as number;
    await eventually(async () => (await busLast()) >= nextOffset, 'the message on the us-east bus');
    await new Promise((r) => setTimeout(r, 700));
    expect((await get('/v1/ingest')).body.items[0].nextOffset).toBe(nextOffset);
    expect(await deviceAnswer('stop-1')).toBeUndefined();
    const resumed = await call('POST', '/v1/ingest/us-east/resume', undefined, cluster.adminToken);
    expect(resumed.status).toBe(200);
    await eventually(async () => (await get('/v1/ingest/us-east/health')).status === 200, 'healthy again');
    await eventually(
      async () => (await deviceAnswer('stop-1'))?.messages === 1,
      'the message read after resume',
    );
  });

  it('answers bad parameters with 400 problem+json and unknown regions and devices with 404', async () => {
    const bad = [
      '/v1/rates?from=abc',
      '/v1/rates?from=0&to=3600001',
      '/v1/rates?from=2000&to=1000',
      '/v1/rates?colour=red',
      '/v1/devices?limit=0',
      '/v1/devices?limit=1001',
      '/v1/devices?gaps=maybe',
      '/v1/timeline?after=-1',
      '/v1/timeline?type=NOT_A_TYPE',
      '/v1/health-history?limit=x',
    ];
    for (const path of bad) {
      const res = await get(path);
      expect(res.status, path).toBe(400);
      expect(res.type, path).toContain('application/problem+json');
      expect(res.body.code, path).toBe('IOTDR_VALIDATION_FAILED');
    }
    for (const path of [
      '/v1/ingest/mars/health',
      '/v1/rates?region=mars',
      '/v1/health-history?region=mars',
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(res.type, path).toContain('application/problem+json');
      expect(res.body.code, path).toBe('IOTDR_ANALYTICS_UNKNOWN_REGION');
    }
    const noDevice = await get('/v1/devices/nobody-here');
    expect(noDevice.status).toBe(404);
    expect(noDevice.body.code).toBe('IOTDR_ANALYTICS_UNKNOWN_DEVICE');
    const stopMars = await call('POST', '/v1/ingest/mars/stop', { reason: 'x' }, cluster.adminToken);
    expect(stopMars.status).toBe(404);
    expect((await get('/livez')).status).toBe(200);
  });

  it('shows a region that went away as unreachable, its health 503', async () => {
    await west.stop();
    await eventually(
      async () => (await get('/v1/ingest')).body.items[1].state.type === 'unreachable',
      'us-west unreachable',
    );
    const health = await get('/v1/ingest/us-west/health');
    expect(health.status).toBe(503);
    expect(health.body.output).toMatch(/^the region's bus cannot be read/);
    // The other region is not affected.
    expect((await get('/v1/ingest/us-east/health')).status).toBe(200);
  });
});
