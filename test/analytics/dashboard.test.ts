/**
 * The dashboard of `iotdr analytics` over two real regions, a real controller and real analytics:
 * its HTTP routes (page, assets, live stream, routing controls), then the page itself in real
 * headless Chromium — regions, a moving rate chart, and a manual failover clicked on the page.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import type { Agent } from 'node:https';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { MqttClient } from 'mqtt';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardRoutes, type LiveSnapshot } from '../../src/analytics/dashboard/index.js';
import type { AnalyticsQueries } from '../../src/analytics/index.js';
import { createLogger } from '../../src/common/index.js';
import { caCertPath } from '../../src/config/index.js';
import { ControlClient } from '../../src/failover/index.js';
import { buildApi, staticTokens } from '../../src/http/index.js';
import type { SiteId } from '../../src/pki/index.js';
import {
  type RunningAnalytics,
  type RunningControl,
  startAnalytics,
  startControl,
} from '../../src/processes/index.js';
import { chromiumSkipReason, launchChromium } from '../harness/browser.js';
import { type Cluster, type ClusterRegion, eventually, startCluster } from '../harness/cluster.js';
import { connect, provision } from '../harness/devices.js';
import { fetch } from '../harness/https.js';
import { freePort } from '../harness/process.js';
import { siteAgentOf } from '../harness/region.js';

const EAST = '127.0.0.41';
const WEST = '127.0.0.42';
const CHROMIUM_SKIP = chromiumSkipReason();
if (CHROMIUM_SKIP) console.warn(`dashboard browser test skipped: ${CHROMIUM_SKIP}`);
const SCREENSHOTS = join(process.cwd(), 'test-results', 'dashboard');
const logger = createLogger({ level: 'silent' });

let cluster: Cluster;
let control: RunningControl;
let analytics: RunningAnalytics;
let device: MqttClient | undefined;
let publisher: NodeJS.Timeout | undefined;
let regionUrls: Record<string, string>;
let caPem: string;
/** The agents the test's dashboard routes read control and each region with, as analytics' site. */
let agents: Map<string, Agent>;
/** A reader token of a dashboard the test serves itself (control and the regions never see it). */
const VIEWER_TOKEN = 'viewer-secret';
const ANALYTICS: SiteId = { kind: 'analytics', name: 'analytics' };

/** How the test's dashboard routes read a peer: with analytics' site certificate, as analytics does. */
function access(peer: string): { agent: Agent } {
  const agent = agents.get(peer);
  if (agent === undefined) throw new Error(`no agent for ${peer}`);
  return { agent };
}

/**
 * The control nodes of the test's dashboard routes at `urls`: read with analytics' agent for the
 * real control, and sent routing controls to with the CA only, as analytics does.
 */
function controlAt(...urls: string[]): { control: ControlClient; forwardTo: ControlClient } {
  const nodes = urls.map((url, i) => ({ name: `node-${i + 1}`, url }));
  return {
    control: new ControlClient(nodes.map((n) => ({ ...n, trust: access('control').agent }))),
    forwardTo: new ControlClient(nodes.map((n) => ({ ...n, trust: caPem }))),
  };
}

/** Reads GET /v1/live until a snapshot satisfies `until`; answers it and closes the stream. */
async function snapshotWhere(
  baseUrl: string,
  until: (s: LiveSnapshot) => boolean = () => true,
  timeoutMs = 15_000,
  token = cluster.adminToken,
): Promise<{ snapshot: LiveSnapshot; headers: Headers; count: number; heartbeats: number }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const res = await fetch(`${baseUrl}/v1/live`, {
      signal: abort.signal,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let count = 0;
    let heartbeats = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the live stream ended');
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        const lines = block.split('\n');
        if (lines.includes(': heartbeat')) heartbeats++;
        if (!lines.includes('event: snapshot')) continue;
        count++;
        const data = lines.find((l) => l.startsWith('data: '));
        const snapshot = JSON.parse((data ?? '').slice(6)) as LiveSnapshot;
        if (until(snapshot)) return { snapshot, headers: res.headers, count, heartbeats };
      }
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

/** How far the page's content reaches past the viewport (0, 0: the main view needs no scrolling). */
function overflow(page: Page): Promise<{ height: number; width: number }> {
  // Every panel must fit too: body hides overflow, so a panel pushed out would not show in scrollWidth.
  return page.evaluate<{ height: number; width: number }>(
    `(() => {
      const boxes = [...document.querySelectorAll('header.top, .panel, .card')].map((e) => e.getBoundingClientRect());
      return {
        height: Math.max(0, document.documentElement.scrollHeight - window.innerHeight, ...boxes.map((b) => Math.ceil(b.bottom) - window.innerHeight)),
        width: Math.max(0, document.documentElement.scrollWidth - window.innerWidth, ...boxes.map((b) => Math.ceil(b.right) - window.innerWidth)),
      };
    })()`,
  );
}

async function post(url: string, body: unknown, token?: string) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { code?: string };
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: json };
}

beforeAll(async () => {
  cluster = await startCluster(
    ['us-east', 'us-west'],
    { engine: 'sqlite' },
    {
      addresses: [EAST, WEST],
      config: {
        failover: { intervalMs: 200, timeoutMs: 400, failureThreshold: 3, recoveryThreshold: 2 },
        control: { address: '127.0.0.1', port: await freePort() },
        dns: { address: '127.0.0.1', port: await freePort() },
        analytics: { address: '127.0.0.1', port: await freePort(), regionCheck: false },
        rules: [{ name: 'telemetry', topicFilter: 'devices/+/telemetry', actions: [{ type: 'bus' }] }],
      },
    },
  );
  control = await startControl({ config: cluster.config, stateDir: cluster.stateDir, logger });
  caPem = await readFile(caCertPath(cluster.stateDir), 'utf8');
  regionUrls = Object.fromEntries(Object.values(cluster.regions).map((r) => [r.name, r.url]));
  const peers: Array<[string, SiteId]> = [
    ['control', { kind: 'control', name: 'control' }],
    ...Object.keys(regionUrls).map((name): [string, SiteId] => [name, { kind: 'region', name }]),
  ];
  agents = new Map(
    await Promise.all(
      peers.map(
        async ([peer, site]): Promise<[string, Agent]> => [
          peer,
          await siteAgentOf(cluster.stateDir, ANALYTICS, site),
        ],
      ),
    ),
  );
  analytics = await startAnalytics({
    config: cluster.config,
    stateDir: cluster.stateDir,
    logger,
    listen: { host: '127.0.0.1', port: 0 },
    controlUrl: control.controlUrl,
    regionUrls,
    ingest: { waitMs: 200, retryBaseMs: 50, retryMaxMs: 200 },
    mirrorIntervalMs: 200,
    dashboard: false,
    extraRoutes: (queries: AnalyticsQueries) => [
      dashboardRoutes({
        queries,
        config: cluster.config,
        access,
        ...controlAt(control.controlUrl),
        regionUrls,
        logger,
        maxClients: 3,
        heartbeatMs: 500,
      }),
    ],
  });

  // One device publishing telemetry with sequence numbers, ten messages a second.
  const east = cluster.regions['us-east'] as ClusterRegion;
  const sensor = await provision(east, 'sensor-1');
  const client = await connect(east, sensor);
  device = client;
  let seq = 0;
  publisher = setInterval(() => {
    seq++;
    client.publish(
      'devices/sensor-1/telemetry',
      JSON.stringify({ messageId: randomUUID(), seq, temperature: 20 + (seq % 5) }),
      { qos: 1 },
    );
  }, 100);
  await eventually(
    async () => control.controller.state().mode.type === 'health',
    'the controller following health',
  );
}, 60_000);

afterAll(async () => {
  if (publisher) clearInterval(publisher);
  // The failover disconnects the device from us-east: end it without waiting for a broker.
  await device?.endAsync(true).catch(() => undefined);
  await analytics?.stop();
  for (const agent of agents?.values() ?? []) agent.destroy();
  await control?.stop();
  await cluster?.close();
});

describe('dashboard routes', () => {
  it('serves the page with a strict CSP and only whitelisted assets', async () => {
    const page = await fetch(`${analytics.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const html = await page.text();
    // No inline script: every <script> has a src on this origin.
    expect(html.match(/<script(?![^>]*\bsrc="\/assets\/)[^>]*>/g)).toBeNull();
    expect(html).not.toMatch(/https?:\/\//);

    const types: Record<string, RegExp> = {
      'app.js': /^text\/javascript/,
      'app.css': /^text\/css/,
      'uPlot.iife.min.js': /^text\/javascript/,
      'uPlot.min.css': /^text\/css/,
    };
    for (const [file, type] of Object.entries(types)) {
      const res = await fetch(`${analytics.url}/assets/${file}`);
      expect(res.status, file).toBe(200);
      expect(res.headers.get('content-type'), file).toMatch(type);
      expect(res.headers.get('cache-control'), file).toMatch(/no-cache|max-age=\d+/);
      const etag = res.headers.get('etag') ?? '';
      expect((await res.arrayBuffer()).byteLength, file).toBeGreaterThan(100);
      const again = await fetch(`${analytics.url}/assets/${file}`, { headers: { 'if-none-match': etag } });
      expect(again.status, file).toBe(304);
    }

    for (const file of ['index.html', 'package.json', '..%2Fapp.js', 'app.js.map']) {
      const res = await fetch(`${analytics.url}/assets/${file}`);
      expect(res.status, file).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(((await res.json()) as { code?: string }).code).toBe('IOTDR_DASHBOARD_ASSET_NOT_FOUND');
    }
  });

  it('streams a snapshot at once, then live ones with both regions, health and the active region', async () => {
    const first = await snapshotWhere(analytics.url);
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(first.snapshot.zone).toBe('iot.test');
    expect(first.snapshot.regions.map((r) => [r.name, r.role])).toEqual([
      ['us-east', 'primary'],
      ['us-west', 'secondary'],
    ]);

    const { snapshot } = await snapshotWhere(
      analytics.url,
      (s) =>
        s.active?.region === 'us-east' &&
        s.regions.every((r) => r.health.status === 'pass' && r.replication.length === 1) &&
        s.regions[0]?.connected === 1 &&
        (s.rates['us-east'] ?? []).some(([, m]) => m > 0),
    );
    expect(snapshot.control.reachable).toBe(true);
    expect(snapshot.active).toMatchObject({ region: 'us-east', epoch: 0, noHealthyRegion: false });
    const east = snapshot.regions[0];
    expect(east?.health.components.broker).toBe('pass');
    expect(east?.health.components.registry).toBe('pass');
    expect(east?.replication[0]).toMatchObject({ peer: 'us-west' });
    expect(east?.ingest?.region).toBe('us-east');
    expect(east?.errors).toEqual({});
    expect(snapshot.regions[1]?.connected).toBe(0);
    expect(snapshot.rates['us-east']).toHaveLength(60);
  });

  it('sends a snapshot at least every second, and heartbeats', async () => {
    const started = Date.now();
    const { count, heartbeats } = await snapshotWhere(analytics.url, (s) => s.at - started >= 2500, 10_000);
    // One at connect, then at most a second apart: 2.5 s takes at least 3 snapshots.
    expect(count).toBeGreaterThanOrEqual(3);
    // Heartbeats every 500 ms here (15 s by default).
    expect(heartbeats).toBeGreaterThanOrEqual(2);
  });

  it('refuses live clients beyond the limit with 503 and takes them again when one leaves', async () => {
    const headers = { authorization: `Bearer ${cluster.adminToken}` };
    // No token, no stream: the page and its assets are open, the fleet's data is not.
    const anonymous = await fetch(`${analytics.url}/v1/live`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { code?: string }).code).toBe('IOTDR_AUTH_REQUIRED');
    const streams = await Promise.all(
      [1, 2, 3].map(async () => {
        const abort = new AbortController();
        const res = await fetch(`${analytics.url}/v1/live`, { signal: abort.signal, headers });
        expect(res.status).toBe(200);
        return abort;
      }),
    );
    const refused = await fetch(`${analytics.url}/v1/live`, { headers });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await refused.json()) as { code?: string }).code).toBe('IOTDR_DASHBOARD_TOO_MANY_CLIENTS');
    for (const abort of streams) abort.abort();
    await eventually(async () => {
      const abort = new AbortController();
      const res = await fetch(`${analytics.url}/v1/live`, { signal: abort.signal, headers });
      abort.abort();
      return res.status === 200;
    }, 'a free live slot');
  });

  it('validates routing bodies (400) and passes control’s 401 and 403 through', async () => {
    const url = `${analytics.url}/v1/routing/failover`;
    for (const body of [
      {},
      { to: 'us-west' },
      { to: 'eu-north', reason: 'x' },
      { to: 'us-west', reason: ' ' },
    ]) {
      const res = await post(url, body, cluster.adminToken);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.type).toMatch(/^application\/problem\+json/);
      expect(res.body.code).toBe('IOTDR_VALIDATION_FAILED');
    }
    const unknownField = await post(`${analytics.url}/v1/routing/failback`, { reason: 'x', to: 'us-west' });
    expect(unknownField.status).toBe(400);

    const noToken = await post(url, { to: 'us-west', reason: 'no token' });
    expect(noToken.status).toBe(401);
    expect(noToken.type).toMatch(/^application\/problem\+json/);
    expect(noToken.body.code).toBe('IOTDR_AUTH_REQUIRED');
    // A person's reader token made in a region: control asks the region who it is, refuses it the
    // switch (admin only), and analytics passes control's answer on.
    const made = await (cluster.regions['us-east'] as ClusterRegion).call('POST', '/v1/tokens', {
      name: 'auditor',
      role: 'reader',
    });
    expect(made.status).toBe(201);
    const reader = await post(`${analytics.url}/v1/routing/failback`, { reason: 'reader' }, made.body.token);
    expect(reader.status).toBe(403);
    expect(reader.type).toMatch(/^application\/problem\+json/);
    expect(reader.body.code).toBe('IOTDR_AUTH_FORBIDDEN');
    // Nothing moved.
    expect(control.controller.state()).toMatchObject({ activeRegion: 'us-east', epoch: 0 });
  });

  /** The dashboard's routes alone on a server of the test's, over the control nodes at `controlUrls`. */
  async function serveDashboard(controlUrls: string[], run: (base: string) => Promise<void>): Promise<void> {
    const app: FastifyInstance = await buildApi({
      openapi: { title: 'the dashboard', description: 'under test' },
      tokens: staticTokens([{ token: VIEWER_TOKEN, name: 'viewer', role: 'reader' }]),
      logger,
      routes: [
        dashboardRoutes({
          queries: analytics.queries,
          config: cluster.config,
          access,
          ...controlAt(...controlUrls),
          regionUrls,
          logger,
        }),
      ],
    });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const address = app.server.address();
      await run(`http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`);
    } finally {
      await app.close();
    }
  }

  it('answers 502 when control is unreachable, and shows control as unreachable in the stream', async () => {
    const deadControl = `https://127.0.0.1:${await freePort()}`;
    await serveDashboard([deadControl], async (base) => {
      const res = await post(`${base}/v1/routing/failback`, { reason: 'control is down' }, 'any-token');
      expect(res.status).toBe(502);
      expect(res.type).toMatch(/^application\/problem\+json/);
      expect(res.body.code).toBe('IOTDR_DASHBOARD_CONTROL_UNREACHABLE');
      expect(JSON.stringify(res.body)).toContain(deadControl);
      const { snapshot } = await snapshotWhere(
        base,
        (s) => s.control.error !== undefined && s.regions.every((r) => r.health.status === 'pass'),
        15_000,
        VIEWER_TOKEN,
      );
      expect(snapshot.control.reachable).toBe(false);
      expect(snapshot.active).toBeNull();
    });
  });

  it("forwards a routing control past a control node that is down, and shows the next node's state", async () => {
    const deadControl = `https://127.0.0.1:${await freePort()}`;
    await serveDashboard([deadControl, control.controlUrl], async (base) => {
      // Control's own answer came back: us-east is active and nothing overrides it.
      const res = await post(
        `${base}/v1/routing/failback`,
        { reason: 'first node down' },
        cluster.adminToken,
      );
      expect(res.status).toBe(409);
      expect(res.body.code).toBe('IOTDR_FAILOVER_NO_FAILBACK_TARGET');
      const { snapshot } = await snapshotWhere(base, (s) => s.control.reachable, 15_000, VIEWER_TOKEN);
      expect(snapshot.active).toMatchObject({ region: 'us-east', epoch: 0 });
    });
  });
});

describe.skipIf(CHROMIUM_SKIP !== undefined)('dashboard in headless Chromium', () => {
  it('shows both regions and a moving rate chart, and a failover clicked on the page within 2 s of the decision', async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    // The browser trusts the platform's CA, as an operator who imported pki/ca.pem.
    const browser = await launchChromium({ trustCas: [caPem] });
    try {
      const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`${analytics.url}/`);

      // Nothing shows before a token is given: the page asks for one first.
      const active = page.getByTestId('active-region');
      await expect.poll(() => page.locator('#signin-dialog').isVisible()).toBe(true);
      expect(await active.textContent()).toBe('…');
      await page.getByLabel('Token', { exact: true }).fill(cluster.adminToken);
      await page.getByRole('button', { name: 'Show the dashboard' }).click();
      expect(await page.locator('#signin-dialog').isVisible()).toBe(false);

      await expect.poll(() => active.textContent(), { timeout: 10_000 }).toBe('us-east');
      expect(await page.getByTestId('epoch').textContent()).toBe('0');
      for (const name of ['us-east', 'us-west']) {
        const card = page.getByTestId(`region-${name}`);
        expect(await card.isVisible()).toBe(true);
        await expect.poll(() => page.getByTestId(`health-${name}`).textContent()).toBe('pass');
      }
      await expect.poll(() => page.getByTestId('connected-us-east').textContent()).toBe('1');
      // The main view fits a laptop screen without scrolling.
      expect(await overflow(page)).toEqual({ height: 0, width: 0 });

      // The chart draws (uPlot's canvas) and its data moves while the device publishes.
      const chart = page.getByTestId('rate-chart');
      expect(await chart.locator('canvas').count()).toBeGreaterThan(0);
      await expect
        .poll(async () => Number(await chart.getAttribute('data-total')), { timeout: 10_000 })
        .toBeGreaterThan(0);
      const before = await chart.getAttribute('data-series');
      const beforeSecond = await chart.getAttribute('data-last-second');
      await expect.poll(() => chart.getAttribute('data-series'), { timeout: 10_000 }).not.toBe(before);
      expect(Number(await chart.getAttribute('data-last-second'))).toBeGreaterThan(Number(beforeSecond));
      await page.screenshot({ path: join(SCREENSHOTS, 'live.png') });

      // A manual failover from the page: token typed, reason given, confirmation accepted.
      await page.getByRole('button', { name: 'Fail over to us-west' }).click();
      await page.getByLabel('Admin token').fill(cluster.adminToken);
      await page.getByLabel('Reason').fill('browser drill');
      await page.getByRole('button', { name: 'Continue' }).click();
      expect(await page.locator('#confirm-text').textContent()).toBe(
        'Move the fleet from us-east to us-west?',
      );
      expect(control.controller.state().activeRegion).toBe('us-east');
      await page.screenshot({ path: join(SCREENSHOTS, 'confirm.png') });
      await page.getByRole('button', { name: 'Confirm' }).click();

      await expect.poll(() => active.textContent(), { timeout: 10_000 }).toBe('us-west');
      const shownAt = Number(await active.getAttribute('data-shown-at'));
      const state = control.controller.state();
      expect(state).toMatchObject({ activeRegion: 'us-west', epoch: 1, mode: { type: 'override' } });
      expect(shownAt - state.decidedAt).toBeLessThan(2000);
      expect(await page.getByTestId('epoch').textContent()).toBe('1');
      await expect
        .poll(() => page.locator('#result-text').textContent())
        .toBe('Done: the fleet is on us-west, epoch 1.');
      // No token is kept unless the operator asked (neither the one to view nor the admin one).
      expect(await page.evaluate<number>('sessionStorage.length')).toBe(0);
      await page.getByRole('button', { name: 'Close' }).click();

      // The switch appears in the timeline with its factors.
      const row = page.locator('[data-testid^="switch-"]').first();
      await expect
        .poll(() => row.textContent(), { timeout: 10_000 })
        .toContain('us-east → us-west (epoch 1)');
      expect(await row.textContent()).toContain('manual by admin: browser drill');
      expect(await overflow(page)).toEqual({ height: 0, width: 0 });
      await page.screenshot({ path: join(SCREENSHOTS, 'after-failover.png') });
      expect(problems).toEqual([]);

      // A token analytics does not know is refused, and the page asks again.
      const other = await browser.newPage({ viewport: { width: 1366, height: 768 } });
      await other.goto(`${analytics.url}/`);
      await other.getByLabel('Token', { exact: true }).fill('not-a-token');
      await other.getByRole('button', { name: 'Show the dashboard' }).click();
      await expect
        .poll(() => other.locator('#view-error').textContent())
        .toContain('Refused (401 IOTDR_AUTH_INVALID_TOKEN)');
      expect(await other.locator('#signin-dialog').isVisible()).toBe(true);
      expect(await other.getByTestId('active-region').textContent()).toBe('…');
    } finally {
      await browser.close();
    }
  });
});
