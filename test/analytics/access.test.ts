/**
 * Who may read analytics, from where: the query API and the dashboard on one real server over a
 * real SQLite store. Fleet data needs a reader token; the page, its assets and a region's ingestion
 * health stay open (the health saying no more than pass or fail); a Host that does not name
 * analytics is refused before anything is read (DNS rebinding); one token holds a bounded number
 * of live-view streams, and a client without a token holds none.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AnalyticsQueries,
  analyticsHosts,
  analyticsRoutes,
  dashboardRoutes,
  hostAllowed,
  type IngestControl,
  type IngestStatus,
  SqliteAnalyticsStore,
} from '../../src/analytics/index.js';
import { createLogger, waitUntil } from '../../src/common/index.js';
import { parseConfig } from '../../src/config/index.js';
import { ControlClient } from '../../src/failover/index.js';
import { buildApi, staticTokens } from '../../src/http/index.js';
import { fetch } from '../harness/https.js';
import { freePort } from '../harness/process.js';

const config = parseConfig({
  logging: { level: 'silent' },
  regions: [{ name: 'us-east', priority: 1, address: '127.0.0.51' }],
  analytics: { allowedHosts: ['dashboard.example.net'] },
});
const TOKENS = {
  admin: 'admin-secret',
  reader: 'reader-secret',
  other: 'other-reader',
  replicator: 'repl-secret',
};
const logger = createLogger({ level: 'silent' });

/** A region whose bus cannot be read: its error names an address. */
const unreachable: IngestControl = {
  region: 'us-east',
  status: (): IngestStatus => ({
    region: 'us-east',
    state: { type: 'unreachable', since: 1, error: 'connect ECONNREFUSED 10.20.30.40:8080' },
    nextOffset: 1,
    lastOffset: null,
    lagEvents: null,
    lagMs: null,
    lastContactAt: null,
    read: 0,
    duplicates: 0,
    healthy: false,
  }),
  stop: () => unreachable.status(),
  resume: () => unreachable.status(),
};

let dir: string;
let store: SqliteAnalyticsStore;
let app: FastifyInstance;
let port: number;

interface Answer {
  status: number;
  type: string;
  body: any;
}

/** GET over node:http, which sends the Host given (fetch does not let a caller set it). */
function get(path: string, options: { token?: string; host?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        headers: {
          host: options.host ?? `127.0.0.1:${port}`,
          ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => {
          const type = res.headers['content-type'] ?? '';
          resolve({ status: res.statusCode ?? 0, type, body: /json/.test(type) ? JSON.parse(text) : text });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Opens GET /v1/live; resolves with the status once the answer's head arrived (open streams stay open). */
async function live(token?: string): Promise<{ status: number; code?: string; close(): void }> {
  const abort = new AbortController();
  const res = await fetch(`http://127.0.0.1:${port}/v1/live`, {
    signal: abort.signal,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  const code = res.status === 200 ? undefined : ((await res.json()) as { code?: string }).code;
  return { status: res.status, ...(code === undefined ? {} : { code }), close: () => abort.abort() };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'iotdr-access-'));
  store = await SqliteAnalyticsStore.open({ path: join(dir, 'analytics.db'), retentionSeconds: 0 });
  const queries: AnalyticsQueries = {
    rates: (o) => store.rates(o),
    devices: (o) => store.devices(o),
    device: (t) => store.device(t),
    totals: () => store.totals(),
    timeline: (o) => store.timeline(o),
    ingest: () => [unreachable.status()],
  };
  // Nothing listens here: control and the region are unreachable for the live view.
  const dead = `http://127.0.0.1:${await freePort()}`;
  const allowedHosts = analyticsHosts(config.analytics);
  app = await buildApi({
    openapi: { title: 'analytics', description: 'access under test' },
    tokens: staticTokens([
      { token: TOKENS.admin, name: 'admin', role: 'admin' },
      { token: TOKENS.reader, name: 'analytics', role: 'reader' },
      { token: TOKENS.other, name: 'console', role: 'reader' },
      { token: TOKENS.replicator, name: 'replicator', role: 'replicator' },
    ]),
    logger,
    routes: [
      analyticsRoutes({ queries, ingestors: [unreachable], allowedHosts }),
      dashboardRoutes({
        queries,
        config,
        access: () => ({ token: 'reader-token' }),
        control: new ControlClient([{ name: 'control', url: dead }], 'reader-token'),
        forwardTo: new ControlClient([{ name: 'control', url: dead }]),
        regionUrls: { 'us-east': dead },
        logger,
        maxClients: 3,
        maxClientsPerToken: 2,
        allowedHosts,
        requestTimeoutMs: 500,
      }),
    ],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

const FLEET_READS = [
  '/v1/ingest',
  '/v1/rates',
  '/v1/devices',
  '/v1/devices/sensor-1',
  '/v1/totals',
  '/v1/timeline',
  '/v1/health-history',
];

describe('analytics reads', () => {
  it('need a token of the reader role or above for everything that shows the fleet', async () => {
    for (const path of FLEET_READS) {
      const none = await get(path);
      expect(none.status, path).toBe(401);
      expect(none.type, path).toMatch(/^application\/problem\+json/);
      expect(none.body.code, path).toBe('IOTDR_AUTH_REQUIRED');
      expect((await get(path, { token: 'not-a-token' })).body.code, path).toBe('IOTDR_AUTH_INVALID_TOKEN');
      expect((await get(path, { token: TOKENS.replicator })).status, path).toBe(403);
      for (const token of [TOKENS.reader, TOKENS.admin]) {
        const res = await get(path, { token });
        // sensor-1 never sent anything: 404 is the answer to a reader allowed to ask.
        expect(res.status, path).toBe(path === '/v1/devices/sensor-1' ? 404 : 200);
      }
    }
    const ingest = await get('/v1/ingest', { token: TOKENS.reader });
    expect(ingest.body.items[0].state.error).toContain('10.20.30.40');
  });

  it('leave open the page, its assets, /livez and a region health that tells no error', async () => {
    for (const path of ['/', '/assets/app.js', '/livez']) expect((await get(path)).status, path).toBe(200);
    const health = await get('/v1/ingest/us-east/health');
    expect(health.status).toBe(503);
    expect(health.type).toContain('application/health+json');
    expect(health.body).toMatchObject({ status: 'fail', state: { type: 'unreachable' } });
    expect(JSON.stringify(health.body)).not.toContain('10.20.30.40');
  });
});

describe('the Host check', () => {
  it('answers a name analytics does not answer to with 421, token or not, before anything is read', async () => {
    for (const [path, token] of [
      ['/', undefined],
      ['/assets/app.js', undefined],
      ['/v1/ingest/us-east/health', undefined],
      ['/v1/totals', TOKENS.reader],
      ['/v1/live', TOKENS.reader],
    ] as const) {
      const res = await get(path, { host: `rebound.attacker.example:${port}`, ...(token ? { token } : {}) });
      expect(res.status, path).toBe(421);
      expect(res.type, path).toMatch(/^application\/problem\+json/);
      expect(res.body.code, path).toBe('IOTDR_ANALYTICS_HOST_NOT_ALLOWED');
    }
    // An HTTP/1.0 request may leave Host out: refused too.
    expect(hostAllowed(undefined, '127.0.0.1', [])).toBe(false);
  });

  it('answers the address it listens on, localhost on loopback, and the configured names', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', 'dashboard.example.net'])
      expect((await get('/v1/totals', { host, token: TOKENS.reader })).status, host).toBe(200);
    // Another loopback address than the one it listens on is another server.
    expect((await get('/v1/totals', { host: '127.0.0.51', token: TOKENS.reader })).status).toBe(421);
    // analytics.address (127.0.0.10 by default) is one of them too, wherever the request came in.
    expect(analyticsHosts(config.analytics)).toEqual(['127.0.0.10', 'dashboard.example.net']);
    expect(hostAllowed('127.0.0.10:8081', '10.0.0.5', analyticsHosts(config.analytics))).toBe(true);
    expect(hostAllowed('[::1]:8081', '::1', [])).toBe(true);
    expect(hostAllowed('localhost', '::ffff:127.0.0.1', [])).toBe(true);
    expect(hostAllowed('localhost', '10.0.0.5', [])).toBe(false);
    expect(hostAllowed('127.0.0.2', '127.0.0.1', [])).toBe(false);
  });
});

describe('live-view slots', () => {
  it('go to tokens only, at most two per token here, and three in all', async () => {
    // Without a token: refused, and no slot taken.
    for (let i = 0; i < 5; i++) expect((await live()).status).toBe(401);
    const mine = [await live(TOKENS.reader), await live(TOKENS.reader)];
    expect(mine.map((s) => s.status)).toEqual([200, 200]);
    const third = await live(TOKENS.reader);
    expect(third).toMatchObject({ status: 429, code: 'IOTDR_DASHBOARD_TOO_MANY_STREAMS' });
    const other = await live(TOKENS.other);
    expect(other.status).toBe(200);
    expect(await live(TOKENS.admin)).toMatchObject({ status: 503, code: 'IOTDR_DASHBOARD_TOO_MANY_CLIENTS' });
    // One stream of the first token closes: that token may open one again.
    mine[0]?.close();
    await waitUntil(
      async () => {
        const again = await live(TOKENS.reader);
        again.close();
        return again.status === 200;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'a free slot for the first token' },
    );
    mine[1]?.close();
    other.close();
  });
});
