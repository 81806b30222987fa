// biome-ignore-all lint/suspicious/noTemplateCurlyInString: policy variables are written ${…}, as in AWS IoT policies
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import { loadOrCreateCa } from '../../src/pki/index.js';
import {
  closed,
  connectDevice,
  type Device,
  endAll,
  provisionDevice,
  selfSignedDevice,
  startBroker,
  startRegistry,
  subscribe,
  type TestBroker,
  type TestRegistry,
} from './support.js';

/** The issue's bound: a registry change takes effect on live sessions within one second. */
const WITHIN_MS = 1000;

/** Resolves when the client closes; rejects when it is still open WITHIN_MS after wait() is called. */
function closesWithinBound(client: MqttClient): { wait: () => Promise<void> } {
  const gone = closed(client);
  return {
    wait: () => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`still connected ${WITHIN_MS} ms after the change`)),
          WITHIN_MS,
        );
      });
      return Promise.race([gone, late]).finally(() => clearTimeout(timer));
    },
  };
}

describe('broker: registry changes take effect on live sessions', () => {
  let registry: TestRegistry;
  let broker: TestBroker;
  const clients: MqttClient[] = [];
  let n = 0;

  beforeAll(async () => {
    registry = await startRegistry();
    broker = await startBroker(registry);
  });
  afterAll(async () => {
    await endAll(clients);
    await broker?.close();
    await registry?.close();
  });

  async function online(policy?: unknown): Promise<{ device: Device; client: MqttClient }> {
    const device = await provisionDevice(registry.service, `live-${++n}`, policy);
    const client = await connectDevice(broker.port, registry.ca, device, device.thingName);
    clients.push(client);
    return { device, client };
  }

  it('disconnects when the certificate is set INACTIVE', async () => {
    const { device, client } = await online();
    const watch = closesWithinBound(client);
    await registry.service.updateCertificateStatus(device.certificateId, { status: 'INACTIVE' });
    await watch.wait();
    expect(broker.broker.connections().some((c) => c.thing === device.thingName)).toBe(false);
  });

  it('disconnects when the certificate is REVOKED', async () => {
    const { device, client } = await online();
    const watch = closesWithinBound(client);
    await registry.service.updateCertificateStatus(device.certificateId, { status: 'REVOKED' });
    await watch.wait();
  });

  it('disconnects when the certificate is deleted', async () => {
    const { device, client } = await online();
    const watch = closesWithinBound(client);
    await registry.service.updateCertificateStatus(device.certificateId, { status: 'INACTIVE' });
    await watch.wait();
    await registry.service.deleteCertificate(device.certificateId, { force: true });
    expect(broker.broker.connections()).toEqual([]);
  });

  it('disconnects when the CA that signed the certificate is deactivated', async () => {
    const other = await loadOrCreateCa(join(registry.dir, 'ca-live'));
    await registry.service.registerCaCertificate({ caCertificatePem: other.certificatePem });
    const issued = await other.issueDeviceCertificate();
    await registry.service.registerCertificate({ certificatePem: issued.certificatePem });
    await registry.service.putThing('ca-dev', {});
    await registry.service.attachCertificate('ca-dev', issued.certificateId);
    await registry.service.putPolicy('ca-dev-policy', { policyDocument: DEVICE_POLICY_TEMPLATE() as never });
    await registry.service.attachPolicy(issued.certificateId, 'ca-dev-policy');
    const client = await connectDevice(
      broker.port,
      registry.ca,
      { certPem: issued.certificatePem, keyPem: issued.privateKeyPem },
      'ca-dev',
    );
    clients.push(client);
    const watch = closesWithinBound(client);
    await registry.service.updateCaCertificateStatus(other.certificateId, { status: 'INACTIVE' });
    await watch.wait();
  });

  it('disconnects when the certificate is detached from its thing (Connect needs the thing name)', async () => {
    const { device, client } = await online();
    const watch = closesWithinBound(client);
    await registry.service.detachCertificate(device.thingName, device.certificateId);
    await watch.wait();
  });

  it('disconnects when the policy is detached or deleted', async () => {
    const a = await online();
    const watchA = closesWithinBound(a.client);
    await registry.service.detachPolicy(a.device.certificateId, `${a.device.thingName}-policy`);
    await watchA.wait();

    const b = await online();
    const watchB = closesWithinBound(b.client);
    await registry.service.deletePolicy(`${b.device.thingName}-policy`, { force: true });
    await watchB.wait();
  });

  it('decides the next publish and subscribe by a changed policy without disconnecting', async () => {
    const { device, client } = await online();
    expect(await subscribe(client, 'extra/#')).toEqual([128]);
    const widened = DEVICE_POLICY_TEMPLATE();
    widened.Statement.push({ Effect: 'Allow', Action: ['iot:Subscribe'], Resource: ['topicfilter/extra/*'] });
    await registry.service.putPolicy(`${device.thingName}-policy`, { policyDocument: widened as never });
    const deadline = Date.now() + WITHIN_MS;
    let granted = [128];
    while (Date.now() < deadline && granted[0] === 128) granted = await subscribe(client, 'extra/#');
    expect(granted).toEqual([1]);

    // Narrowed: publishing to its own topics is no longer allowed; the next PUBLISH closes it.
    const narrowed = DEVICE_POLICY_TEMPLATE();
    narrowed.Statement = narrowed.Statement.filter((s) => !s.Action?.includes('iot:Publish'));
    await registry.service.putPolicy(`${device.thingName}-policy`, { policyDocument: narrowed as never });
    await new Promise((r) => setTimeout(r, WITHIN_MS));
    expect(client.connected).toBe(true);
    const gone = closed(client);
    client.publish(`devices/${device.thingName}/telemetry`, 'x', { qos: 1 });
    await gone;
  });

  it('re-resolves thing attributes used as policy variables', async () => {
    const policy = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: 'client/${iot:Connection.Thing.ThingName}' },
        {
          Effect: 'Allow',
          Action: 'iot:Subscribe',
          Resource: 'topicfilter/floors/${iot:Connection.Thing.Attributes[floor]}/*',
        },
      ],
    };
    const { device, client } = await online(policy);
    expect(await subscribe(client, 'floors/1/#')).toEqual([1]);
    expect(await subscribe(client, 'floors/2/#')).toEqual([128]);
    await registry.service.putThing(device.thingName, { attributes: { floor: '2' } });
    const deadline = Date.now() + WITHIN_MS;
    let granted = [128];
    while (Date.now() < deadline && granted[0] === 128) granted = await subscribe(client, 'floors/2/#');
    expect(granted).toEqual([1]);
    expect(await subscribe(client, 'floors/1/#')).toEqual([128]);
  });

  it('closes a session when its certificate expires', async () => {
    // X.509 times have one-second resolution: valid for the next 2-3 seconds.
    const creds = await selfSignedDevice('expiring', 3000);
    const registered = await registry.service.registerCertificate({ certificatePem: creds.certPem });
    const id = registered.item.certificateId;
    await registry.service.putThing('expiring', {});
    await registry.service.attachCertificate('expiring', id);
    await registry.service.putPolicy('expiring-policy', {
      policyDocument: DEVICE_POLICY_TEMPLATE() as never,
    });
    await registry.service.attachPolicy(id, 'expiring-policy');
    const client = await connectDevice(broker.port, registry.ca, creds, 'expiring');
    clients.push(client);
    await closed(client);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(registered.item.notAfter));
    expect(
      broker.logs.lines.some((l) => l.msg === 'session revoked' && /expired/.test(String(l.reason))),
    ).toBe(true);
  });

  it('applies a change that arrives by replication (another origin) the same way', async () => {
    const { device, client } = await online();
    const watch = closesWithinBound(client);
    // What the replicator does: write the peer's change with its own id, version, HLC and origin.
    const current = await registry.service.getCertificate(device.certificateId);
    const { version: _v, ...doc } = current;
    await registry.service.transaction(async (tx) => {
      const hlc = { wall: Date.now() + 1000, counter: 0 };
      registry.service.observeHlc(hlc);
      await tx.apply({
        changeId: randomUUID(),
        kind: 'certificate',
        key: device.certificateId,
        op: 'upsert',
        ref: current.caCertificateId,
        doc: { ...doc, status: 'REVOKED', updatedAt: new Date().toISOString() },
        version: current.version + 1,
        hlc,
        origin: 'us-west',
        at: Date.now(),
      });
    });
    await watch.wait();
    expect(
      broker.logs.lines.some((l) => l.msg === 'session revoked' && l.reason === 'certificate is REVOKED'),
    ).toBe(true);
  });
});
