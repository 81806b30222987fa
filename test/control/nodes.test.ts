/**
 * Three control nodes over two real regions and a real three-member etcd cluster, mutual TLS on
 * every link: one leader decides, every node's DNS answers the committed decision, a routing
 * control sent to any node is relayed to the leader, and when the leader stops another one takes
 * over with the same decision.
 */
import { Resolver } from 'node:dns/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, waitUntil } from '../../src/common/index.js';
import { activeRegion, platformCredentials } from '../../src/fleet/index.js';
import { type RunningControl, startAnalytics, startNameServer } from '../../src/processes/index.js';
import { type Cluster, type ClusterRegion, clusterCli } from '../harness/cluster.js';
import { type ControlNodes, startControlNodes } from '../harness/control-nodes.js';
import { etcdSkipReason } from '../harness/etcd.js';
import { fetch } from '../harness/https.js';
import { freePort } from '../harness/process.js';

const skip = etcdSkipReason();
const EAST = '127.0.0.51';
const WEST = '127.0.0.52';
const NODES = ['ctl-a', 'ctl-b', 'ctl-c'];
const FAILOVER = { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 2 };

describe.skipIf(skip !== undefined)('control nodes', () => {
  let plane: ControlNodes | undefined;
  let cluster: Cluster;
  let nodes: Map<string, RunningControl>;

  beforeAll(async () => {
    plane = await startControlNodes({
      prefix: 'iotdr-nodes-',
      regions: ['us-east', 'us-west'],
      addresses: [EAST, WEST],
      nodes: NODES.map((name, i) => ({ name, address: `127.0.0.${61 + i}` })),
      failover: FAILOVER,
    });
    ({ cluster, nodes } = plane);
  }, 120_000);

  afterAll(() => plane?.stop());

  const running = () => [...nodes.values()];
  const leaders = () => running().filter((n) => n.controller.leads());
  const admin = () => ({ authorization: `Bearer ${cluster.adminToken}`, 'content-type': 'application/json' });

  async function mqttAt(node: RunningControl): Promise<string[]> {
    const resolver = new Resolver({ timeout: 500, tries: 1 });
    resolver.setServers([`${node.dns.host}:${node.dns.port}`]);
    return resolver.resolve4('mqtt.iot.test');
  }

  it('elects one leader; every node holds the same decision and its DNS answers it', async () => {
    await waitUntil(() => leaders().length === 1, { timeoutMs: 15_000, what: 'one leader' });
    const leader = leaders()[0] as RunningControl;
    await waitUntil(() => leader.controller.state().mode.type === 'health', {
      timeoutMs: 15_000,
      what: 'the leader decides from health',
    });
    for (const node of running()) {
      // The nodes that do not lead show the leader's mode too, from the committed state.
      await waitUntil(() => node.controller.state().mode.type === 'health', {
        timeoutMs: 5000,
        what: `${node.node} shows the leader deciding from health`,
      });
      const res = await fetch(`${node.controlUrl}/v1/failover/state`, { headers: admin() });
      expect(res.status).toBe(200);
      const state = await res.json();
      expect(state).toMatchObject({
        activeRegion: 'us-east',
        epoch: 0,
        checkers: NODES,
        quorum: 2,
        control: {
          node: node.node,
          leads: node === leader,
          leader: { node: leader.node, url: leader.controlUrl },
        },
      });
      // Every node's checker votes at every node.
      await waitUntil(
        () => Object.keys(node.controller.state().regions[0]?.checkers ?? {}).length === NODES.length,
        { timeoutMs: 10_000, what: `${node.node} hears every checker` },
      );
      await waitUntil(async () => (await mqttAt(node).catch((): string[] => [])).includes(EAST), {
        timeoutMs: 10_000,
        what: `${node.node}'s DNS answers us-east`,
      });
    }
  }, 60_000);

  it('relays a routing control sent to a node that does not lead, and refuses a token that may not', async () => {
    const follower = running().find((n) => !n.controller.leads()) as RunningControl;
    const refused = await fetch(`${follower.controlUrl}/v1/failover/switch`, {
      method: 'POST',
      headers: { authorization: 'Bearer not-a-token', 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'us-west', reason: 'x' }),
    });
    expect(refused.status).toBe(401);
    const res = await fetch(`${follower.controlUrl}/v1/failover/switch`, {
      method: 'POST',
      headers: admin(),
      body: JSON.stringify({ to: 'us-west', reason: 'drill through a follower' }),
    });
    const body = (await res.json()) as { switch: unknown };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.switch).toMatchObject({ to: 'us-west', epoch: 1, trigger: { type: 'manual', who: 'admin' } });
    for (const node of running()) {
      await waitUntil(() => node.controller.decision().epoch === 1, {
        timeoutMs: 5000,
        what: `${node.node} follows`,
      });
      await waitUntil(async () => (await mqttAt(node).catch((): string[] => [])).includes(WEST), {
        timeoutMs: 5000,
        what: `${node.node}'s DNS answers us-west`,
      });
    }
    // Back through another node.
    const other = running().find((n) => n !== follower && !n.controller.leads()) ?? follower;
    const back = await fetch(`${other.controlUrl}/v1/failover/failback`, {
      method: 'POST',
      headers: admin(),
      body: JSON.stringify({ reason: 'done' }),
    });
    expect(back.status).toBe(200);
    expect(((await back.json()) as { switch: unknown }).switch).toMatchObject({ to: 'us-east', epoch: 2 });
  }, 60_000);

  it('moves the fleet when the primary fails, and a new leader keeps the decision when the leader stops', async () => {
    const east = cluster.regions['us-east'] as ClusterRegion;
    await east.stop();
    await waitUntil(() => running().every((n) => n.controller.decision().activeRegion === 'us-west'), {
      timeoutMs: 20_000,
      what: 'the move to us-west',
    });
    const moved = (leaders()[0] as RunningControl).controller.decision();
    expect(moved.epoch).toBe(3);
    const leader = leaders()[0] as RunningControl;
    await leader.stop();
    nodes.delete(leader.node);
    await waitUntil(() => leaders().length === 1, { timeoutMs: 10_000, what: 'a new leader' });
    const next = leaders()[0] as RunningControl;
    await next.controller.idle();
    expect(next.controller.decision()).toEqual(moved);
    const switches = await next.controller.events({ limit: 100, type: 'switch' });
    expect(switches.map((e) => (e.type === 'switch' ? e.epoch : -1))).toEqual([1, 2, 3]);
    // The old leader published the notices: the new one does not do it again.
    const last = switches.at(-1);
    expect(last?.type === 'switch' && last.timings.noticesPublishedAt).not.toBeNull();
  }, 60_000);

  it('keeps an iotdr dns server on the committed decision by following every node, a stopped one too', async () => {
    const server = {
      name: 'ns-extra',
      address: '127.0.0.1',
      port: await freePort(),
      httpPort: await freePort(),
    };
    const config = { ...cluster.config, dns: { ...cluster.config.dns, servers: [server] } };
    const ns = await startNameServer({
      config,
      stateDir: cluster.stateDir,
      name: server.name,
      logger: createLogger({ level: 'silent' }),
      waitMs: 1000,
    });
    try {
      const decided = (running()[0] as RunningControl).controller.decision();
      await waitUntil(() => ns.follower.health().status === 'pass', {
        timeoutMs: 10_000,
        what: 'the DNS server confirmed by a node',
      });
      expect(ns.follower.status().serving).toMatchObject({
        region: decided.activeRegion,
        epoch: decided.epoch,
      });
      // Every node is followed, each over mutual TLS with its own site; a stopped one is unreachable.
      const stopped = NODES.filter((n) => !nodes.has(n));
      await waitUntil(
        () =>
          ns.follower
            .status()
            .nodes.every((n) => n.link === (stopped.includes(n.name) ? 'unreachable' : 'connected')),
        { timeoutMs: 10_000, what: 'every node’s link known' },
      );
      for (const node of ns.follower.status().nodes)
        if (!stopped.includes(node.name))
          expect(node).toMatchObject({ lastError: null, epoch: decided.epoch });
      expect(ns.follower.status().nodes.map((n) => n.name)).toEqual(NODES);
      const resolver = new Resolver({ timeout: 500, tries: 1 });
      resolver.setServers([`${ns.dns.host}:${ns.dns.port}`]);
      expect(await resolver.resolve4('mqtt.iot.test')).toEqual([
        decided.activeRegion === 'us-east' ? EAST : WEST,
      ]);
    } finally {
      await ns.stop();
    }
  }, 30_000);

  it('serves iotdr failover, analytics and the fleet from the next node when the first is down', async () => {
    const first = nodes.get(NODES[0] as string);
    if (first) {
      await first.stop();
      nodes.delete(first.node);
    }
    await waitUntil(() => leaders().length === 1, { timeoutMs: 10_000, what: 'a leader among the others' });

    // The command line, with the configuration that lists every node, the first one first.
    const { code, out, err } = await clusterCli(cluster, [
      'failover',
      '--to',
      'us-west',
      '--reason',
      'first node down',
    ]);
    expect(code, err).toBe(0);
    expect(out).toContain('override to us-west by admin: first node down');

    // The fleet simulator onboards where control says, not in the primary.
    const { token, caPem } = await platformCredentials(cluster.stateDir);
    expect((await activeRegion(cluster.config, token, caPem)).name).toBe('us-west');

    // Analytics mirrors the decision log over mutual TLS, each node checked as its own site.
    const analytics = await startAnalytics({
      config: cluster.config,
      stateDir: cluster.stateDir,
      logger: createLogger({ level: 'silent' }),
      listen: { host: '127.0.0.1', port: 0 },
      mirrorIntervalMs: 200,
      dashboard: false,
    });
    try {
      await waitUntil(
        async () => (await analytics.store.timeline({ limit: 500, type: 'override-set' })).length > 0,
        {
          timeoutMs: 10_000,
          what: 'the routing control mirrored',
        },
      );
      const status = analytics.mirror.status();
      expect(status.state.type).toBe('following');
      expect(running().map((n) => n.controlUrl)).toContain(status.controlUrl);
    } finally {
      await analytics.stop();
    }
  }, 60_000);
});
