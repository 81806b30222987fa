/**
 * A real failover under load: the primary's broker stops while the device publishes; the checker
 * sees it, control moves the DNS name, the device follows, and every message it accepted is on one
 * of the two regions' buses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../harness/cluster.js';
import { type DrSite, nextEvent, startDrSite } from './support.js';

describe('device SDK across a failover', () => {
  let site: DrSite;

  beforeAll(async () => {
    site = await startDrSite(['127.0.0.53', '127.0.0.54']);
  });
  afterAll(async () => {
    await site?.close();
  });

  it("follows the primary's broker stopping, and loses no accepted message", async () => {
    const client = site.client(await site.device('meter-1'), {
      dns: { servers: [site.dnsServer], recheckMs: 500 },
    });
    const connected = nextEvent(client, 'connected');
    client.start();
    expect(await connected).toMatchObject({ region: 'us-east' });

    const accepted: string[] = [];
    let publishing = true;
    let seq = 0;
    const publisher = (async () => {
      while (publishing) {
        const { messageId } = await client.publish('devices/meter-1/telemetry', { seq: seq++, t: 21.5 });
        accepted.push(messageId);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      await eventually(async () => client.counters.acked >= 20, 'messages acknowledged by us-east');

      const moved = nextEvent(client, 'moved', () => true, 20_000);
      await site.east.running?.broker.close();
      const move = await moved;
      expect(move).toMatchObject({ from: 'us-east', to: 'us-west', toAddress: '127.0.0.54' });
      // The broker closes its sessions cleanly (a server-side disconnect) or the device sees the loss.
      expect(['disconnect', 'connection-lost']).toContain(move.trigger);
      expect(site.activeRegion()).toBe('us-west');

      const afterMove = client.counters.acked;
      await eventually(
        async () => client.counters.acked >= afterMove + 20,
        'messages acknowledged by us-west',
      );
    } finally {
      publishing = false;
      await publisher;
    }
    await eventually(async () => client.queueDepth === 0, 'the queue drained');

    const delivered = new Set([...(await site.busIds(site.east)), ...(await site.busIds(site.west))]);
    const lost = accepted.filter((id) => !delivered.has(id));
    expect(lost).toEqual([]);
    expect(accepted.length).toBeGreaterThan(40);
    expect(new Set(accepted).size).toBe(accepted.length);
    const counters = client.counters;
    expect(counters.published).toBe(accepted.length);
    expect(counters.connects).toBe(2);
  });
});

describe('device SDK cut off with a long backoff', () => {
  let site: DrSite;

  beforeAll(async () => {
    site = await startDrSite(['127.0.0.65', '127.0.0.66']);
  });
  afterAll(async () => {
    await site?.close();
  });

  it('connects to the new address as soon as DNS names it, not when its backoff ends', async () => {
    // Every reconnect delay drawn at the top of a 60 s bound: only the DNS watch can bring it back.
    const client = site.client(await site.device('meter-2'), {
      dns: { servers: [site.dnsServer], recheckMs: 0, retryMs: 200 },
      backoff: { baseMs: 60_000, capMs: 60_000 },
      random: () => 0.999,
    });
    const connected = nextEvent(client, 'connected');
    client.start();
    expect(await connected).toMatchObject({ region: 'us-east' });
    const retry = nextEvent(client, 'retry', () => true, 20_000);
    const moved = nextEvent(client, 'moved', () => true, 20_000);
    await site.east.running?.broker.close();
    expect((await retry).delayMs).toBeGreaterThanOrEqual(59_000);
    expect(await moved).toMatchObject({ from: 'us-east', to: 'us-west', toAddress: '127.0.0.66' });
    expect(site.activeRegion()).toBe('us-west');
  });
});
