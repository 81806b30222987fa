import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import {
  type AnalyticsQueries,
  type AnalyticsStore,
  analyticsHosts,
  analyticsMetrics,
  analyticsRoutes,
  ControlMirror,
  dashboardRoutes,
  JetStreamBusSource,
  RegionIngestor,
  SqliteAnalyticsStore,
} from '../analytics/index.js';
import { baseUrl, Closers, createLogger, type Logger } from '../common/index.js';
import {
  adminTokenPath,
  analyticsTokenPath,
  apiUrlOf,
  controlNodesAt,
  ensureStateDir,
  type IotdrConfig,
} from '../config/index.js';
import { ControlClient } from '../failover/index.js';
import { buildApi, staticTokens } from '../http/index.js';
import type { SiteId } from '../pki/index.js';
import { controlSiteOf } from './control.js';
import { ANALYTICS_SITE, loadOrCreateAdminToken, loadOrCreateToken } from './region.js';
import { natsLinkOf, siteLinks } from './sites.js';
import { RegionTokens } from './tokens.js';

export interface AnalyticsOptions {
  config: IotdrConfig;
  stateDir: string;
  logger?: Logger;
  /** Overrides `analytics.address`/`analytics.port` (tests listen on port 0). */
  listen?: { host: string; port: number };
  /**
   * One control node's URL to call instead of every configured node (tests listening on port 0);
   * it is known by the site of the configured node at that URL, or of the only one. Default: every
   * node of the configuration (`controlNodesOf`).
   */
  controlUrl?: string;
  /** Each region's API base URL by name; default from the configuration (`apiUrlOf`). */
  regionUrls?: Record<string, string>;
  /** More routes on the same server (the dashboard), given the queries. */
  extraRoutes?: (queries: AnalyticsQueries) => Array<(app: FastifyInstance) => Promise<void>>;
  /** Tuning of the ingestors, mostly for tests: long-poll wait and retry delays, in ms. */
  ingest?: { waitMs?: number; retryBaseMs?: number; retryMaxMs?: number };
  /** Poll interval of the decision-log mirror, in ms. Default 500. */
  mirrorIntervalMs?: number;
  /** Serve the dashboard (docs/dashboard.md) at `/`. Default true. */
  dashboard?: boolean;
  /** Accept fault injection (stopping a region's ingestion; `--enable-faults`, the drill). Default false. */
  faults?: boolean;
}

export interface RunningAnalytics {
  /** Base URL of the analytics API, e.g. http://127.0.0.10:8081. */
  url: string;
  queries: AnalyticsQueries;
  /** One per configured region, in configuration order. */
  ingestors: readonly RegionIngestor[];
  mirror: ControlMirror;
  store: AnalyticsStore;
  stop(): Promise<void>;
}

/** The analytics database: `<state>/analytics/analytics.db`. */
export function analyticsDbPath(stateDir: string): string {
  return join(stateDir, 'analytics', 'analytics.db');
}

/**
 * Composition root of `iotdr analytics`: the store, one ingestor per region's bus, the mirror of
 * the controller's decision log, and the HTTP API (plus the dashboard's routes via `extraRoutes`).
 */
export async function startAnalytics(options: AnalyticsOptions): Promise<RunningAnalytics> {
  const { config, stateDir } = options;
  const a = config.analytics;
  const logger = options.logger ?? createLogger({ level: config.logging.level, name: 'analytics' });
  await ensureStateDir(stateDir);
  const adminToken = await loadOrCreateAdminToken(stateDir);
  const listen = options.listen ?? { host: a.address, port: a.port };
  const links = await siteLinks(
    config,
    stateDir,
    { kind: 'analytics', name: ANALYTICS_SITE },
    {
      addresses: [a.address, listen.host],
    },
  );
  // Over mutual TLS regions and control know analytics by its site certificate. On the plain
  // loopback switch it reads with the analytics token, the same file every region and control
  // ensure at start: whoever starts first makes it.
  const token =
    links.tls === undefined ? await loadOrCreateToken(stateDir, analyticsTokenPath(stateDir)) : undefined;
  const credentialsFor = (peer: SiteId) => {
    const agent = links.agentFor(peer);
    return agent === undefined ? { token } : { agent };
  };
  const controlNodes = controlNodesAt(config, options.controlUrl);
  // Reads of control go to whichever node answers, each node checked as its own site.
  const control = new ControlClient(
    controlNodes.map((node) => {
      const { agent } = credentialsFor(controlSiteOf(node.name));
      return { name: node.name, url: node.url, ...(agent === undefined ? {} : { trust: agent }) };
    }),
    token,
  );
  const closers = new Closers(logger);
  closers.add(async () => links.close());
  try {
    const store = await SqliteAnalyticsStore.open({
      path: analyticsDbPath(stateDir),
      sequenceField: a.sequenceField,
      retentionSeconds: a.retentionSeconds,
    });
    closers.add(() => store.close());
    const metrics = new Registry();
    const ingestors: RegionIngestor[] = [];
    const ingestMetrics = analyticsMetrics(metrics, () => ingestors.map((i) => i.status()));
    for (const region of config.regions) {
      // A region on JetStream is read from its stream with a durable consumer; otherwise over
      // the region's long poll.
      const source =
        config.events.engine === 'jetstream' && region.nats !== undefined
          ? {
              source: new JetStreamBusSource({
                region: region.name,
                nats: natsLinkOf(config, region, links.tls, 'analytics'),
                ...(options.ingest?.waitMs === undefined ? {} : { waitMs: options.ingest.waitMs }),
                logger: logger.child({ component: 'ingest', region: region.name }),
              }),
            }
          : {
              url: options.regionUrls?.[region.name] ?? apiUrlOf(config, region),
              ...credentialsFor({ kind: 'region', name: region.name }),
              ...(options.ingest?.waitMs === undefined ? {} : { waitMs: options.ingest.waitMs }),
            };
      ingestors.push(
        new RegionIngestor({
          region: region.name,
          ...source,
          store,
          maxLagMs: a.maxLagMs,
          ...(options.ingest?.retryBaseMs === undefined ? {} : { retryBaseMs: options.ingest.retryBaseMs }),
          ...(options.ingest?.retryMaxMs === undefined ? {} : { retryMaxMs: options.ingest.retryMaxMs }),
          logger: logger.child({ component: 'ingest', region: region.name }),
          metrics: ingestMetrics,
        }),
      );
    }
    for (const ingestor of ingestors) {
      await ingestor.start();
      closers.add(() => ingestor.close());
    }
    const mirror = new ControlMirror({
      control,
      store,
      ...(options.mirrorIntervalMs === undefined ? {} : { intervalMs: options.mirrorIntervalMs }),
      logger: logger.child({ component: 'control-mirror' }),
    });
    await mirror.start();
    closers.add(() => mirror.close());
    const queries: AnalyticsQueries = {
      rates: (o) => store.rates(o),
      devices: (o) => store.devices(o),
      device: (thing) => store.device(thing),
      totals: () => store.totals(),
      timeline: (o) => store.timeline(o),
      ingest: () => ingestors.map((i) => i.status()),
    };
    const app = await buildApi({
      openapi: {
        title: 'iotdr analytics API',
        description: "Every region's events counted once, the fleet's inventory and the dashboard.",
      },
      // People's tokens as the regions know them; the admin token's file when no region answers.
      tokens: new RegionTokens({
        regions: [...config.regions]
          .sort((x, y) => x.priority - y.priority)
          .map((r) => ({ name: r.name, url: options.regionUrls?.[r.name] ?? apiUrlOf(config, r) })),
        ...(links.tls === undefined ? {} : { caPem: links.tls.caPem }),
        fallback: staticTokens([{ token: adminToken, name: 'admin', role: 'admin' }]),
      }),
      ...(links.tls === undefined ? {} : { site: links.tls }),
      logger,
      routes: [
        analyticsRoutes({
          queries,
          ingestors,
          mirror: () => mirror.status(),
          faults: options.faults === true,
          allowedHosts: analyticsHosts(a),
        }),
        ...(options.dashboard === false
          ? []
          : [
              dashboardRoutes({
                queries,
                config,
                access: (region) => credentialsFor({ kind: 'region', name: region }),
                control,
                // A routing control carries the operator's token; analytics' certificate stays home.
                forwardTo: new ControlClient(
                  controlNodes.map((node) => ({
                    name: node.name,
                    url: node.url,
                    ...(links.tls === undefined ? {} : { trust: links.tls.caPem }),
                  })),
                ),
                allowedHosts: analyticsHosts(a),
                regionUrls: Object.fromEntries(
                  config.regions.map((r) => [r.name, options.regionUrls?.[r.name] ?? apiUrlOf(config, r)]),
                ),
                logger: logger.child({ component: 'dashboard' }),
              }),
            ]),
        ...(options.extraRoutes?.(queries) ?? []),
      ],
      metrics,
      bodyLimit: config.api.bodyLimit,
    });
    closers.add(() => app.close());
    await app.listen({ host: listen.host, port: listen.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : listen.port;
    const url = baseUrl(listen.host, port, links.tls === undefined ? 'http' : 'https');
    logger.info({ url, adminToken: adminTokenPath(stateDir) }, 'analytics serving');
    return { url, queries, ingestors, mirror, store, stop: () => closers.close() };
  } catch (error) {
    await closers.close();
    throw error;
  }
}
