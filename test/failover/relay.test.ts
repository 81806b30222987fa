/**
 * The failover notice and the disconnect reach a region control cannot reach, through a peer
 * region: real regions over mutual TLS, the executor given a dead address for us-east (its devices
 * and its peer still reach it), a third region that nobody reaches. And a region's broker keeps the
 * newest notice: a lower epoch, relayed or not, does not replace it, nor cut its devices.
 */
import { once } from 'node:events';
import { type Agent, request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILOVER_NOTICE_TOPIC } from '../../src/broker/index.js';
import {
  FailoverController,
  FailoverStore,
  type SwitchEvent,
  SwitchExecutor,
} from '../../src/failover/index.js';
import type { SiteId } from '../../src/pki/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { connect, type Device, provision } from '../harness/devices.js';
import { siteAgentOf } from '../harness/region.js';
import { controlAgents, tempDir } from './support.js';

/** A local port nothing listens on: a connection to it is refused at once. */
async function deadPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** The notice a device (not connected) subscribing now gets from the region's broker: the retained one. */
async function retainedNotice(region: ClusterRegion, device: Device): Promise<unknown> {
  const client = await connect(region, device);
  try {
    const got = new Promise<unknown>((resolve) =>
      client.on('message', (topic, payload) => {
        if (topic === FAILOVER_NOTICE_TOPIC) resolve(JSON.parse(payload.toString()));
      }),
    );
    await client.subscribeAsync(FAILOVER_NOTICE_TOPIC, { qos: 1 });
    return await got;
  } finally {
    await client.endAsync(true);
  }
}

/** POST as a site, over its own mutual-TLS agent. */
function post(agent: Agent, url: string, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { agent, method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text.length > 0 ? JSON.parse(text) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('notices and disconnects relayed through a peer region', () => {
  let cluster: Cluster;
  let east: ClusterRegion;
  let west: ClusterRegion;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let agents: Map<string, Agent>;
  const extra: Agent[] = [];
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    // eu-central is configured but never started: no way reaches it.
    cluster = await startCluster(
      ['us-east', 'us-west', 'eu-central'],
      { engine: 'sqlite' },
      {
        autostart: ['us-east', 'us-west'],
      },
    );
    east = cluster.regions['us-east'] as ClusterRegion;
    west = cluster.regions['us-west'] as ClusterRegion;
    agents = await controlAgents(cluster.stateDir, ['us-east', 'us-west', 'eu-central']);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    for (const agent of [...(agents?.values() ?? []), ...extra]) agent.destroy();
    await cluster?.close();
    await dir?.remove();
  });

  const agentOf = (name: string) => agents.get(name) as Agent;
  const as = async (site: SiteId, peer: SiteId): Promise<Agent> => {
    const agent = await siteAgentOf(cluster.stateDir, site, peer);
    extra.push(agent);
    return agent;
  };

  it('tells and cuts the devices of a region control cannot reach, through its peer, and records the way', async () => {
    const device = await provision(east, 'relay-east-1');
    const client = await connect(east, device);
    clients.push(client);
    const heard: unknown[] = [];
    client.on('message', (topic, payload) => {
      if (topic === FAILOVER_NOTICE_TOPIC) heard.push(JSON.parse(payload.toString()));
    });
    await client.subscribeAsync(FAILOVER_NOTICE_TOPIC, { qos: 1 });
    let closed = false;
    client.once('close', () => {
      closed = true;
    });

    // Control sees us-east at an address where nothing answers; us-west reaches it as ever.
    const regions = [
      {
        name: 'us-east',
        priority: 1,
        url: `https://127.0.0.1:${await deadPort()}`,
        agent: agentOf('us-east'),
      },
      { name: 'us-west', priority: 2, url: west.url, agent: agentOf('us-west') },
      {
        name: 'eu-central',
        priority: 3,
        url: (cluster.regions['eu-central'] as ClusterRegion).url,
        agent: agentOf('eu-central'),
      },
    ];
    const store = new FailoverStore(join(dir.dir, 'relay.db'));
    const controller = new FailoverController({
      regions,
      checkers: ['control'],
      store,
      actions: new SwitchExecutor({ regions }),
    });
    try {
      await controller.start();
      const { switch: event } = await controller.switchTo({ to: 'us-west', reason: 'cut off', who: 'test' });
      await controller.idle();
      const stored = (await controller.events({ limit: 100, type: 'switch' })).find(
        (e) => e.id === event?.id,
      ) as SwitchEvent;
      const notice = { activeRegion: 'us-west', epoch: stored.epoch, at: new Date(stored.at).toISOString() };

      expect(stored.steps.noticesPublished).toMatchObject({
        'us-east': { ok: true, status: 202, via: 'us-west' },
        'us-west': { ok: true, status: 202, via: 'direct' },
        'eu-central': {
          ok: false,
          via: 'direct',
          error: 'ECONNREFUSED',
          relays: [{ ok: false, via: 'us-west', error: 'ECONNREFUSED' }],
        },
      });
      expect(stored.steps.disconnectsRequested).toMatchObject({
        region: 'us-east',
        ok: true,
        via: 'us-west',
        disconnected: 1,
      });
      const t = stored.timings;
      expect(t.disconnectsRequestedAt).toBeGreaterThanOrEqual(t.noticesPublishedAt as number);

      // The device on us-east heard the notice before it was cut.
      await eventually(() => closed, 'the device on us-east disconnected');
      expect(heard).toEqual([notice]);
      // And a device connecting to us-east now gets it, retained.
      expect(await retainedNotice(east, device)).toEqual(notice);
    } finally {
      await controller.stop();
      store.close();
    }
  });

  it('keeps the newest notice: a lower epoch, direct or relayed, is refused and cuts nobody', async () => {
    const url = `${west.url}/v1/notices/failover`;
    const control = agentOf('us-west');
    const newer = { activeRegion: 'us-east', epoch: 20, at: '2026-11-27T03:00:00.000Z' };
    expect(await post(control, url, newer)).toEqual({ status: 202, body: newer });
    // The same notice again: taken, not published twice.
    expect(await post(control, url, newer)).toEqual({ status: 202, body: newer });
    const older = await post(control, url, {
      activeRegion: 'us-west',
      epoch: 19,
      at: new Date().toISOString(),
    });
    expect([older.status, older.body.code, older.body.kept]).toEqual([
      409,
      'IOTDR_BROKER_NOTICE_STALE',
      newer,
    ]);
    const same = await post(control, url, { ...newer, activeRegion: 'us-west' });
    expect([same.status, same.body.code]).toEqual([409, 'IOTDR_BROKER_NOTICE_STALE']);

    // Relayed through us-east with a disconnect: refused, so the devices of us-west stay.
    const device = await provision(west, 'relay-west-1');
    const client = await connect(west, device);
    clients.push(client);
    const relayed = await post(agentOf('us-east'), `${east.url}/v1/notices/failover/relay`, {
      region: 'us-west',
      notice: { activeRegion: 'eu-central', epoch: 18, at: new Date().toISOString() },
      disconnect: { all: true },
    });
    expect(relayed.status).toBe(200);
    expect(relayed.body).toMatchObject({
      region: 'us-west',
      notice: { ok: false, status: 409, code: 'IOTDR_BROKER_NOTICE_STALE' },
      disconnect: { ok: false },
    });
    expect(relayed.body.disconnect.status).toBeUndefined();
    const sessions = await west.call('GET', '/v1/connections');
    expect(sessions.body.items.map((c: { thing: string }) => c.thing)).toContain('relay-west-1');
    expect(client.connected).toBe(true);
    expect(await retainedNotice(west, await provision(west, 'relay-west-2'))).toEqual(newer);
  });

  it('relays for control only, to another configured region only; a peer region may publish and disconnect', async () => {
    const relay = `${east.url}/v1/notices/failover/relay`;
    const notice = { activeRegion: 'us-west', epoch: 30, at: new Date().toISOString() };
    const control = agentOf('us-east');
    const self = await post(control, relay, { region: 'us-east', notice });
    expect([self.status, self.body.code]).toEqual([400, 'IOTDR_BROKER_RELAY_TO_SELF']);
    const unknown = await post(control, relay, { region: 'ap-south', notice });
    expect([unknown.status, unknown.body.code]).toEqual([404, 'IOTDR_BROKER_RELAY_UNKNOWN_REGION']);

    // A region may not have a notice relayed (no relay of a relay), nor may a checker.
    const eastId: SiteId = { kind: 'region', name: 'us-east' };
    const asWest = await as({ kind: 'region', name: 'us-west' }, eastId);
    const byRegion = await post(asWest, relay, { region: 'us-west', notice });
    expect([byRegion.status, byRegion.body.code]).toEqual([403, 'IOTDR_AUTH_SITE_FORBIDDEN']);
    const asChecker = await as({ kind: 'checker', name: 'control' }, eastId);
    const byChecker = await post(asChecker, `${east.url}/v1/notices/failover`, notice);
    expect([byChecker.status, byChecker.body.code]).toEqual([403, 'IOTDR_AUTH_SITE_FORBIDDEN']);

    // A peer region relaying control's notice and disconnect is let in.
    expect(await post(asWest, `${east.url}/v1/notices/failover`, notice)).toEqual({
      status: 202,
      body: notice,
    });
    expect(await post(asWest, `${east.url}/v1/connections/disconnect`, { all: true })).toMatchObject({
      status: 200,
    });
  });
});

describe('a relay on plain loopback links', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        config: { links: { mode: 'plain-loopback' } },
      },
    );
  }, 60_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it("passes control's admin token on to the peer, and takes no other token", async () => {
    const east = cluster.regions['us-east'] as ClusterRegion;
    const west = cluster.regions['us-west'] as ClusterRegion;
    const notice = { activeRegion: 'us-west', epoch: 3, at: new Date().toISOString() };
    const relayed = await west.call('POST', '/v1/notices/failover/relay', {
      region: 'us-east',
      notice,
      disconnect: { all: true },
    });
    expect(relayed).toEqual({
      status: 200,
      body: {
        region: 'us-east',
        notice: { ok: true, status: 202 },
        disconnect: { ok: true, status: 200, disconnected: 0 },
      },
    });
    expect(await retainedNotice(east, await provision(east, 'plain-east-1'))).toEqual(notice);
    const operator = await west.call('POST', '/v1/tokens', { name: 'ops', role: 'operator' });
    expect(operator.status).toBe(201);
    const refused = await west.call(
      'POST',
      '/v1/notices/failover/relay',
      { region: 'us-east', notice },
      operator.body.token,
    );
    expect([refused.status, refused.body.code]).toEqual([403, 'IOTDR_AUTH_FORBIDDEN']);
    // The route is in the region's OpenAPI document, its outcome schema with it.
    const doc = (await west.call('GET', '/openapi.json')).body;
    expect(doc.paths['/v1/notices/failover/relay'].post).toBeDefined();
    expect(Object.keys(doc.components.schemas)).toContain('RelayOutcome');
  });
});
