/**
 * The device's file-backed QoS1 queue: what `publish` accepted survives closing the client and
 * killing its process, reaches the broker when one is reachable again, and a full queue refuses
 * new messages instead of dropping old ones.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceClient, type DeviceClientOptions } from '../../src/device/index.js';
import { eventually } from '../harness/cluster.js';
import type { Device } from '../harness/devices.js';
import { fetch } from '../harness/https.js';
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

  /**
   * Runs the publisher child with these devices until at least `atLeast` messages were accepted,
   * SIGKILLs it, and gives each device's accepted ids (printed once `publish` resolved).
   */
  async function acceptUntilKilled(
    options: DeviceClientOptions[],
    burst: number,
    atLeast: number,
  ): Promise<Map<string, string[]>> {
    const optionsFile = join(site.dir, `${options[0]?.thingName}.json`);
    await writeFile(optionsFile, JSON.stringify(options));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(new URL('./publisher-child.ts', import.meta.url)),
        optionsFile,
        String(burst),
      ],
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
      // Whole lines: the text after the last newline may be half an id.
      async () => out.split('\n').length - 1 > atLeast || child.exitCode !== null,
      'accepted messages',
    );
    child.kill('SIGKILL');
    expect(await exited, err).toBe('SIGKILL');
    // Only whole lines: an id is printed after its publish resolved.
    const accepted = new Map<string, string[]>(options.map((o) => [o.thingName, []]));
    for (const line of out.split('\n').slice(0, -1)) {
      const [thing, id] = line.split(' ');
      accepted.get(thing as string)?.push(id as string);
    }
    expect([...accepted.values()].flat().length).toBeGreaterThan(atLeast);
    return accepted;
  }

  it('keeps every accepted message across a SIGKILL of the device process', async () => {
    const device = await site.device('queue-2');
    const path = join(site.dir, 'queue-2.db');
    const accepted = await acceptUntilKilled([await unreachable(device, path, 100_000)], 1, 200);
    await deliverAll(device, path, accepted.get('queue-2') ?? []);
  });

  it('loses no accepted message when killed while batches of devices sharing a file are committed', async () => {
    // Bursts from two devices on one file make each commit hold many messages of both; the
    // simulated fleet's settings (`normal`: no fsync, promised only against a process kill; a
    // commit at most every 50 ms) are the ones with the most accepted at stake in one commit.
    const [a, b] = [await site.device('batch-a'), await site.device('batch-b')];
    const path = join(site.dir, 'batch.db');
    const options = await Promise.all(
      [a, b].map(async (d) => {
        const o = await unreachable(d, path, 100_000);
        return { ...o, queue: { ...o.queue, synchronous: 'normal' as const, commitIntervalMs: 50 } };
      }),
    );
    // Past 256 KiB each, so the new clients read the backlog from the file, not from memory.
    const accepted = await acceptUntilKilled(options, 25, 4000);
    expect(accepted.get('batch-a')?.length).toBeGreaterThan(0);
    expect(accepted.get('batch-b')?.length).toBeGreaterThan(0);
    await deliverAll(a, path, accepted.get('batch-a') ?? []);
    await deliverAll(b, path, accepted.get('batch-b') ?? []);
  });

  it('counts messages still being committed against maxMessages', async () => {
    const device = await site.device('queue-4');
    const client = new DeviceClient(await unreachable(device, join(site.dir, 'queue-4.db'), 5));
    try {
      // Published in one turn, none committed yet when the sixth is asked for.
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, seq) => client.publish('devices/queue-4/telemetry', { seq })),
      );
      expect(results.map((r) => r.status)).toEqual([
        ...Array(5).fill('fulfilled'),
        ...Array(3).fill('rejected'),
      ]);
      for (const r of results.slice(5))
        expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'IOTDR_DEVICE_QUEUE_FULL' });
      expect(client.queueDepth).toBe(5);
    } finally {
      await client.close();
    }
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

describe('device SDK queue files', () => {
  const mode = async (path: string) => (await stat(path)).mode & 0o777;
  const options = (path: string, thingName: string): DeviceClientOptions => ({
    thingName,
    zone: 'iot.test',
    auth: { type: 'token', token: 'unused', caPem: '-----BEGIN CERTIFICATE-----' },
    queue: { path },
  });

  for (const umask of [0o022, 0o000]) {
    it(`are the owner's alone under umask ${umask.toString(8).padStart(3, '0')}: the directory 0700, the database, -wal and -shm 0600`, async () => {
      const root = await mkdtemp(join(tmpdir(), 'iotdr-queue-modes-'));
      const previous = process.umask(umask);
      try {
        const dir = join(root, 'state', 'queues');
        const path = join(dir, 'device.db');
        const client = new DeviceClient(options(path, 'modes-1'));
        try {
          // Accepted while no broker is reachable: written, so the write-ahead log holds it.
          await client.publish('devices/modes-1/telemetry', { reading: 1 });
          expect(await mode(join(root, 'state'))).toBe(0o700);
          expect(await mode(dir)).toBe(0o700);
          for (const file of [path, `${path}-wal`, `${path}-shm`]) expect(await mode(file), file).toBe(0o600);
        } finally {
          await client.close();
        }
      } finally {
        process.umask(previous);
        await rm(root, { recursive: true, force: true });
      }
    });
  }

  it('makes a queue file an older version left readable 0600, and leaves an existing directory as it is', async () => {
    const root = await mkdtemp(join(tmpdir(), 'iotdr-queue-modes-'));
    try {
      await chmod(root, 0o755);
      const path = join(root, 'device.db');
      const first = new DeviceClient(options(path, 'modes-2'));
      await first.publish('devices/modes-2/telemetry', { reading: 1 });
      await first.close();
      await chmod(path, 0o644);
      const again = new DeviceClient(options(path, 'modes-2'));
      try {
        expect(again.queueDepth).toBe(1);
        expect(await mode(path)).toBe(0o600);
        expect(await mode(root)).toBe(0o755);
      } finally {
        await again.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
