import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import { Aedes, type AedesOptions } from 'aedes';
import type { BrokerHealthIdentity } from '../../src/health/index.js';
import { type CertificateAuthority, loadOrCreateCa } from '../../src/pki/index.js';

export const SERVERNAME = 'mqtt.iot.test';
export const PREFIX = 'iotdr/health/us-east';

export interface TestPki {
  ca: CertificateAuthority;
  server: { privateKeyPem: string; certificatePem: string };
  client: { privateKeyPem: string; certificatePem: string };
  cleanup(): Promise<void>;
}

/** The embedded CA in a temp dir, a broker server certificate and a health client certificate. */
export async function makePki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'iotdr-health-pki-'));
  const ca = await loadOrCreateCa(dir);
  const server = await ca.issueServerCertificate({
    commonName: 'us-east',
    dnsNames: [SERVERNAME],
    ipAddresses: ['127.0.0.1'],
  });
  const client = await ca.issueDeviceCertificate({ commonName: 'iotdr-health' });
  return { ca, server, client, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * aedes behind node:tls with mutual TLS (the client must present a certificate of the CA), on an
 * ephemeral port. Records the client ids and subscribed topics it saw.
 */
export async function startTlsBroker(pki: TestPki, options: AedesOptions = {}) {
  const broker = await Aedes.createBroker(options);
  const sockets = new Set<Socket>();
  const tls = createServer(
    {
      key: pki.server.privateKeyPem,
      cert: pki.server.certificatePem,
      ca: [pki.ca.certificatePem],
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => broker.handle(socket),
  );
  tls.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  tls.listen(0, '127.0.0.1');
  await once(tls, 'listening');
  const { port } = tls.address() as AddressInfo;
  const clientIds: string[] = [];
  const topics: string[] = [];
  broker.on('client', (c) => clientIds.push(c.id));
  broker.on('subscribe', (subs) => topics.push(...subs.map((s) => s.topic)));
  let closed = false;
  return {
    broker,
    port,
    clientIds,
    topics,
    /** What broker.healthIdentity() will give: this listener and the health client certificate. */
    identity(overrides: Partial<BrokerHealthIdentity> = {}): BrokerHealthIdentity {
      return {
        url: `mqtts://127.0.0.1:${port}`,
        certPem: pki.client.certificatePem,
        keyPem: pki.client.privateKeyPem,
        caPem: pki.ca.certificatePem,
        servername: SERVERNAME,
        topicPrefix: PREFIX,
        ...overrides,
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => tls.close(() => resolve()));
    },
  };
}
