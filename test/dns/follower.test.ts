/**
 * A DNS follower against the control API's real decision route (DecisionFeed behind
 * buildApi), one server per control node: it follows decisions by long poll, ignores one older
 * than what it serves, refuses one naming another region at the served epoch, reports a refused
 * token, and keeps its decision in a file it validates on start. With several nodes it serves the
 * highest epoch any of them answers, and keeps it when they go away.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { BuiltinDnsProvider, DnsEngine, DnsFollower } from '../../src/dns/index.js';
import { DecisionFeed, decisionRoutes } from '../../src/failover/index.js';
import { buildApi, staticTokens } from '../../src/http/index.js';
import { eventually } from '../harness/cluster.js';
import { fetch } from '../harness/https.js';

const TOKEN = 'reader-token-for-the-follower';
const ADDRESSES: Record<string, string> = { 'us-east': '127.0.0.11', 'us-west': '127.0.0.12' };

describe('DnsFollower', () => {
  let dir: string;
  let app: FastifyInstance;
  let feed: DecisionFeed;
  let controlUrl: string;
  const followers: DnsFollower[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-follower-'));
    feed = new DecisionFeed((region) => ADDRESSES[region] ?? '');
    app = await buildApi({
      openapi: { title: 'a control API', description: 'under test' },
      tokens: staticTokens([{ token: TOKEN, name: 'dns', role: 'reader' }]),
      logger: createLogger({ level: 'silent' }),
      routes: [decisionRoutes(feed)],
    });
    controlUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterEach(async () => {
    for (const f of followers.splice(0)) await f.stop();
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  function follower(options: { token?: string } = {}): { follower: DnsFollower; engine: DnsEngine } {
    const engine = new DnsEngine({
      state: { zone: 'iot.test', nameservers: [{ name: 'ns', address: '127.0.0.10' }] },
    });
    const f = new DnsFollower({
      name: 'ns-test',
      controls: [{ name: 'control', url: controlUrl }],
      token: options.token ?? TOKEN,
      provider: new BuiltinDnsProvider({ engines: [engine] }),
      statePath: join(dir, 'ns-test.decision.json'),
      waitMs: 2000,
      retry: { baseMs: 20, capMs: 100 },
      logger: createLogger({ level: 'silent' }),
    });
    followers.push(f);
    return { follower: f, engine };
  }

  it('follows every decision as soon as it is made, by long poll', async () => {
    feed.apply({ activeRegion: 'us-east', epoch: 0, at: 1000, eventId: null });
    const { follower: f, engine } = follower();
    await f.start();
    await eventually(
      async () => engine.state.active?.epoch === 0 && f.health().status === 'pass',
      'epoch 0 served and confirmed',
    );
    await eventually(async () => feed.waiting === 1, 'the follower waiting for the next decision');

    feed.apply({ activeRegion: 'us-west', epoch: 1, at: 2000, eventId: 'e1' });
    await eventually(async () => engine.state.active?.region === 'us-west', 'us-west served');
    expect(engine.state.active).toEqual({ region: 'us-west', address: '127.0.0.12', epoch: 1 });
    expect(f.status()).toMatchObject({ controller: 'connected', confirmed: true, restored: false });
    expect(f.status().nodes).toMatchObject([
      { name: 'control', link: 'connected', lastError: null, epoch: 1 },
    ]);
  });

  async function keep(decision: { region: string; address: string; epoch: number }): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, 'ns-test.decision.json'),
      JSON.stringify({ version: 1, decision: { ...decision, decidedAt: 1000 } }),
    );
  }

  it('ignores a decision older than the one it serves, keeps serving, and says no node confirms it', async () => {
    await keep({ region: 'us-west', address: '127.0.0.12', epoch: 5 });
    feed.apply({ activeRegion: 'us-east', epoch: 2, at: 2000, eventId: 'old' });
    const { follower: f, engine } = follower();
    await f.start();
    expect(engine.state.active).toMatchObject({ region: 'us-west', epoch: 5 });
    await eventually(async () => f.status().nodes[0]?.epoch === 2, 'the older answer seen');
    // Behind, not wrong: no error, and the node is long-polled for its next decision.
    await eventually(async () => feed.waiting === 1, 'the follower waiting for the node’s next decision');
    expect(f.status()).toMatchObject({ controller: 'connected', confirmed: false, restored: true });
    expect(f.status().nodes[0]).toMatchObject({ link: 'connected', lastError: null, epoch: 2 });
    const health = f.health();
    expect(health.status).toBe('warn');
    expect(health.checks['control:reachability']?.[0]?.output).toMatch(
      /no control node confirms .*answers us-east@2, older than the served us-west@5 \(ignored\).*restored from disk/,
    );
    expect(engine.state.active).toMatchObject({ region: 'us-west', epoch: 5 });
  });

  it('refuses a decision naming another region at the epoch it serves, keeps serving, and says why', async () => {
    await keep({ region: 'us-west', address: '127.0.0.12', epoch: 5 });
    feed.apply({ activeRegion: 'us-east', epoch: 5, at: 2000, eventId: 'split' });
    const { follower: f, engine } = follower();
    await f.start();
    await eventually(async () => f.status().nodes[0]?.lastError != null, 'the refusal recorded');
    const health = f.health();
    expect(health.status).toBe('warn');
    expect(health.checks['control:reachability']?.[0]?.output).toMatch(
      /answers, but: .*us-east@5 conflicts with the served us-west@5; refused by fencing/,
    );
    expect(engine.state.active).toMatchObject({ region: 'us-west', epoch: 5 });
  });

  it('reports a refused token, and fails its health while it has nothing to serve', async () => {
    feed.apply({ activeRegion: 'us-east', epoch: 0, at: 1000, eventId: null });
    const { follower: f, engine } = follower({ token: 'not-a-token' });
    await f.start();
    await eventually(async () => f.status().nodes[0]?.lastError != null, 'the refusal recorded');
    expect(f.status().nodes[0]?.lastError).toBe('HTTP 401 IOTDR_AUTH_INVALID_TOKEN');
    const health = f.health();
    expect(health.status).toBe('fail');
    expect(health.checks['dns:answers']?.[0]).toMatchObject({ status: 'fail', observedValue: null });
    expect(engine.state.active).toBeUndefined();
  });

  it('ignores a kept decision it cannot parse, and takes the controller’s', async () => {
    await writeFile(join(dir, 'ns-test.decision.json'), '{"version":1,"decision":{"region":"US EAST"}}');
    feed.apply({ activeRegion: 'us-east', epoch: 3, at: 1000, eventId: 'e3' });
    const { follower: f, engine } = follower();
    await f.start();
    expect(engine.state.active).toBeUndefined();
    await eventually(async () => engine.state.active?.epoch === 3, 'epoch 3 served');
  });

  it('answers 400 to a bad long-poll query and 503 before any decision', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const none = await fetch(`${controlUrl}/v1/failover/decision`, { headers: auth });
    expect(none.status).toBe(503);
    expect(await none.json()).toMatchObject({ code: 'IOTDR_FAILOVER_NO_DECISION' });
    const bad = await fetch(`${controlUrl}/v1/failover/decision?after=-1&wait=999999`, { headers: auth });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
  });
});

describe('DnsFollower with several control nodes', () => {
  interface FakeNode {
    name: string;
    url: string;
    feed: DecisionFeed;
    app: FastifyInstance;
    closed: boolean;
    /** Decision requests it has received. */
    requests: number;
  }
  let dir: string;
  let nodes: FakeNode[];
  let metrics: Registry;
  const followers: DnsFollower[] = [];

  /** A stand-in for one control node: its own decision feed behind the real decision route. */
  async function node(name: string): Promise<FakeNode> {
    const feed = new DecisionFeed((region) => ADDRESSES[region] ?? '');
    const app = await buildApi({
      openapi: { title: `control node ${name}`, description: 'under test' },
      tokens: staticTokens([{ token: TOKEN, name: 'dns', role: 'reader' }]),
      logger: createLogger({ level: 'silent' }),
      routes: [
        async (api) => {
          // In the routes' own context: a hook registered beside them would not see their requests.
          api.addHook('onRequest', async () => {
            fake.requests += 1;
          });
          await decisionRoutes(feed)(api);
        },
      ],
    });
    const fake: FakeNode = { name, url: '', feed, app, closed: false, requests: 0 };
    fake.url = await app.listen({ host: '127.0.0.1', port: 0 });
    return fake;
  }

  async function goAway(n: FakeNode): Promise<void> {
    n.closed = true;
    await n.app.close();
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'iotdr-follower-nodes-'));
    nodes = [await node('ctl-a'), await node('ctl-b')];
    metrics = new Registry();
  });

  afterEach(async () => {
    for (const f of followers.splice(0)) await f.stop();
    for (const n of nodes) if (!n.closed) await n.app.close();
    await rm(dir, { recursive: true, force: true });
  });

  function follower(): { follower: DnsFollower; engine: DnsEngine } {
    const engine = new DnsEngine({
      state: { zone: 'iot.test', nameservers: [{ name: 'ns', address: '127.0.0.10' }] },
    });
    const f = new DnsFollower({
      name: 'ns-test',
      controls: nodes.map((n) => ({ name: n.name, url: n.url })),
      token: TOKEN,
      provider: new BuiltinDnsProvider({ engines: [engine] }),
      statePath: join(dir, 'ns-test.decision.json'),
      waitMs: 500,
      retry: { baseMs: 20, capMs: 100 },
      metrics,
      logger: createLogger({ level: 'silent' }),
    });
    followers.push(f);
    return { follower: f, engine };
  }

  async function gauge(name: string, node?: string): Promise<number | undefined> {
    const metric = (await metrics.getMetricsAsJSON()).find((m) => m.name === name);
    return metric?.values.find((v) => node === undefined || v.labels.node === node)?.value;
  }

  const [a, b] = [0, 1];
  const at = (i: number) => nodes[i] as FakeNode;

  /** ctl-a answers us-east@0, ctl-b us-west@2: the follower serves us-west@2. */
  async function split(): Promise<{ follower: DnsFollower; engine: DnsEngine }> {
    at(a).feed.apply({ activeRegion: 'us-east', epoch: 0, at: 1000, eventId: null });
    at(b).feed.apply({ activeRegion: 'us-west', epoch: 2, at: 3000, eventId: 'e2' });
    const started = follower();
    await started.follower.start();
    await eventually(
      async () => started.engine.state.active?.epoch === 2 && started.follower.status().nodes[a]?.epoch === 0,
      'us-west@2 served, ctl-a’s us-east@0 seen',
    );
    return started;
  }

  it('serves the highest epoch the nodes answer, and long-polls a node that is behind', async () => {
    const { follower: f, engine } = await split();
    expect(engine.state.active).toEqual({ region: 'us-west', address: '127.0.0.12', epoch: 2 });
    // Each node waits for its own next decision: the one behind is not asked again and again.
    // While ctl-b's long poll runs out once and is asked again, ctl-a is asked at most once more.
    await eventually(
      async () => at(a).feed.waiting === 1 && at(b).feed.waiting === 1,
      'both nodes long-polled',
    );
    const cycle = async () => {
      const before = at(b).requests;
      await eventually(async () => at(b).requests > before, 'ctl-b asked again after its wait');
    };
    await cycle();
    const asked = at(a).requests;
    await cycle();
    expect(at(a).requests - asked).toBeLessThanOrEqual(2);
    expect(f.status()).toMatchObject({ controller: 'connected', confirmed: true });
    expect(f.status().nodes).toMatchObject([
      { name: 'ctl-a', url: at(a).url, link: 'connected', lastError: null, epoch: 0 },
      { name: 'ctl-b', url: at(b).url, link: 'connected', lastError: null, epoch: 2 },
    ]);
    const health = f.health();
    expect(health.status).toBe('pass');
    expect(health.checks['control-node:reachability']).toMatchObject([
      { componentId: 'ctl-a', status: 'warn' },
      { componentId: 'ctl-b', status: 'pass' },
    ]);
    expect(health.checks['control-node:reachability']?.[0]?.output).toMatch(
      /answers us-east@0, older than the served us-west@2 \(ignored\)/,
    );
    expect(await gauge('iotdr_dns_follower_node_epoch', 'ctl-a')).toBe(0);
    expect(await gauge('iotdr_dns_follower_node_epoch', 'ctl-b')).toBe(2);
    expect(await gauge('iotdr_dns_follower_epoch')).toBe(2);

    // A newer decision from the node that was behind is served at once.
    at(a).feed.apply({ activeRegion: 'us-east', epoch: 3, at: 4000, eventId: 'e3' });
    await eventually(async () => engine.state.active?.epoch === 3, 'us-east@3 served');
    expect(engine.state.active?.region).toBe('us-east');
  });

  it('keeps the higher epoch when its node goes away, and never takes a lower one from another', async () => {
    const { follower: f, engine } = await split();
    const applied = await gauge('iotdr_dns_follower_decisions_total');
    await goAway(at(b));
    await eventually(async () => f.status().nodes[b]?.link === 'unreachable', 'ctl-b unreachable');
    // ctl-a moves on, but stays below what is served.
    at(a).feed.apply({ activeRegion: 'us-east', epoch: 1, at: 4000, eventId: 'e1' });
    await eventually(async () => f.status().nodes[a]?.epoch === 1, 'ctl-a’s us-east@1 seen');
    expect(engine.state.active).toEqual({ region: 'us-west', address: '127.0.0.12', epoch: 2 });
    expect(f.status()).toMatchObject({ controller: 'connected', confirmed: false, serving: { epoch: 2 } });
    expect(f.status().nodes[a]).toMatchObject({ link: 'connected', lastError: null });
    expect(await gauge('iotdr_dns_follower_connected')).toBe(1);
    expect(await gauge('iotdr_dns_follower_node_connected', 'ctl-a')).toBe(1);
    expect(await gauge('iotdr_dns_follower_node_connected', 'ctl-b')).toBe(0);
    expect(await gauge('iotdr_dns_follower_decisions_total')).toBe(applied);
    const health = f.health();
    expect(health.status).toBe('warn');
    expect(health.checks['control:reachability']?.[0]?.output).toMatch(
      /no control node confirms .*ctl-a .*answers us-east@1, older than the served us-west@2 \(ignored\); ctl-b .*is unreachable since .*serving the last decision: us-west \(127\.0\.0\.12\) at epoch 2/,
    );
  });

  it('keeps serving when every node goes away, and its health says each is unreachable', async () => {
    const { follower: f, engine } = await split();
    await goAway(at(a));
    await goAway(at(b));
    await eventually(async () => f.status().controller === 'unreachable', 'no node answers');
    expect(engine.state.active).toEqual({ region: 'us-west', address: '127.0.0.12', epoch: 2 });
    expect(f.status().nodes.map((n) => n.link)).toEqual(['unreachable', 'unreachable']);
    expect(f.status().nodes.map((n) => n.epoch)).toEqual([0, 2]);
    const health = f.health();
    expect(health.status).toBe('warn');
    expect(health.checks['control:reachability']?.[0]?.output).toMatch(
      /^the control plane is unreachable since .*serving the last decision: us-west/,
    );
    const perNode = health.checks['control-node:reachability'] ?? [];
    expect(perNode.map((c) => [c.componentId, c.status])).toEqual([
      ['ctl-a', 'warn'],
      ['ctl-b', 'warn'],
    ]);
    for (const check of perNode)
      expect(check.output).toMatch(/^http:\/\/127\.0\.0\.1:\d+ is unreachable since /);
    expect(await gauge('iotdr_dns_follower_connected')).toBe(0);
    expect(await gauge('iotdr_dns_follower_node_connected', 'ctl-a')).toBe(0);
    expect(await gauge('iotdr_dns_follower_node_connected', 'ctl-b')).toBe(0);
  });
});
