/**
 * The checker against real regions (brokers, registries and /health in this process): critical and
 * non-critical checkpoints, extra health URLs, timeouts, a stopped broker, and the probing loop. The
 * checker calls the regions as control does, over mutual TLS with control's site certificate.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checker, type Observation } from '../../src/failover/index.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { controlAgents } from './support.js';

/** A service whose health page answers 200 or 503 as the test says, or never answers. */
async function service(): Promise<{ server: Server; url: string; set(state: 'up' | 'down' | 'hang'): void }> {
  let state: 'up' | 'down' | 'hang' = 'up';
  const server = createServer((_req, res) => {
    if (state === 'hang') return;
    res.writeHead(state === 'up' ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: state === 'up' }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`,
    set: (s) => {
      state = s;
    },
  };
}

describe('the checker against real regions', () => {
  let cluster: Cluster;
  let east: ClusterRegion;
  let west: ClusterRegion;
  let app: Awaited<ReturnType<typeof service>>;
  let analytics: Awaited<ReturnType<typeof service>>;
  let cnc: Awaited<ReturnType<typeof service>>;
  let agents: Map<string, Agent>;
  const noSink = { report: () => {} };

  beforeAll(async () => {
    app = await service();
    analytics = await service();
    cnc = await service();
    cluster = await startCluster(
      ['us-east', 'us-west'],
      { engine: 'sqlite' },
      {
        config: {
          health: {
            // Analytics is not critical in these regions: its failure only warns.
            critical: ['broker', 'registry', 'events', 'app', 'cnc'],
            // Every request runs the checkpoints: the tests probe right after changing a service.
            cacheMs: 0,
            checks: [
              { name: 'orders-app', component: 'app', url: app.url, bodyMatch: '"ok":true' },
              { name: 'reports', component: 'analytics', url: analytics.url },
            ],
          },
        },
      },
    );
    east = cluster.regions['us-east'] as ClusterRegion;
    west = cluster.regions['us-west'] as ClusterRegion;
    agents = await controlAgents(cluster.stateDir, ['us-east', 'us-west']);
  }, 60_000);

  afterAll(async () => {
    for (const agent of agents?.values() ?? []) agent.destroy();
    await cluster?.close();
    for (const s of [app, analytics, cnc]) s?.server.close();
  });

  /** A region as control's checker knows it: its API's URL and control's agent for it. */
  function checked(region: ClusterRegion) {
    return { name: region.name, url: region.url, agent: agents.get(region.name) as Agent };
  }

  function checker(extra: Partial<ConstructorParameters<typeof Checker>[0]> = {}): Checker {
    return new Checker({
      id: 'control',
      regions: [checked(east), checked(west)],
      sink: noSink,
      critical: ['broker', 'app', 'cnc'],
      // These tests are about what a probe's answer means, not about its speed: a machine busy with
      // other suites may take more than the default 1 s to answer, which would be a timed-out probe.
      // The tests of the give-up time set their own.
      timeoutMs: 10_000,
      ...extra,
    });
  }

  it('passes a healthy region', async () => {
    const o = await checker().probe('us-east');
    expect(o).toMatchObject({ checker: 'control', region: 'us-east', outcome: 'pass' });
    expect(o.error).toBeUndefined();
    // Replication may still be catching up just after start: it is not critical.
    expect(o.failing.filter((f) => f.critical)).toEqual([]);
  });

  it('fails the probe when a critical component fails, not when a non-critical one does', async () => {
    analytics.set('down');
    try {
      const o = await checker().probe('us-east');
      expect(o.outcome).toBe('pass');
      expect(o.failingComponents).toContain('analytics');
      expect(o.failing.find((f) => f.component === 'analytics')).toMatchObject({
        check: 'analytics:responseTime/reports',
        critical: false,
      });
    } finally {
      analytics.set('up');
    }
    app.set('down');
    try {
      const o = await checker().probe('us-west');
      expect(o.outcome).toBe('fail');
      expect(o.failing.filter((f) => f.critical)).toEqual([
        expect.objectContaining({ component: 'app', check: 'app:responseTime/orders-app', critical: true }),
      ]);
    } finally {
      app.set('up');
    }
    expect((await checker().probe('us-west')).outcome).toBe('pass');
  });

  it('probes extra per-component health URLs, and fails on no answer within the give-up time', async () => {
    const c = checker({
      timeoutMs: 300,
      regions: [{ ...checked(east), extra: [{ name: 'cnc-api', component: 'cnc', url: cnc.url }] }],
    });
    // With the service up nothing fails; the region's own /health may answer after the short
    // timeout on a busy machine (slow, which is not a failure).
    const up = await c.probe('us-east');
    expect(up.failingComponents).not.toContain('cnc');
    expect(up.outcome).not.toBe('fail');
    cnc.set('down');
    const down = await c.probe('us-east');
    expect(down.outcome).toBe('fail');
    expect(down.failingComponents).toContain('cnc');
    expect(down.failing.find((f) => f.component === 'cnc')).toMatchObject({
      check: 'cnc-api',
      critical: true,
      output: 'answered 503, expected 200',
    });
    cnc.set('hang');
    const hung = await c.probe('us-east');
    expect(hung.outcome).toBe('fail');
    expect(hung.failing.find((f) => f.component === 'cnc')?.output).toMatch(/no answer within 900 ms/);
    cnc.set('up');
    // Extra URLs of a non-critical component warn only.
    const lenient = checker({
      regions: [
        { ...checked(east), extra: [{ name: 'cnc-api', component: 'cnc', url: cnc.url, critical: false }] },
      ],
    });
    cnc.set('down');
    expect((await lenient.probe('us-east')).outcome).toBe('pass');
    cnc.set('up');
  });

  it('reports every region every interval, and sees a stopped broker fail', async () => {
    const seen: Observation[] = [];
    const c = checker({ intervalMs: 100, sink: { report: (o) => void seen.push(...o) } });
    c.start();
    try {
      await eventually(
        async () => seen.filter((o) => o.region === 'us-west').length >= 3,
        'three probes of us-west',
      );
      expect(seen.every((o) => o.outcome === 'pass')).toBe(true);
      await east.running?.broker.close();
      await eventually(
        async () =>
          seen.some(
            (o) => o.region === 'us-east' && o.outcome === 'fail' && o.failingComponents.includes('broker'),
          ),
        'a failed probe of us-east',
      );
      const failed = seen.find((o) => o.region === 'us-east' && o.outcome === 'fail');
      expect(failed?.failing.find((f) => f.component === 'broker')?.critical).toBe(true);
      expect(seen.filter((o) => o.region === 'us-west').every((o) => o.outcome === 'pass')).toBe(true);
    } finally {
      await c.stop();
    }
    const count = seen.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.length).toBe(count);
  });

  it('fails a region whose certificate names another region', async () => {
    // The address of us-west where us-east was meant: the checker must not count its health.
    const c = new Checker({
      id: 'control',
      regions: [{ name: 'us-east', url: west.url, agent: agents.get('us-east') as Agent }],
      sink: noSink,
    });
    const o = await c.probe('us-east');
    expect(o.outcome).toBe('fail');
    expect(o.error).toMatch(/ERR_IOTDR_SITE_MISMATCH/);
  });

  it('fails a region whose API does not answer', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    const c = new Checker({
      id: 'control',
      regions: [{ name: 'us-east', url: `http://127.0.0.1:${port}` }],
      sink: noSink,
    });
    const o = await c.probe('us-east');
    expect(o.outcome).toBe('fail');
    expect(o.error).toMatch(/ECONNREFUSED/);
  });
});
