import type { AedesOptions } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrokerHealthIdentity,
  brokerCheckpoint,
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

  it('passes on a real round trip, with a fresh client id and topic each time, and ends its client', async () => {
    const b = await startBroker();
    try {
      const health = service(b.identity());
      for (let i = 0; i < 2; i += 1) {
        const report = await within(5000, health.check(), 'the health report');
        expect(report.status).toBe('pass');
        expect(report.checks['broker:roundTrip']?.[0]).toMatchObject({
          componentId: 'broker',
          status: 'pass',
          observedUnit: 'ms',
        });
      }
      expect(b.clientIds).toHaveLength(2);
      expect(new Set(b.clientIds).size).toBe(2);
      for (const id of b.clientIds) expect(id.startsWith(HEALTH_CLIENT_ID_PREFIX)).toBe(true);
      expect(new Set(b.topics).size).toBe(2);
      for (const t of b.topics) expect(t.startsWith(`${PREFIX}/`)).toBe(true);
      await eventually(async () => b.broker.connectedClients === 0, 'the probe clients to disconnect', 5000);
    } finally {
      await b.close();
    }
  });

  it('fails within its timeout once the broker is stopped', async () => {
    const b = await startBroker();
    const health = service(b.identity(), 1000);
    expect((await health.check()).status).toBe('pass');
    await b.close();
    const report = await within(5000, health.check(), 'the health report');
    expect(report.status).toBe('fail');
    expect(report.checks['broker:roundTrip']?.[0]).toMatchObject({
      status: 'fail',
      output: 'connection failed: ECONNREFUSED',
    });
  });

  it('fails when the broker accepts the message but never delivers it back', async () => {
    let accepted = 0;
    const b = await startBroker({
      authorizePublish: (_client, _packet, callback) => {
        accepted += 1;
        callback(null);
      },
      authorizeForward: () => null,
    });
    try {
      const report = await within(5000, service(b.identity(), 500).check(), 'the health report');
      expect(accepted).toBe(1);
      expect(report.status).toBe('fail');
      expect(report.checks['broker:roundTrip']?.[0]).toMatchObject({
        status: 'fail',
        output: 'timed out after 500 ms (waiting for its own message)',
      });
      await eventually(async () => b.broker.connectedClients === 0, 'the aborted probe to disconnect', 5000);
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
      const report = await within(5000, service(mute.identity(), 300).check(), 'the health report');
      expect(report.checks['broker:roundTrip']?.[0]?.output).toBe('timed out after 300 ms (connecting)');
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
