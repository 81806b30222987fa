/**
 * Two real regions on their own loopback addresses with one MQTT port (so `mqtt.<zone>:PORT`
 * reaches whichever is active), real `iotdr control` with its built-in DNS, and devices made
 * through the management API — what the device SDK meets in the field.
 */
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext, TLSSocket } from 'node:tls';
import { createLogger } from '../../src/common/index.js';
import { DeviceClient, type DeviceClientOptions, type DeviceEvent } from '../../src/device/index.js';
import { readEvents } from '../../src/events/index.js';
import { type RunningControl, startControl } from '../../src/processes/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { connect, type Device, provision } from '../harness/devices.js';
import { fetch } from '../harness/https.js';
import { freePort } from '../harness/process.js';

export interface DrSite {
  cluster: Cluster;
  control: RunningControl;
  east: ClusterRegion;
  west: ClusterRegion;
  addresses: { 'us-east': string; 'us-west': string };
  mqttPort: number;
  /** The token listener's port in both regions (open with `tokenAuth`). */
  tokenPort: number;
  /** `127.0.0.1:PORT` of control's DNS, for `dns.servers`. */
  dnsServer: string;
  caPem: string;
  dir: string;
  /** A device made in us-east whose identity has replicated to us-west. */
  device(name: string): Promise<Device>;
  /** Device clients made here are closed by `close()`. */
  client(device: Device, options?: Partial<DeviceClientOptions>): DeviceClient;
  /** POST /v1/failover/switch on control. */
  switchTo(region: 'us-east' | 'us-west'): Promise<void>;
  activeRegion(): 'us-east' | 'us-west';
  /** Every event id on a region's bus. */
  busIds(region: ClusterRegion): Promise<Set<string>>;
  close(): Promise<void>;
}

export async function startDrSite(
  addresses: [string, string],
  options: { failover?: Record<string, unknown>; tokenAuth?: boolean } = {},
): Promise<DrSite> {
  const mqttPort = await freePort();
  const tokenPort = await freePort();
  const regions = [];
  for (const [i, name] of ['us-east', 'us-west'].entries())
    regions.push({
      name,
      priority: i + 1,
      address: addresses[i],
      api: { port: await freePort() },
      cnc: { port: 0, tls: false },
      mqtt: { port: mqttPort, tokenPort },
      store: { engine: 'sqlite' },
    });
  const cluster = await startCluster(
    ['us-east', 'us-west'],
    { engine: 'sqlite' },
    {
      config: {
        regions,
        failover: {
          intervalMs: 200,
          timeoutMs: 400,
          failureThreshold: 3,
          recoveryThreshold: 2,
          ...options.failover,
        },
        control: { address: '127.0.0.1', port: await freePort() },
        dns: { address: '127.0.0.1', port: await freePort() },
        broker: { tokenAuth: options.tokenAuth ?? false },
      },
    },
  );
  const control = await startControl({
    config: cluster.config,
    stateDir: cluster.stateDir,
    logger: createLogger({ level: 'silent' }),
  });
  const east = cluster.regions['us-east'] as ClusterRegion;
  const west = cluster.regions['us-west'] as ClusterRegion;
  const caPem = east.running?.ca.certificatePem ?? '';
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-device-'));
  const clients: DeviceClient[] = [];
  const dnsServer = `127.0.0.1:${control.dns.port}`;
  await eventually(
    async () => control.controller.state().mode.type === 'health',
    'the controller following health',
  );
  return {
    cluster,
    control,
    east,
    west,
    addresses: { 'us-east': addresses[0], 'us-west': addresses[1] },
    mqttPort,
    tokenPort,
    dnsServer,
    caPem,
    dir,
    async device(name) {
      const device = await provision(east, name);
      // Its identity must be in us-west before a test moves it there.
      await eventually(async () => {
        const c = await connect(west, device).catch(() => undefined);
        await c?.endAsync(true);
        return c !== undefined;
      }, `${name} known in us-west`);
      return device;
    },
    client(device, extra = {}) {
      const client = new DeviceClient({
        thingName: device.thingName,
        zone: 'iot.test',
        port: mqttPort,
        auth: { type: 'mtls', certPem: device.certPem, keyPem: device.keyPem, caPem },
        dns: { servers: [dnsServer], recheckMs: 0 },
        backoff: { baseMs: 50, capMs: 500 },
        queue: { path: join(dir, `${device.thingName}-${clients.length}.db`) },
        connectTimeoutMs: 2000,
        ...extra,
      });
      clients.push(client);
      return client;
    },
    async switchTo(region) {
      const res = await fetch(`${control.controlUrl}/v1/failover/switch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cluster.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ to: region, reason: 'device test' }),
      });
      if (res.status !== 200) throw new Error(`switch to ${region}: ${res.status} ${await res.text()}`);
    },
    activeRegion() {
      return control.controller.state().activeRegion as 'us-east' | 'us-west';
    },
    async busIds(region) {
      const ids = new Set<string>();
      const ca = await readFile(join(cluster.stateDir, 'pki', 'ca.pem'), 'utf8');
      for await (const e of readEvents(region.url, cluster.adminToken, {
        untilCaughtUp: true,
        limit: 1000,
        ca,
      }))
        ids.add(e.id);
      return ids;
    },
    async close() {
      for (const c of clients) await c.close();
      await control.stop();
      await cluster.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the first event of `type` that satisfies `match`; rejects after `timeoutMs`. */
export function nextEvent<T extends DeviceEvent['type']>(
  client: DeviceClient,
  type: T,
  match: (e: Extract<DeviceEvent, { type: T }>) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<Extract<DeviceEvent, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${type} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on(type, (e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

/** MQTT 3.1.1 CONNACK, session not present, accepted (§3.2). */
const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);

/** A broker stand-in on us-east's address: answers the first bytes with CONNACK, then nothing. */
export interface StandInBroker {
  /** Its TLS connections, in the order they came. */
  sockets: TLSSocket[];
  close(): void;
}

/**
 * Closes us-east's broker and listens in its place, with a server certificate for the DR name from
 * the region's CA: every connection gets a CONNACK for its first bytes and is never answered again
 * (a hung broker, a dropped path). `requestCert` asks for a client certificate the way the
 * region's broker does; without a session id context, as a plain TLSSocket has, OpenSSL then
 * answers an offered session with an alert.
 */
export async function standInBroker(
  site: DrSite,
  options: { requestCert?: boolean } = {},
): Promise<StandInBroker> {
  const east = site.east.running;
  if (!east) throw new Error('us-east is not running');
  await east.broker.close();
  const cert = await east.ca.issueServerCertificate({
    commonName: 'mqtt.iot.test',
    dnsNames: ['mqtt.iot.test'],
    ipAddresses: [site.addresses['us-east']],
  });
  const context = createSecureContext({ cert: cert.certificatePem, key: cert.privateKeyPem });
  const sockets: TLSSocket[] = [];
  const server = createTcpServer((raw) => {
    const socket = new TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      requestCert: options.requestCert ?? false,
      rejectUnauthorized: false,
    });
    sockets.push(socket);
    socket.on('error', () => raw.destroy());
    socket.once('data', () => socket.write(CONNACK));
  });
  server.listen(site.mqttPort, site.addresses['us-east']);
  await once(server, 'listening');
  return {
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
