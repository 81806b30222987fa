import type { AedesOptions } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrokerHealthIdentity,
  brokerCheckpoint,
  brokerConnectCheckpoint,
  HEALTH_CLIENT_ID_PREFIX,
  HealthService,
  InvalidCheckpointError,
} from '../../src/health/index.js';
import { eventually } from '../harness/cluster.js';
import { within } from './support.js';
import { makePki, PREFIX, startTlsBroker, type TestPki } from './tls-broker.js';

describe('the broker checkpoint against a real MQTT-over-TLS broker', () => {
  let pki: TestPki;

  beforeAll(async () => {
    pki = await makePki();
  });
  afterAll(async () => {
    await pki?.cleanup();
  });

  const startBroker = (options: AedesOptions = {}) => startTlsBroker(pki, options);

  function service(id: BrokerHealthIdentity | (() => BrokerHealthIdentity), timeoutMs = 1000) {
    return new HealthService({ serviceId: 'us-east', timeoutMs }).add(brokerCheckpoint(id));
  }

  it('passes on real round trips over one kept session, a fresh nonce each, and ends it on close', async () => {
    const b = await startBroker();
    try {
      const health = service(b.identity());
      for (let i = 0; i < 3; i += 1) {
        const report = await within(5000, health.check(), 'the health report');
        expect(report.status).toBe('pass');
        expect(report.checks['broker:roundTrip']?.[0]).toMatchObject({
          componentId: 'broker',
          status: 'pass',
          observedUnit: 'ms',
        });
      }
      // One session, one random topic under the prefix: no handshake per probe.
      expect(b.clientIds).toHaveLength(1);
      expect(b.clientIds[0]?.startsWith(HEALTH_CLIENT_ID_PREFIX)).toBe(true);
      expect(b.topics).toHaveLength(1);
      expect(b.topics[0]?.startsWith(`${PREFIX}/`)).toBe(true);
      expect(b.broker.connectedClients).toBe(1);
      await health.close();
      await eventually(async () => b.broker.connectedClients === 0, 'the session to end', 5000);
    } finally {
      await b.close();
    }
  });

  it('opens the session again when the broker dropped it', async () => {
    const b = await startBroker();
    try {
      const health = service(b.identity());
      expect((await health.check()).status).toBe('pass');
      // aedes keeps its clients by id; its typings leave the map out.
      const { clients } = b.broker as unknown as { clients: Record<string, { close(): void }> };
      for (const client of Object.values(clients)) client.close();
      await eventually(
        async () => (await health.check()).status === 'pass' && b.clientIds.length === 2,
        'a probe over a new session',
        5000,
      );
      await health.close();
    } finally {
      await b.close();
    }
  });

  it('fails within its timeout once the broker is stopped, then with the refusal', async () => {
    const b = await startBroker();
    const health = service(b.identity(), 1000);
    expect((await health.check()).status).toBe('pass');
    await b.close();
    // The probe that meets the dropped session fails with its error; the next finds no listener.
    const first = await within(5000, health.check(), 'the health report');
    expect(first.status).toBe('fail');
    expect(first.checks['broker:roundTrip']?.[0]?.output).toMatch(
      /^connection failed: ECONN(RESET|REFUSED)$|^the broker closed the connection/,
    );
    expect(first.checks['broker:roundTrip']?.[0]?.timedOut).toBeUndefined();
    await eventually(
      async () =>
        (await health.check()).checks['broker:roundTrip']?.[0]?.output === 'connection failed: ECONNREFUSED',
      'the refusal',
      5000,
    );
    await health.close();
  });

  it('fails, as timed out, when the broker accepts the message but never delivers it back', async () => {
    let accepted = 0;
    const b = await startBroker({
      authorizePublish: (_client, _packet, callback) => {
        accepted += 1;
        callback(null);
      },
      authorizeForward: () => null,
    });
    try {
      const health = service(b.identity(), 500);
      const report = await within(5000, health.check(), 'the health report');
      expect(accepted).toBe(1);
      expect(report.status).toBe('fail');
      expect(report.checks['broker:roundTrip']?.[0]).toMatchObject({
        status: 'fail',
        output: 'timed out after 500 ms (waiting for its own message)',
        timedOut: true,
      });
      await health.close();
      await eventually(async () => b.broker.connectedClients === 0, 'the session to end', 5000);
    } finally {
      await b.close();
    }
  });

  it('connects afresh in the background (broker:connect): never delays a request, fails on refusal', async () => {
    const b = await startBroker();
    try {
      const health = new HealthService({ serviceId: 'us-east' }).add(
        brokerConnectCheckpoint(b.identity(), { everyMs: 200, timeoutMs: 2000 }),
      );
      const first = await within(200, health.check(), 'the first health report');
      expect(first.checks['broker:connect']?.[0]).toMatchObject({
        componentId: 'broker-connect',
        status: 'warn',
        output: 'its first run is in progress',
      });
      await eventually(
        async () => (await health.check()).checks['broker:connect']?.[0]?.status === 'pass',
        'a fresh connect to pass',
        5000,
      );
      const connects = b.clientIds.length;
      expect(connects).toBeGreaterThanOrEqual(1);
      await eventually(async () => b.broker.connectedClients === 0, 'the probe client to end', 5000);
      await b.close();
      await eventually(
        async () =>
          (await health.check()).checks['broker:connect']?.[0]?.output === 'connection failed: ECONNREFUSED',
        'the refusal',
        5000,
      );
    } finally {
      await b.close();
    }
  });

  it('fails when the broker never answers CONNECT, or refuses the subscription', async () => {
    const mute = await startBroker({ preConnect: () => {} });
    const refusing = await startBroker({
      authorizeSubscribe: (_client, _sub, callback) => callback(null, null),
    });
    try {
      const muted = service(mute.identity(), 300);
      const report = await within(5000, muted.check(), 'the health report');
      expect(report.checks['broker:roundTrip']?.[0]?.output).toBe('timed out after 300 ms (connecting)');
      await muted.close();
      const refused = await within(5000, service(refusing.identity()).check(), 'the health report');
      expect(refused.checks['broker:roundTrip']?.[0]?.output).toMatch(/refused the subscription/);
    } finally {
      await mute.close();
      await refusing.close();
    }
  });

  it('verifies the broker: a certificate for another name fails', async () => {
    const b = await startBroker();
    try {
      const report = await within(
        5000,
        service(b.identity({ servername: 'other.iot.test' })).check(),
        'the health report',
      );
      expect(report.status).toBe('fail');
      expect(report.checks['broker:roundTrip']?.[0]?.output).toBe(
        'connection failed: ERR_TLS_CERT_ALTNAME_INVALID',
      );
      expect(b.clientIds).toHaveLength(0);
    } finally {
      await b.close();
    }
  });

  it('refuses an identity that is not one, without echoing the key', () => {
    try {
      const bad: BrokerHealthIdentity = {
        url: 'mqtt://127.0.0.1:1883',
        certPem: pki.client.certificatePem,
        keyPem: 'secret-key',
        caPem: pki.ca.certificatePem,
        servername: 'mqtt.iot.test',
        topicPrefix: 'a/#',
      };
      brokerCheckpoint(bad);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidCheckpointError);
      const e = error as InvalidCheckpointError;
      expect(e.issues.map((i) => i.path).sort()).toEqual(['keyPem', 'topicPrefix', 'url']);
      expect(e.message).not.toContain('secret-key');
    }
  });
});
