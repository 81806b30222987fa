/**
 * A connection that dies without the server closing it: the broker answers CONNACK and then falls
 * silent (a hung process, a dropped network path). The device's keepalive finds out, it records the
 * loss as `connection-lost`, resolves again and moves. And a connection that is up but not yet
 * answered (a busy broker's handshake line): the device waits past its TCP connect timeout, and
 * leaves at once when the name moves.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceEventOf } from '../../src/device/index.js';
import { eventually } from '../harness/cluster.js';
import { type DrSite, nextEvent, standInBroker, startDrSite } from './support.js';

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
    // us-east's broker gives way to one that accepts and then never answers again, on its address.
    const silent = await standInBroker(site);
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
      silent.close();
    }
  });

  it('waits in a line past its TCP connect timeout, and leaves it at once when the name moves', async () => {
    const device = await site.device('patient-1');
    if (site.activeRegion() !== 'us-east') await site.switchTo('us-east');
    // us-east's address holds connections and never answers: a broker's handshake line.
    await site.east.running?.broker.close();
    // The device's own connections, told apart from the region's health probes by their source.
    const from = '127.0.0.63';
    const held: Socket[] = [];
    const line = createServer((socket) => {
      socket.on('error', () => {});
      if (socket.remoteAddress !== from) {
        socket.destroy();
        return;
      }
      held.push(socket);
      socket.resume(); // reads the ClientHello, and sees the client's FIN
    });
    line.listen(site.mqttPort, site.addresses['us-east']);
    await once(line, 'listening');
    try {
      const client = site.client(device, {
        // Long enough that a loop stalled on a busy machine does not fire it before the TCP
        // connection's own event (the connect to a local listener is immediate).
        connectTimeoutMs: 500,
        handshakeTimeoutMs: 60_000,
        dns: { servers: [site.dnsServer], recheckMs: 300, retryMs: 0 },
        followNotices: false,
        localAddress: from,
      });
      const retries: DeviceEventOf<'retry'>[] = [];
      client.on('retry', (e) => retries.push(e));
      client.start();
      await eventually(async () => held.length === 1, 'the attempt in the line');
      // Four times the connect timeout and six DNS re-checks later: still its first
      // connection, still waiting.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(retries).toEqual([]);
      expect(held.length).toBe(1);
      expect(held[0]?.destroyed).toBe(false);

      const connected = nextEvent(client, 'connected');
      await site.switchTo('us-west');
      expect(await connected).toMatchObject({ region: 'us-west', address: site.addresses['us-west'] });
      // One retry, without a wait, saying why; the held connection was let go.
      expect(retries).toHaveLength(1);
      expect(retries[0]).toMatchObject({ attempt: 0, delayMs: 0 });
      expect(retries[0]?.error).toMatch(/the name moved from .* to .* before CONNACK/);
      await eventually(async () => held[0]?.destroyed === true, 'the held connection closed');
      expect(held.length).toBe(1);
    } finally {
      for (const socket of held) socket.destroy();
      line.close();
    }
  });
});
