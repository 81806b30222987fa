/**
 * The ceiling's minimal client against a real broker over real TLS: it connects as registered
 * devices (mutual TLS, and tokens on the token listener), counts what the broker answers, leaves
 * no session behind, and counts refusals as refusals, not as connects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { connectLoad, type LoadIdentity, measureCeiling } from '../../src/fleet/index.js';
import {
  eventually,
  provisionDevice,
  startBroker,
  startRegistry,
  type TestBroker,
  type TestRegistry,
  ZONE,
} from '../broker/support.js';

describe('the ceiling: minimal clients against a broker', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  const mtls: LoadIdentity[] = [];
  const tokens: LoadIdentity[] = [];

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry, { tokenListener: { port: 0 } });
    await registry.service.putPolicy('device', { policyDocument: DEVICE_POLICY_TEMPLATE() as never });
    for (let i = 0; i < 4; i++) {
      const d = await provisionDevice(registry.service, `load-${i}`);
      mtls.push({ clientId: d.thingName, auth: { type: 'mtls', certPem: d.certPem, keyPem: d.keyPem } });
      await registry.service.putThing(`token-${i}`, {});
      const { token } = await registry.service.createDeviceToken(`token-${i}`, ['device']);
      tokens.push({ clientId: `token-${i}`, auth: { type: 'token', token } });
    }
  });
  afterAll(async () => {
    await broker?.close();
    await registry?.close();
  });

  const load = (port: number, identities: LoadIdentity[]) => ({
    host: '127.0.0.1',
    port,
    servername: `mqtt.${ZONE}`,
    caPem: registry.ca.certificatePem,
    identities,
    inFlight: 8,
    durationMs: 1500,
    warmupMs: 300,
    connectTimeoutMs: 5000,
  });

  it('connects as mutual-TLS devices, ends each connection, and leaves no session', async () => {
    const result = await connectLoad(load(broker.port, mtls));
    expect(result.connacks).toBeGreaterThan(0);
    expect(result).toMatchObject({ refused: 0, errors: 0, timeouts: 0 });
    expect(result.connectsPerSecond).toBeGreaterThan(0);
    // The broker counted the mTLS sessions, and every one of them ended.
    const mtlsSessions = async () =>
      (await broker.metrics.getSingleMetric('iotdr_broker_sessions')?.get())?.values.find(
        (v) => v.labels.auth === 'mtls',
      )?.value;
    await eventually(async () => (await mtlsSessions()) === 0, 'no mTLS session left');
  });

  it('connects as token devices on the token listener, in worker threads', async () => {
    const port = broker.addresses.token?.port;
    if (port === undefined) throw new Error('no token listener');
    const ceiling = await measureCeiling({ ...load(port, tokens), workers: 2 });
    expect(ceiling).toMatchObject({ auth: 'token', inFlight: 8, refused: 0, errors: 0, timeouts: 0 });
    expect(ceiling.connectsPerSecond).toBeGreaterThan(0);
  });

  it('counts a refused CONNECT as refused, never as a connect', async () => {
    const port = broker.addresses.token?.port;
    if (port === undefined) throw new Error('no token listener');
    const wrong: LoadIdentity[] = [{ clientId: 'token-0', auth: { type: 'token', token: 'not-the-token' } }];
    const result = await connectLoad({ ...load(port, wrong), inFlight: 2, durationMs: 500, warmupMs: 0 });
    expect(result.refused).toBeGreaterThan(0);
    expect(result.connacks).toBe(0);
    expect(result.connectsPerSecond).toBe(0);
  });

  it('stops at once when aborted, with the counts so far', async () => {
    const stop = new AbortController();
    const running = connectLoad({ ...load(broker.port, mtls), durationMs: 60_000 }, stop.signal);
    setTimeout(() => stop.abort(), 300);
    const started = Date.now();
    const result = await running;
    // Long before its 60 s: an abort does not wait for the load's time.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result).toMatchObject({ refused: 0, timeouts: 0 });
  });
});
