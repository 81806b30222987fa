/**
 * Reconnect delays (exponential backoff with full jitter, driven by injected random and timers),
 * CONNACK refusals retried without giving up, DNS answers kept no longer than their TTL, and
 * option validation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Timers } from '../../src/common/index.js';
import {
  Backoff,
  DestinationResolver,
  DeviceClient,
  type DeviceClientOptions,
  type DeviceEventOf,
  parseDeviceOptions,
} from '../../src/device/index.js';
import { eventually } from '../harness/cluster.js';
import { type DrSite, nextEvent, startDrSite } from './support.js';

/** Timers that record what was asked and fire almost at once, so no test waits out a backoff. */
function recordingTimers() {
  const asked: number[] = [];
  const live = new Set<unknown>();
  const timers: Timers = {
    setTimeout(callback, ms) {
      asked.push(ms);
      const handle = setTimeout(() => {
        live.delete(handle);
        callback();
      }, 1);
      live.add(handle);
      return handle;
    },
    clearTimeout(handle) {
      live.delete(handle);
      clearTimeout(handle as NodeJS.Timeout);
    },
  };
  return { timers, asked, live };
}

describe('Backoff', () => {
  it('draws every delay from [0, min(cap, base × 2^attempt)] and starts over after reset', () => {
    const draws = [0.999_999, 0, 0.5, 0.25, 0.999_999, 0.75, 0.1, 0.999_999, 0.999_999, 0.3];
    let i = 0;
    const backoff = new Backoff({
      baseMs: 200,
      capMs: 10_000,
      random: () => draws[i++ % draws.length] as number,
    });
    const bounds = [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000];
    for (const [n, bound] of bounds.entries()) {
      const { attempt, delayMs, boundMs } = backoff.next();
      expect(attempt).toBe(n);
      expect(boundMs).toBe(bound);
      expect(delayMs).toBe(Math.floor((draws[n] as number) * bound));
      expect(delayMs).toBeGreaterThanOrEqual(0);
      expect(delayMs).toBeLessThanOrEqual(bound);
    }
    // Far past the cap, 2^n does not overflow the bound.
    for (let n = 0; n < 2000; n++) expect(backoff.next().boundMs).toBe(10_000);
    backoff.reset();
    expect(backoff.next()).toMatchObject({ attempt: 0, boundMs: 200 });
  });
});

describe('device SDK against a refusing broker and changing DNS', () => {
  let site: DrSite;

  beforeAll(async () => {
    site = await startDrSite(['127.0.0.57', '127.0.0.58']);
  });
  afterAll(async () => {
    await site?.close();
  });

  it('retries CONNACK refusals with full-jitter backoff, never giving up, and resets after connecting', async () => {
    const device = await site.device('refused-1');
    const setStatus = async (status: string) =>
      expect(
        (await site.east.call('PATCH', `/v1/certificates/${device.certificateId}`, { status })).status,
      ).toBe(200);
    await setStatus('INACTIVE');

    const draws = [0.999_999, 0.5, 0, 0.75];
    let i = 0;
    const { timers, asked, live } = recordingTimers();
    const client = site.client(device, {
      backoff: { baseMs: 100, capMs: 1000 },
      // Only the backoff draws from `random` and waits on `timers` here (no DNS watch).
      dns: { servers: [site.dnsServer], recheckMs: 0, retryMs: 0 },
      timers,
      random: () => draws[i++ % draws.length] as number,
    });
    const retries: DeviceEventOf<'retry'>[] = [];
    client.on('retry', (e) => retries.push(e));
    client.start();
    await eventually(async () => retries.length >= 8, 'eight refused attempts');
    await setStatus('ACTIVE');
    const connected = nextEvent(client, 'connected');
    await connected;

    const refused = retries.slice(0, 8);
    for (const [n, e] of refused.entries()) {
      const bound = Math.min(1000, 100 * 2 ** n);
      expect(e).toMatchObject({ attempt: n, boundMs: bound });
      expect(e.delayMs).toBe(Math.floor((draws[n % draws.length] as number) * bound));
      expect(e.delayMs).toBeLessThanOrEqual(bound);
    }
    expect(refused.every((e) => /Not authorized|not authorized/i.test(e.error))).toBe(true);
    // The delays asked of the timers are those delays: nothing else waited.
    expect(asked.slice(0, 8)).toEqual(refused.map((e) => e.delayMs));
    expect(client.counters.retries).toBeGreaterThanOrEqual(8);

    // After a successful connect the next loss starts again from the base.
    const before = retries.length;
    const disconnected = nextEvent(client, 'disconnected');
    await setStatus('INACTIVE');
    expect(await disconnected).toMatchObject({ reason: 'disconnect', region: 'us-east' });
    await eventually(async () => retries.length >= before + 2, 'retries after the loss');
    expect(retries[before]).toMatchObject({ attempt: 0, boundMs: 100, error: 'disconnect' });
    expect(retries[before + 1]).toMatchObject({ attempt: 1, boundMs: 200 });

    await client.close();
    expect(live.size).toBe(0);
  });

  it('answers from its cache only while the TTL runs, then asks DNS again', async () => {
    let now = 1_000_000;
    const resolver = new DestinationResolver({
      name: 'mqtt.iot.test',
      servers: [site.dnsServer],
      timeoutMs: 1000,
      clock: { now: () => now },
    });
    try {
      const from = site.activeRegion();
      const to = from === 'us-east' ? 'us-west' : 'us-east';
      const first = await resolver.current();
      expect(first).toMatchObject({ address: site.addresses[from], region: from, family: 4 });
      // The built-in DNS answers with the configured TTL (5 s).
      expect(first.expiresAt).toBe(now + 5000);
      await site.switchTo(to);
      now += 4999;
      expect((await resolver.current()).address).toBe(site.addresses[from]);
      now += 1;
      const second = await resolver.current();
      expect(second).toMatchObject({ address: site.addresses[to], region: to });
      expect(second.epoch).toBeGreaterThan(first.epoch ?? -1);
    } finally {
      resolver.close();
    }
  });

  it('validates its options at construction, naming each bad field', () => {
    const good: DeviceClientOptions = {
      thingName: 'valid-1',
      zone: 'iot.test',
      auth: { type: 'token', token: 'iotdrdev_x', caPem: site.caPem },
      queue: { path: `${site.dir}/never.db` },
    };
    const bad = {
      ...good,
      thingName: 'has space',
      backoff: { baseMs: 500, capMs: 100 },
      dns: { servers: ['nope'] },
    };
    let error: unknown;
    try {
      new DeviceClient(bad);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'IOTDR_DEVICE_INVALID_OPTIONS', status: 400 });
    const paths = (error as { issues: { path: string }[] }).issues.map((i) => i.path).sort();
    expect(paths).toEqual(['backoff.capMs', 'dns.servers.0', 'thingName']);
    expect(() => new DeviceClient({ ...good, queue: undefined as never })).toThrow(/queue/);
    // Ports: 8883 for mTLS, the token listener's 8884 (or auth.port) for tokens, `port` over both.
    expect(parseDeviceOptions(good)).toMatchObject({ port: 8884, host: 'mqtt.iot.test' });
    expect(parseDeviceOptions({ ...good, auth: { ...good.auth, port: 9884 } as never }).port).toBe(9884);
    expect(
      parseDeviceOptions({
        ...good,
        auth: { type: 'mtls', certPem: site.caPem, keyPem: site.caPem, caPem: site.caPem },
      }).port,
    ).toBe(8883);
    expect(parseDeviceOptions({ ...good, port: 1883, mqttName: 'devices' })).toMatchObject({
      port: 1883,
      host: 'devices.iot.test',
      dns: { recheckMs: 5000 },
      backoff: { baseMs: 200, capMs: 10_000 },
      queue: { maxMessages: 10_000 },
    });
  });
});
