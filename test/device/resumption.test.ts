/**
 * The device SDK resumes its TLS session in the other region: two real regions from one state
 * directory (so one ticket secret, made by whichever region started first), the built-in DNS of
 * `iotdr control`, a real switch. Both sides are asked: the SDK's `connected` event and the
 * broker's handshake counter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterRegion } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';
import { type DrSite, nextEvent, standInBroker, startDrSite } from './support.js';

/** The region broker's count of mutual-TLS handshakes, full or resumed, from its /metrics. */
async function handshakes(region: ClusterRegion, session: 'full' | 'resumed'): Promise<number> {
  const text = await (await fetch(`${region.url}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('iotdr_broker_tls_handshakes_total{') &&
        l.includes('listener="mtls"') &&
        l.includes(`session="${session}"`),
    );
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('device SDK: TLS session resumption across regions', () => {
  let site: DrSite;

  beforeAll(async () => {
    site = await startDrSite(['127.0.0.67', '127.0.0.68']);
  });
  afterAll(async () => {
    await site?.close();
  });

  it('resumes in the other region the session it made in the first, and says so', async () => {
    if (site.activeRegion() !== 'us-east') await site.switchTo('us-east');
    const client = site.client(await site.device('resume-1'));
    const first = nextEvent(client, 'connected');
    client.start();
    expect(await first).toMatchObject({ region: 'us-east', resumed: false });
    expect(client.connection).toMatchObject({ region: 'us-east', resumed: false });

    const resumedBefore = await handshakes(site.west, 'resumed');
    const second = nextEvent(client, 'connected');
    await site.switchTo('us-west');
    expect(await second).toMatchObject({ region: 'us-west', resumed: true });
    expect(client.connection).toMatchObject({ region: 'us-west', resumed: true });
    expect(await handshakes(site.west, 'resumed')).toBe(resumedBefore + 1);
    expect(client.counters).toMatchObject({ connects: 2, resumed: 1 });

    // And back: the ticket us-west gave it resumes in us-east.
    const third = nextEvent(client, 'connected');
    await site.switchTo('us-east');
    expect(await third).toMatchObject({ region: 'us-east', resumed: true });
    expect(client.counters).toMatchObject({ connects: 3, resumed: 2 });
  });

  it('makes a full handshake on every connection with tlsResumption off', async () => {
    if (site.activeRegion() !== 'us-east') await site.switchTo('us-east');
    const client = site.client(await site.device('resume-2'), { tlsResumption: false });
    const first = nextEvent(client, 'connected');
    client.start();
    expect(await first).toMatchObject({ region: 'us-east', resumed: false });
    const fullBefore = await handshakes(site.west, 'full');
    const second = nextEvent(client, 'connected');
    await site.switchTo('us-west');
    expect(await second).toMatchObject({ region: 'us-west', resumed: false });
    expect(await handshakes(site.west, 'full')).toBeGreaterThan(fullBefore);
    expect(client.counters).toMatchObject({ connects: 2, resumed: 0 });
  });
});

describe('device SDK: a broker that fails the handshake when offered a session', () => {
  let site: DrSite;

  beforeAll(async () => {
    // Only the test moves anything: health alone does not take us-east out of DNS.
    site = await startDrSite(['127.0.0.69', '127.0.0.70'], {
      failover: { failureThreshold: 100, disconnectOnFailover: 'never' },
    });
  });
  afterAll(async () => {
    await site?.close();
  });

  it('drops the session and connects with a full handshake', async () => {
    const device = await site.device('resume-3');
    // us-east's broker gives way to one as iotdr's was before resumption: it asks for a client
    // certificate with no session id context, so OpenSSL answers a resumption with an alert.
    const old = await standInBroker(site, { requestCert: true });
    try {
      const client = site.client(device, { followNotices: false });
      const first = nextEvent(client, 'connected');
      client.start();
      expect(await first).toMatchObject({ region: 'us-east', resumed: false });
      const errors: string[] = [];
      client.on('retry', (e) => errors.push(e.error));
      const second = nextEvent(client, 'connected');
      // The server ends the session; the device comes back offering the session it was given. Every
      // socket: on a busy machine a first attempt may have timed out, and the live one is a later.
      for (const socket of old.sockets) socket.end();
      expect(await second).toMatchObject({ region: 'us-east', resumed: false });
      expect(errors.some((e) => /alert/i.test(e))).toBe(true);
    } finally {
      old.close();
    }
  });
});
