/**
 * The device SDK against two real regions and the built-in DNS of `iotdr control`: each of the
 * reference design's signals moves it, and commands and shadows work in whichever region it is in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeviceClient, DnsCache } from '../../src/device/index.js';
import { eventually } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';
import { type DrSite, nextEvent, startDrSite } from './support.js';

const other = (r: 'us-east' | 'us-west') => (r === 'us-east' ? 'us-west' : 'us-east');

describe('device SDK signals', () => {
  let site: DrSite;

  beforeAll(async () => {
    // Only the signal under test moves the device: control does not disconnect anyone itself.
    site = await startDrSite(['127.0.0.51', '127.0.0.52'], { failover: { disconnectOnFailover: 'never' } });
  });
  afterAll(async () => {
    await site?.close();
  });

  async function started(client: DeviceClient): Promise<string> {
    const connected = nextEvent(client, 'connected');
    client.start();
    const e = await connected;
    expect(e.address).toBe(site.addresses[site.activeRegion()]);
    expect(e.region).toBe(site.activeRegion());
    return e.region as string;
  }

  it('moves on the failover notice to the region it names, and back on the next one', async () => {
    const client = site.client(await site.device('notice-1'));
    const inbox: string[] = [];
    await client.subscribe('devices/notice-1/inbox/+', (topic, payload) => inbox.push(`${topic} ${payload}`));
    const from = await started(client);
    const to = other(from as 'us-east');
    // A filter the device's policy does not allow is refused, and not subscribed again later.
    await expect(client.subscribe('devices/someone-else/inbox', () => {})).rejects.toMatchObject({
      code: 'IOTDR_DEVICE_SUBSCRIBE_REFUSED',
    });

    const moved = nextEvent(client, 'moved');
    await site.switchTo(to);
    expect(await moved).toEqual({
      type: 'moved',
      from,
      to,
      fromAddress: site.addresses[from as 'us-east'],
      toAddress: site.addresses[to],
      trigger: 'notice',
    });
    const back = nextEvent(client, 'moved');
    await site.switchTo(from as 'us-east');
    expect(await back).toMatchObject({ from: to, to: from, trigger: 'notice' });
    expect(client.counters.moves).toEqual({ notice: 2, disconnect: 0, dns: 0, 'connection-lost': 0 });
    // Its subscription was made again in each region it moved to.
    await site.cluster.regions[from]?.running?.broker.publish('devices/notice-1/inbox/a', 'hello', {
      qos: 1,
    });
    await eventually(async () => inbox.length === 1, 'the message in the inbox');
    expect(inbox).toEqual(['devices/notice-1/inbox/a hello']);
    expect(client.connection).toMatchObject({ region: from });
  });

  it('moves on a server-side disconnect, resolving the name again', async () => {
    const client = site.client(await site.device('disconnect-1'), { followNotices: false });
    const from = (await started(client)) as 'us-east';
    const to = other(from);
    await site.switchTo(to);
    // Neither a notice (not followed) nor a DNS re-check (off) moves it: it stays connected.
    await new Promise((r) => setTimeout(r, 300));
    expect(client.connection).toMatchObject({ region: from });

    const moved = nextEvent(client, 'moved');
    const res = await site.cluster.regions[from]?.call('POST', '/v1/connections/disconnect', {
      thing: 'disconnect-1',
    });
    expect(res?.body).toEqual({ disconnected: 1 });
    expect(await moved).toMatchObject({ from, to, trigger: 'disconnect' });
    expect(client.counters.moves.disconnect).toBe(1);
  });

  it('moves when the periodic DNS re-check finds another address', async () => {
    const client = site.client(await site.device('dns-1'), {
      followNotices: false,
      dns: { servers: [site.dnsServer], recheckMs: 100 },
    });
    const from = (await started(client)) as 'us-east';
    const to = other(from);
    const moved = nextEvent(client, 'moved');
    await site.switchTo(to);
    expect(await moved).toMatchObject({ from, to, trigger: 'dns', toAddress: site.addresses[to] });
    expect(client.counters.moves).toMatchObject({ dns: 1, notice: 0 });
  });

  it('moves devices sharing a DNS cache once the answer it holds runs out', async () => {
    // The cache keeps the old address until its TTL ends, never after: every device then moves.
    const dnsCache = new DnsCache();
    const clients = await Promise.all(
      ['dns-shared-a', 'dns-shared-b'].map(async (name) =>
        site.client(await site.device(name), {
          followNotices: false,
          dns: { servers: [site.dnsServer], recheckMs: 100 },
          dnsCache,
        }),
      ),
    );
    const from = (await started(clients[0] as DeviceClient)) as 'us-east';
    expect(await started(clients[1] as DeviceClient)).toBe(from);
    const to = other(from);
    const moved = clients.map((c) => nextEvent(c, 'moved'));
    await site.switchTo(to);
    for (const m of moved)
      expect(await m).toMatchObject({ from, to, trigger: 'dns', toAddress: site.addresses[to] });
  });

  it('receives and answers commands in either region, and de-duplicates a repeat', async () => {
    const client = site.client(await site.device('cmd-1'));
    const seen: string[] = [];
    await client.onCommand(async (command) => {
      seen.push(command.commandId);
      return { status: 'succeeded', result: { echo: command.payload } };
    });
    const first = (await started(client)) as 'us-east';
    const repeats: string[] = [];
    client.on('command', (e) => {
      if (e.duplicate) repeats.push(e.commandId);
    });

    for (const region of [first, other(first)] as const) {
      if (client.connection?.region !== region) {
        const moved = nextEvent(client, 'moved');
        await site.switchTo(region);
        await moved;
      }
      const cnc = site.cluster.regions[region]?.running?.cncUrl;
      const headers = {
        authorization: `Bearer ${site.cluster.adminToken}`,
        'content-type': 'application/json',
      };
      const issued = await fetch(`${cnc}/v1/devices/cmd-1/commands`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ name: 'ping', payload: { region } }),
      });
      expect(issued.status).toBe(201);
      const { commandId } = (await issued.json()) as { commandId: string };
      await eventually(async () => {
        const res = await fetch(`${cnc}/v1/commands/${commandId}`, { headers });
        const body = (await res.json()) as { state: string; result?: unknown; deliveredBy?: string };
        return (
          body.state === 'succeeded' && JSON.stringify(body.result) === JSON.stringify({ echo: { region } })
        );
      }, `command answered in ${region}`);
      expect(seen.filter((id) => id === commandId)).toHaveLength(1);
    }
    expect(seen).toHaveLength(2);
    // The handler ran once per command, whatever the region re-sent.
    expect(new Set(seen).size).toBe(2);
    expect(repeats.every((id) => seen.includes(id))).toBe(true);
  });

  it('runs a command once while the region sends it again, and answers the repeat', async () => {
    const client = site.client(await site.device('cmd-2'));
    let runs = 0;
    await client.onCommand(async () => {
      runs++;
      // Longer than the region's re-send interval (timeoutMs / maxAttempts = 1 s).
      await new Promise((r) => setTimeout(r, 1300));
      return { status: 'succeeded', result: runs };
    });
    const region = (await started(client)) as 'us-east';
    const duplicate = nextEvent(client, 'command', (e) => e.duplicate);
    const cnc = site.cluster.regions[region]?.running?.cncUrl;
    const headers = {
      authorization: `Bearer ${site.cluster.adminToken}`,
      'content-type': 'application/json',
    };
    const issued = await fetch(`${cnc}/v1/devices/cmd-2/commands`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'slow', timeoutMs: 4000, maxAttempts: 4 }),
    });
    const { commandId } = (await issued.json()) as { commandId: string };
    expect(await duplicate).toMatchObject({ commandId, name: 'slow', duplicate: true });
    await eventually(async () => {
      const body = (await (await fetch(`${cnc}/v1/commands/${commandId}`, { headers })).json()) as {
        state: string;
      };
      return body.state === 'succeeded';
    }, 'the command answered');
    expect(runs).toBe(1);
  });

  it('reads and updates its shadow in either region', async () => {
    const client = site.client(await site.device('shadow-1'));
    const first = (await started(client)) as 'us-east';
    await expect(client.getShadow()).rejects.toMatchObject({
      code: 'IOTDR_DEVICE_SHADOW_REJECTED',
      details: { errorCode: 'IOTDR_SHADOW_NOT_FOUND' },
    });
    const updated = await client.updateShadow({ reported: { firmware: '1.0', region: first } });
    expect(updated).toMatchObject({ state: { reported: { firmware: '1.0' } }, version: 1 });

    const moved = nextEvent(client, 'moved');
    await site.switchTo(other(first));
    await moved;
    // The shadow replicated: the other region answers with it, and takes a conditional update.
    await eventually(async () => {
      const doc = await client.getShadow().catch(() => undefined);
      return (doc as { version?: number } | undefined)?.version === 1;
    }, 'the replicated shadow');
    const again = await client.updateShadow({ reported: { region: other(first) } }, { version: 1 });
    expect(again).toMatchObject({ version: 2 });
    await expect(client.updateShadow({ reported: { x: 1 } }, { version: 1 })).rejects.toMatchObject({
      code: 'IOTDR_DEVICE_SHADOW_REJECTED',
      details: { errorCode: 'IOTDR_SHADOW_VERSION_CONFLICT' },
    });
    const doc = (await client.getShadow()) as { state: { reported: Record<string, unknown> } };
    expect(doc.state.reported).toEqual({ firmware: '1.0', region: other(first) });
  });
});
