/**
 * A connection that dies without the server closing it: the broker answers CONNACK and then falls
 * silent (a hung process, a dropped network path). The device's keepalive finds out, it records the
 * loss as `connection-lost`, resolves again and moves.
 */
import { once } from 'node:events';
import { createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DrSite, nextEvent, startDrSite } from './support.js';

/** MQTT 3.1.1 CONNACK, session not present, accepted (§3.2). */
const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);

describe('device SDK on a silent connection', () => {
  let site: DrSite;

  beforeAll(async () => {
    // Health alone would take 20 s to move the fleet: the test moves it by routing control.
    site = await startDrSite(['127.0.0.61', '127.0.0.62'], {
      failover: { failureThreshold: 100, disconnectOnFailover: 'never' },
    });
  });
  afterAll(async () => {
    await site?.close();
  });

  it('moves after a keepalive timeout, recording connection-lost', async () => {
    const device = await site.device('silent-1');
    const east = site.east.running;
    if (!east) throw new Error('us-east is not running');
    // us-east's broker gives way to one that accepts and then never answers again, on its address.
    await east.broker.close();
    const cert = await east.ca.issueServerCertificate({
      commonName: 'mqtt.iot.test',
      dnsNames: ['mqtt.iot.test'],
      ipAddresses: [site.addresses['us-east']],
    });
    const sockets: TLSSocket[] = [];
    const silent = createServer({ cert: cert.certificatePem, key: cert.privateKeyPem }, (socket) => {
      sockets.push(socket);
      socket.once('data', () => socket.write(CONNACK));
      socket.on('error', () => {});
    });
    silent.listen(site.mqttPort, site.addresses['us-east']);
    await once(silent, 'listening');
    try {
      const client = site.client(device, { keepaliveSeconds: 1, followNotices: false });
      const connected = nextEvent(client, 'connected');
      client.start();
      expect(await connected).toMatchObject({ region: 'us-east', address: site.addresses['us-east'] });

      await site.switchTo('us-west');
      const disconnected = nextEvent(client, 'disconnected');
      const moved = nextEvent(client, 'moved');
      expect(await disconnected).toMatchObject({ reason: 'connection-lost', region: 'us-east' });
      expect(await moved).toMatchObject({ from: 'us-east', to: 'us-west', trigger: 'connection-lost' });
      expect(client.counters.moves['connection-lost']).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});
