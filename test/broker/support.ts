/**
 * What the broker tests share: a region's registry on SQLite with the embedded CA, a broker on
 * ephemeral ports, devices provisioned through the registry service, and mqtt.js clients over TLS.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import {
  type BrokerAddresses,
  type BrokerOptions,
  createBroker,
  DEVICE_POLICY_TEMPLATE,
  type RegionBroker,
} from '../../src/broker/index.js';
import { createLogger } from '../../src/common/index.js';
import { type CertificateAuthority, loadOrCreateCa } from '../../src/pki/index.js';
import { regionRegistryService } from '../../src/processes/index.js';
import { type RegistryService, SqliteStore } from '../../src/registry/index.js';

export const ZONE = 'iot.test';

/** A policy allowing every action on every resource: what the broker still refuses, no policy allows. */
export const ALLOW_ALL = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }],
};

export interface TestRegistry {
  service: RegistryService;
  ca: CertificateAuthority;
  dir: string;
  close(): Promise<void>;
}

export async function startRegistry(region = 'us-east'): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-broker-'));
  const ca = await loadOrCreateCa(join(dir, 'pki'));
  const store = new SqliteStore({ path: join(dir, 'registry.db'), synchronous: 'normal' });
  await store.init();
  const service = regionRegistryService({ store, region, ca });
  await service.init();
  return {
    service,
    ca,
    dir,
    async close() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Log lines the broker wrote, parsed. */
export class LogSink {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim()) this.lines.push(JSON.parse(line));
      done();
    },
  });

  refusals(reason?: string): Array<Record<string, unknown>> {
    return this.lines.filter((l) => l.msg === 'refused' && (reason === undefined || l.reason === reason));
  }
}

export interface TestBroker {
  broker: RegionBroker;
  addresses: BrokerAddresses;
  port: number;
  logs: LogSink;
  metrics: Registry;
  close(): Promise<void>;
}

export async function startBroker(
  registry: TestRegistry,
  options: Partial<BrokerOptions> = {},
): Promise<TestBroker> {
  const logs = new LogSink();
  const metrics = new Registry();
  const broker = await createBroker({
    region: registry.service.region,
    service: registry.service,
    ca: registry.ca,
    zone: ZONE,
    host: '127.0.0.1',
    port: 0,
    logger: createLogger({ level: 'debug', destination: logs.stream }),
    metrics,
    ...options,
  });
  const addresses = await broker.listen();
  return { broker, addresses, port: addresses.tls.port, logs, metrics, close: () => broker.close() };
}

export interface Device {
  thingName: string;
  certificateId: string;
  certPem: string;
  keyPem: string;
}

/** A thing with a certificate from the embedded CA and the given policy (the device template by default). */
export async function provisionDevice(
  service: RegistryService,
  thingName: string,
  policy: unknown = DEVICE_POLICY_TEMPLATE(),
  policyName = `${thingName}-policy`,
): Promise<Device> {
  await service.putThing(thingName, { attributes: { floor: '1' } });
  const created = await service.createCertificate({});
  const certificateId = created.certificate.certificateId;
  await service.attachCertificate(thingName, certificateId);
  await service.putPolicy(policyName, { policyDocument: policy as Record<string, unknown> });
  await service.attachPolicy(certificateId, policyName);
  if (created.privateKeyPem === undefined) throw new Error('no private key returned');
  return {
    thingName,
    certificateId,
    certPem: created.certificate.certificatePem,
    keyPem: created.privateKeyPem,
  };
}

export interface ConnectOptions extends Omit<IClientOptions, 'ca' | 'cert' | 'key'> {
  port: number;
  ca: string;
  cert?: string;
  key?: string;
}

/** An mqtt.js client over TLS that verifies the broker as mqtt.<zone>; rejects on any CONNACK refusal. */
export async function connect(options: ConnectOptions): Promise<MqttClient> {
  const { port, ...rest } = options;
  return mqtt.connectAsync({
    protocol: 'mqtts',
    host: '127.0.0.1',
    port,
    servername: `mqtt.${ZONE}`,
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 4,
    ...rest,
  });
}

export function connectDevice(
  port: number,
  ca: CertificateAuthority,
  device: Pick<Device, 'certPem' | 'keyPem'>,
  clientId: string,
  extra: Omit<IClientOptions, 'ca' | 'cert' | 'key'> = {},
): Promise<MqttClient> {
  return connect({
    port,
    ca: ca.certificatePem,
    cert: device.certPem,
    key: device.keyPem,
    clientId,
    ...extra,
  });
}

/** The CONNACK return code of a refused connection (or the error message when there was none). */
export async function refusal(attempt: Promise<MqttClient>): Promise<number | string> {
  try {
    const client = await attempt;
    await client.endAsync(true);
    return 'connected';
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'number' ? code : String((error as Error).message);
  }
}

/** Resolves when the client's connection closes (server side or not). */
export function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (!client.connected) return resolve();
    client.once('close', () => resolve());
  });
}

/** Subscribes and returns the granted QoS per filter (128 = refused). */
export async function subscribe(client: MqttClient, filter: string, qos: 0 | 1 = 1): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(filter, { qos });
    return granted.map((g) => g.qos);
  } catch (error) {
    // mqtt.js rejects when the SUBACK refuses a filter; the SUBACK is on the error.
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted === undefined) throw error;
    return granted.map((g) => (typeof g === 'number' ? g : (g as { qos: number }).qos));
  }
}

/** The next message on `topic` the client receives, or a timeout error. */
export function nextMessage(client: MqttClient, topic: string, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${topic} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(payload);
    };
    client.on('message', onMessage);
  });
}

/** Collects every message the client receives. */
export function collect(client: MqttClient): Array<{ topic: string; payload: string }> {
  const out: Array<{ topic: string; payload: string }> = [];
  client.on('message', (topic, payload) => out.push({ topic, payload: payload.toString('utf8') }));
  return out;
}

export async function endAll(clients: Array<MqttClient | undefined>): Promise<void> {
  await Promise.all(clients.map((c) => c?.endAsync(true).catch(() => undefined)));
}

export { eventually } from '../harness/cluster.js';

/** A self-signed (non-CA) device certificate and its key, made outside iotdr. */
export async function selfSignedDevice(
  name: string,
  validForMs = 86_400_000,
): Promise<{ certPem: string; keyPem: string }> {
  const { webcrypto } = await import('node:crypto');
  const { x509 } = await import('../../src/pki/index.js');
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, [
    'sign',
    'verify',
  ])) as import('node:crypto').webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + validForMs),
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}
