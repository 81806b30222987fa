import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client';
import { buildApi, type SiteTls } from '../../http/index.js';
import type { RegistryService } from '../service/index.js';
import { registryRoutes } from './routes.js';

export interface RegistryApiOptions {
  service: RegistryService;
  logger: Logger;
  /** Largest request body in bytes (default DEFAULT_BODY_LIMIT, 1 MiB). */
  bodyLimit?: number;
  /** The region's site certificate: HTTPS with mutual TLS for its peers (plain HTTP without). */
  site?: SiteTls;
  /** The region's Prometheus registry; other components register their metrics in it too. */
  metrics?: Registry;
  /** Routes of other components served by the same API (replication, broker, health…). */
  routes?: Array<(app: FastifyInstance) => Promise<void>>;
  /** More fields for /livez, e.g. the broker's listening URLs (asked at every request). */
  liveInfo?: () => Record<string, unknown>;
  /** Metrics of the region's other processes (broker workers), merged into /metrics at every request. */
  moreMetrics?: () => Promise<MetricObjectWithValues<MetricValue<string>>[][]>;
}

/**
 * The region's HTTP API: the registry routes, /openapi.json, /metrics and /livez. Every answer
 * that is not a success is application/problem+json.
 */
export async function buildRegistryApi(options: RegistryApiOptions): Promise<FastifyInstance> {
  const { service } = options;
  const metrics = options.metrics ?? regionMetrics(service.region);
  const more = options.moreMetrics;
  return buildApi({
    logger: options.logger,
    tokens: service,
    ...(options.site === undefined ? {} : { site: options.site }),
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    openapi: {
      title: 'iotdr region API',
      description: 'Device registry, change log and operations of one iotdr region.',
    },
    prepare: (app) => observeRequests(app, service, metrics),
    metrics:
      more === undefined
        ? metrics
        : {
            contentType: metrics.contentType,
            // One family per name: each process's series keep their own labels (a worker's carry `node`).
            metrics: async () =>
              AggregatorRegistry.aggregate([await metrics.getMetricsAsJSON(), ...(await more())]).metrics(),
          },
    live: async () => ({
      region: service.region,
      store: service.store.engine,
      lastSeq: await service.store.lastSeq(),
      ...options.liveInfo?.(),
    }),
    routes: [registryRoutes(service), ...(options.routes ?? [])],
  });
}

/** Request durations and committed changes, as metrics of the region. */
async function observeRequests(
  app: FastifyInstance,
  service: RegistryService,
  metrics: Registry,
): Promise<void> {
  const requests = new Histogram({
    name: 'iotdr_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [metrics],
  });
  const changes = new Counter({
    name: 'iotdr_registry_changes_total',
    help: 'Registry changes committed in this region, by kind and operation',
    labelNames: ['kind', 'op', 'origin'] as const,
    registers: [metrics],
  });
  const lastSeq = new Gauge({
    name: 'iotdr_registry_change_log_seq',
    help: 'Highest committed seq of the change log',
    registers: [metrics],
  });
  lastSeq.set(await service.store.lastSeq());
  const unsubscribe = service.onCommit((committed) => {
    for (const c of committed) changes.inc({ kind: c.kind, op: c.op, origin: c.origin });
    const last = committed[committed.length - 1];
    if (last) lastSeq.set(last.seq);
  });
  app.addHook('onClose', async () => unsubscribe());
  app.addHook('onResponse', async (request, reply) => {
    requests.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });
}

/** A Prometheus registry for one region, with process metrics and the region label. */
export function regionMetrics(region: string): Registry {
  const metrics = new Registry();
  metrics.setDefaultLabels({ region });
  collectDefaultMetrics({ register: metrics, prefix: 'iotdr_' });
  return metrics;
}
