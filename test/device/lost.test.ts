/**
 * A connection that dies without the server closing it: the broker answers CONNACK and then falls
 * silent (a hung process, a dropped network path). The device's keepalive finds out, it records the
 * loss as `connection-lost`, resolves again and moves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
