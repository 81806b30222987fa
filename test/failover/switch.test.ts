/**
 * A whole switch over real regions: the checker sees a critical application service of us-east
 * fail, the controller moves the fleet to us-west, and the executor tells DNS, publishes the
 * failover notice that a device subscribed on us-west receives, disconnects the devices still on
 * us-east, and calls a webhook that fails once. The decision log has the time of every step.
 * The checker and the executor call the regions as control does: over mutual TLS with control's
 * site certificate, no token.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILOVER_NOTICE_TOPIC } from '../../src/broker/index.js';
import {
  Checker,
  type Decision,
  FailoverController,
  FailoverStore,
  type SwitchEvent,
  SwitchExecutor,
} from '../../src/failover/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { connect, provision } from '../harness/devices.js';
import { controlAgents, tempDir } from './support.js';

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('a switch over real regions', () => {
  let cluster: Cluster;
  let east: ClusterRegion;
  let west: ClusterRegion;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let agents: Map<string, Agent>;
  const servers: Server[] = [];
  const clients: MqttClient[] = [];
  let eastAppUp = true;
  const webhookCalls: unknown[] = [];

  beforeAll(async () => {
    dir = await tempDir();
    cluster = await startCluster(['us-east', 'us-west'], { engine: 'sqlite' });
    east = cluster.regions['us-east'] as ClusterRegion;
    west = cluster.regions['us-west'] as ClusterRegion;
    agents = await controlAgents(cluster.stateDir, ['us-east', 'us-west']);
  }, 60_000);

  /** Control's agent for a region. */
  const agentOf = (name: string) => agents.get(name) as Agent;

  afterAll(async () => {
    for (const agent of agents?.values() ?? []) agent.destroy();
    for (const c of clients) await c.endAsync(true).catch(() => {});
    await cluster?.close();
    for (const s of servers) s.close();
    await dir?.remove();
  });

  it('moves the fleet when a critical service of the primary fails, and runs every action of the switch', async () => {
    // Each region's application service, probed by the checker as an extra health URL.
    const eastApp = await listen((_req, res) => res.writeHead(eastAppUp ? 200 : 503).end());
    const westApp = await listen((_req, res) => res.writeHead(200).end());
    // A webhook receiver that fails its first call.
    const webhook = await listen((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        webhookCalls.push(JSON.parse(body));
        res.writeHead(webhookCalls.length === 1 ? 500 : 204).end();
      });
    });
    servers.push(eastApp.server, westApp.server, webhook.server);

    const onEast = await provision(east, 'dev-on-east');
    const onWest = await provision(east, 'dev-on-west');
    await eventually(
      async () =>
        (await west.call('GET', `/v1/certificates/${onWest.certificateId}/policies`)).body?.items?.length ===
        1,
      'the devices in us-west',
    );
    const eastClient = await connect(east, onEast);
    const westClient = await connect(west, onWest);
    clients.push(eastClient, westClient);
    const notices: unknown[] = [];
    westClient.on('message', (topic, payload) => {
      if (topic === FAILOVER_NOTICE_TOPIC) notices.push(JSON.parse(payload.toString()));
    });
    await westClient.subscribeAsync(FAILOVER_NOTICE_TOPIC, { qos: 1 });
    const eastClosed = new Promise<void>((resolve) => eastClient.once('close', () => resolve()));

    const decisions: Decision[] = [];
    const regions = [
      { name: 'us-east', priority: 1, url: east.url, agent: agentOf('us-east') },
      { name: 'us-west', priority: 2, url: west.url, agent: agentOf('us-west') },
    ];
    const store = new FailoverStore(join(dir.dir, 'failover.db'));
    const controller = new FailoverController({
      regions,
      checkers: ['control'],
      store,
      recoveryThreshold: 2,
      evaluateEveryMs: 100,
      actions: new SwitchExecutor({
        regions,
        sinks: [{ apply: (d) => void decisions.push(d) }],
        webhooks: [{ url: `${webhook.url}/hooks/failover`, headers: { 'x-secret': 'shh' } }],
        webhookRetry: { baseMs: 50 },
      }),
    });
    const checker = new Checker({
      id: 'control',
      intervalMs: 100,
      regions: [
        {
          name: 'us-east',
          url: east.url,
          agent: agentOf('us-east'),
          extra: [{ name: 'orders-app', component: 'app', url: eastApp.url }],
        },
        {
          name: 'us-west',
          url: west.url,
          agent: agentOf('us-west'),
          extra: [{ name: 'orders-app', component: 'app', url: westApp.url }],
        },
      ],
      sink: controller,
    });
    await controller.start();
    checker.start();
    try {
      expect(decisions).toEqual([
        { activeRegion: 'us-east', epoch: 0, at: expect.any(Number), eventId: null },
      ]);
      await eventually(async () => controller.mode().type === 'health', 'the end of the hold');
      expect(controller.decision().activeRegion).toBe('us-east');

      eastAppUp = false;
      await eventually(async () => controller.decision().activeRegion === 'us-west', 'the switch to us-west');
      await controller.idle();
      await eastClosed;
      await eventually(async () => notices.length > 0, 'the failover notice on us-west');

      const decision = controller.decision();
      expect(decision).toMatchObject({ activeRegion: 'us-west', epoch: 1 });
      expect(decisions.at(-1)).toEqual(decision);
      expect(notices[0]).toEqual({
        activeRegion: 'us-west',
        epoch: 1,
        at: new Date(decision.at).toISOString(),
      });
      expect(webhookCalls).toHaveLength(2);
      expect(webhookCalls[1]).toMatchObject({ type: 'switch', from: 'us-east', to: 'us-west', epoch: 1 });

      const event = (await controller.events({ limit: 100, type: 'switch' }))[0] as SwitchEvent;
      expect(event.trigger).toEqual({ type: 'health', region: 'us-east', status: 'down' });
      const t = event.timings;
      const order = [
        t.firstFailedProbeAt,
        t.thresholdCrossedAt,
        t.decidedAt,
        t.dnsUpdatedAt,
        t.noticesPublishedAt,
        t.disconnectsRequestedAt,
      ];
      expect(order.every((x) => typeof x === 'number')).toBe(true);
      expect([...(order as number[])].sort((a, b) => a - b)).toEqual(order);
      expect(t.webhooksCalledAt).toBeGreaterThanOrEqual(t.decidedAt);
      expect(event.steps.noticesPublished).toMatchObject({
        'us-east': { ok: true, status: 202 },
        'us-west': { ok: true, status: 202 },
      });
      expect(event.steps.disconnectsRequested).toMatchObject({
        region: 'us-east',
        ok: true,
        disconnected: 1,
      });
      expect(event.steps.webhooksCalled).toEqual([expect.objectContaining({ ok: true, attempts: 2 })]);
      // The device on the secondary stays.
      expect(westClient.connected).toBe(true);
    } finally {
      await checker.stop();
      await controller.stop();
      store.close();
    }
  });

  it('leaves the old region’s devices alone with disconnectOnFailover: never, and records an unreachable region', async () => {
    const device = await provision(east, 'dev-stays');
    const client = await connect(east, device);
    clients.push(client);
    const closed = new Promise<string>((resolve) => client.once('close', () => resolve('closed')));
    const gone = await listen(() => {});
    gone.server.close();
    await once(gone.server, 'close');
    const regions = [
      { name: 'us-east', priority: 1, url: east.url, agent: agentOf('us-east') },
      { name: 'us-west', priority: 2, url: west.url, agent: agentOf('us-west') },
      { name: 'eu-central', priority: 3, url: gone.url },
    ];
    const store = new FailoverStore(join(dir.dir, 'never.db'));
    const controller = new FailoverController({
      regions,
      checkers: ['control'],
      store,
      actions: new SwitchExecutor({ regions, disconnectOnFailover: 'never' }),
    });
    try {
      await controller.start();
      const { switch: event } = await controller.switchTo({ to: 'us-west', reason: 'drill', who: 'test' });
      await controller.idle();
      const stored = (await controller.events({ limit: 100, type: 'switch' })).find(
        (e) => e.id === event?.id,
      ) as SwitchEvent;
      expect(stored.steps.noticesPublished).toMatchObject({
        'us-east': { ok: true },
        'us-west': { ok: true },
        'eu-central': { ok: false, error: 'ECONNREFUSED' },
      });
      expect(stored.timings.noticesPublishedAt).not.toBeNull();
      expect(stored.timings.disconnectsRequestedAt).toBeNull();
      const still = await Promise.race([closed, new Promise((r) => setTimeout(() => r('connected'), 300))]);
      expect(still).toBe('connected');
      expect(client.connected).toBe(true);
    } finally {
      await controller.stop();
      store.close();
    }
  });
});
