/**
 * The device's file-backed QoS1 queue: what `publish` accepted survives closing the client and
 * killing its process, reaches the broker when one is reachable again, and a full queue refuses
 * new messages instead of dropping old ones.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceClient, type DeviceClientOptions } from '../../src/device/index.js';
import { eventually } from '../harness/cluster.js';
import type { Device } from '../harness/devices.js';
import { freePort } from '../harness/process.js';
import { type DrSite, nextEvent, startDrSite } from './support.js';

describe('device SDK queue', () => {
  let site: DrSite;

  beforeAll(async () => {
    site = await startDrSite(['127.0.0.55', '127.0.0.56']);
  });
  afterAll(async () => {
    await site?.close();
  });

  /** Options of a device whose DNS server does not answer: no broker is reachable. */
  async function unreachable(
    device: Device,
    path: string,
    maxMessages: number,
  ): Promise<DeviceClientOptions> {
    return {
      thingName: device.thingName,
      zone: 'iot.test',
      port: site.mqttPort,
      auth: { type: 'mtls', certPem: device.certPem, keyPem: device.keyPem, caPem: site.caPem },
      dns: { servers: [`127.0.0.1:${await freePort()}`], timeoutMs: 100, recheckMs: 0 },
      backoff: { baseMs: 20, capMs: 100 },
      queue: { path, maxMessages },
    };
  }

  async function deliverAll(device: Device, path: string, ids: string[]): Promise<DeviceClient> {
    const client = site.client(device, { queue: { path } });
    expect(client.queueDepth).toBeGreaterThanOrEqual(ids.length);
    const connected = nextEvent(client, 'connected');
    client.start();
    await connected;
    await eventually(async () => client.queueDepth === 0, 'the queue drained');
    const onBus = await site.busIds(site.east);
    expect(ids.filter((id) => !onBus.has(id))).toEqual([]);
    return client;
  }

  it('keeps what it accepted while no broker is reachable, refuses when full, and a new client delivers it', async () => {
    const device = await site.device('queue-1');
    const path = join(site.dir, 'queue-1.db');
    const first = new DeviceClient(await unreachable(device, path, 30));
    const retried = nextEvent(first, 'retry', (e) => e.attempt >= 2);
    first.start();
    const ids: string[] = [];
    for (let seq = 0; seq < 30; seq++)
      ids.push((await first.publish('devices/queue-1/telemetry', { seq })).messageId);
    expect(new Set(ids).size).toBe(30);
    await expect(first.publish('devices/queue-1/telemetry', { seq: 30 })).rejects.toMatchObject({
      code: 'IOTDR_DEVICE_QUEUE_FULL',
      details: { maxMessages: 30 },
    });
    expect(first.queueDepth).toBe(30);
    expect((await retried).error).toMatch(/resolving mqtt\.iot\.test/);
    await first.close();
    await expect(first.publish('devices/queue-1/telemetry', {})).rejects.toMatchObject({
      code: 'IOTDR_DEVICE_CLOSED',
    });

    const second = await deliverAll(device, path, ids);
    expect(second.counters).toMatchObject({ published: 0, acked: 30, connects: 1 });
    // Each was delivered once: the bus keeps one event per id, with the payload the device gave.
    const events = await fetch(`${site.east.url}/v1/events?limit=1000`, {
      headers: { authorization: `Bearer ${site.cluster.adminToken}` },
    });
    const body = (await events.json()) as { events: { id: string; payload: { value: { seq: number } } }[] };
    const mine = body.events.filter((e) => ids.includes(e.id));
    expect(mine.map((e) => e.payload.value.seq)).toEqual([...Array(30).keys()]);
  });

  it('keeps the queues of devices sharing one file apart, each delivered by its own device', async () => {
    const [a, b] = [await site.device('shared-a'), await site.device('shared-b')];
    const path = join(site.dir, 'shared.db');
    const offlineA = new DeviceClient(await unreachable(a, path, 10));
    const offlineB = new DeviceClient(await unreachable(b, path, 10));
    const idsA: string[] = [];
    const idsB: string[] = [];
    for (let seq = 0; seq < 10; seq++) {
      idsA.push((await offlineA.publish('devices/shared-a/telemetry', { seq })).messageId);
      if (seq < 4) idsB.push((await offlineB.publish('devices/shared-b/telemetry', { seq })).messageId);
    }
    // Each device's bound is its own: a is full, b is not.
    await expect(offlineA.publish('devices/shared-a/telemetry', {})).rejects.toMatchObject({
      code: 'IOTDR_DEVICE_QUEUE_FULL',
    });
    expect([offlineA.queueDepth, offlineB.queueDepth]).toEqual([10, 4]);
    // Closing one client leaves the other's connection to the file open.
    await offlineA.close();
    idsB.push((await offlineB.publish('devices/shared-b/telemetry', { seq: 4 })).messageId);
    await offlineB.close();

    const deliveredA = await deliverAll(a, path, idsA);
    expect(deliveredA.counters.acked).toBe(10);
    const deliveredB = await deliverAll(b, path, idsB);
    expect(deliveredB.counters.acked).toBe(5);
  });

  it('keeps every accepted message across a SIGKILL of the device process', async () => {
    const device = await site.device('queue-2');
    const path = join(site.dir, 'queue-2.db');
    const optionsFile = join(site.dir, 'queue-2.json');
    await writeFile(optionsFile, JSON.stringify(await unreachable(device, path, 100_000)));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./publisher-child.ts', import.meta.url)), optionsFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ?? code)),
    );
    await eventually(
      async () => out.split('\n').length > 200 || child.exitCode !== null,
      'accepted messages',
    );
    child.kill('SIGKILL');
    expect(await exited, err).toBe('SIGKILL');
    // Only whole lines: an id is printed after its publish resolved.
    const ids = out.split('\n').slice(0, -1);
    expect(ids.length).toBeGreaterThan(200);
    await deliverAll(device, path, ids);
  });

  it('refuses what is not a JSON object, and a topic with wildcards, accepting nothing', async () => {
    const device = await site.device('queue-3');
    const client = new DeviceClient(await unreachable(device, join(site.dir, 'queue-3.db'), 10));
    try {
      for (const bad of [[1, 2], 'not json', '42', Buffer.from('null')] as unknown[])
        await expect(client.publish('devices/queue-3/telemetry', bad as string)).rejects.toMatchObject({
          code: 'IOTDR_DEVICE_INVALID_PAYLOAD',
        });
      await expect(client.publish('devices/+/telemetry', {})).rejects.toMatchObject({
        code: 'IOTDR_DEVICE_INVALID_TOPIC',
      });
      await expect(client.publish('devices/queue-3/telemetry', {}, { qos: 0 as 1 })).rejects.toMatchObject({
        code: 'IOTDR_DEVICE_INVALID_QOS',
      });
      expect(client.queueDepth).toBe(0);
      // Text holding a JSON object is taken, and the id set in it.
      await client.publish('devices/queue-3/telemetry', '{"t":1,"messageId":"mine"}');
      expect(client.queueDepth).toBe(1);
    } finally {
      await client.close();
    }
  });
});
