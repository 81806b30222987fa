/** Devices the way a console makes them and the way they connect, for tests over real regions. */
import mqtt, { type MqttClient } from 'mqtt';
import { expect } from 'vitest';
import { DEVICE_POLICY_TEMPLATE } from '../../src/broker/index.js';
import type { ClusterRegion } from './cluster.js';

export interface Device {
  thingName: string;
  certificateId: string;
  certPem: string;
  keyPem: string;
}

/** Provisions a device through one region's management API: thing, certificate, policy. */
export async function provision(region: ClusterRegion, thingName: string): Promise<Device> {
  expect((await region.call('PUT', `/v1/things/${thingName}`, {})).status).toBe(201);
  const created = await region.call('POST', '/v1/certificates', {});
  expect(created.status).toBe(201);
  const certificateId = created.body.certificate.certificateId as string;
  expect(
    (await region.call('PUT', `/v1/things/${thingName}/certificates/${certificateId}`)).status,
  ).toBeLessThan(300);
  const policy = `${thingName}-policy`;
  expect(
    (await region.call('PUT', `/v1/policies/${policy}`, { policyDocument: DEVICE_POLICY_TEMPLATE() })).status,
  ).toBe(201);
  expect(
    (await region.call('PUT', `/v1/certificates/${certificateId}/policies/${policy}`)).status,
  ).toBeLessThan(300);
  return {
    thingName,
    certificateId,
    certPem: created.body.certificate.certificatePem,
    keyPem: created.body.privateKeyPem,
  };
}

/** A device connecting to a region's broker under the DR name, as devices do in every region. */
export function connect(
  region: ClusterRegion,
  device: Device,
  clientId = device.thingName,
): Promise<MqttClient> {
  const running = region.running;
  if (!running) throw new Error(`${region.name} is not running`);
  const url = new URL(running.mqttUrl);
  return mqtt.connectAsync({
    protocol: 'mqtts',
    host: url.hostname,
    port: Number(url.port),
    servername: 'mqtt.iot.test',
    ca: running.ca.certificatePem,
    cert: device.certPem,
    key: device.keyPem,
    rejectUnauthorized: true,
    clientId,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 4,
  });
}
