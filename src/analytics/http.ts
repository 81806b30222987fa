import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type Clock, systemClock, ValidationError } from '../common/index.js';
import { FaultsDisabledError } from '../faults/index.js';
import { HEALTH_CONTENT_TYPE } from '../health/index.js';
import { ADMIN, READ, routeOf } from '../http/index.js';
import { hostCheck } from './access.js';
import { ANALYTICS_ROUTES, regionParam } from './contracts.js';
import { UnknownDeviceError, UnknownIngestRegionError } from './errors.js';
import type { MirrorStatus } from './mirror.js';
import type { AnalyticsQueries, IngestStatus } from './types.js';

/** draft-inadarei-api-health-check §3. */

/** Default and longest window of one GET /v1/rates, in ms. */
export const DEFAULT_RATES_WINDOW_MS = 60_000;
export const MAX_RATES_WINDOW_MS = 3_600_000;
/** Most devices and timeline entries per page. */
export const MAX_DEVICES_PAGE = 1000;
export const MAX_TIMELINE_PAGE = 500;

/** Stopping and resuming one region's ingestion (RegionIngestor does it). */
export interface IngestControl {
  readonly region: string;
  status(): IngestStatus;
  stop(reason: string): IngestStatus;
  resume(): IngestStatus;
}

export interface AnalyticsRoutesOptions {
  queries: AnalyticsQueries;
  /** Every region ingested, in configuration order. */
  ingestors: readonly IngestControl[];
  /** The decision-log mirror's status, shown by GET /v1/ingest. */
  mirror?: () => MirrorStatus;
  /**
   * Accept `POST /v1/ingest/:region/stop`, fault injection for the drill (`iotdr analytics
   * --enable-faults`). Default false: stopping a region's ingestion fails its analytics checkpoint
   * and can move the fleet, so it is refused (403 `IOTDR_FAULTS_DISABLED`) unless asked for.
   */
  faults?: boolean;
  /**
   * Names the server answers to besides the address a request came in on (and `localhost` on
   * loopback): `analyticsHosts(config.analytics)`, the configured address and `allowedHosts`.
   * Any other Host gets 421. Default none.
   */
  allowedHosts?: readonly string[];
  clock?: Clock;
}

const epochMs = z.coerce.number().int().nonnegative().max(8_640_000_000_000_000);
const typeName = z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, 'an event type such as switch or region-health');

/**
 * Why a region does not count as ingested, for the health answer's `output`. The answer has no
 * token to check (the regions' checkpoints call it), so it names the kind of trouble only: the
 * error and the stop reason, which name addresses and people, are in GET /v1/ingest.
 */
function whyNot(status: IngestStatus): string {
  const s = status.state;
  switch (s.type) {
    case 'starting':
      return 'not read yet since analytics started';
    case 'lagging':
      return `lagging: the oldest unread event is ${s.lagMs} ms old`;
    case 'unreachable':
      return "the region's bus cannot be read (GET /v1/ingest says why)";
    case 'stopped':
      return 'ingestion stopped (GET /v1/ingest says why)';
    case 'ingesting':
      return 'ingesting';
  }
}

/**
 * The analytics query API. What reveals the fleet (ingestion with its errors, rates, devices,
 * totals, the decision log) needs a token of the reader role or above; a region's ingestion
 * health stays open for the regions' checkpoints, and says no more than pass or fail and why in
 * a word. Stopping and resuming a region's ingestion needs the admin role. Every route refuses a
 * Host that does not name analytics (DNS rebinding).
 */
export function analyticsRoutes(options: AnalyticsRoutesOptions) {
  const { queries, ingestors } = options;
  const clock = options.clock ?? systemClock;
  const find = (region: string): IngestControl => {
    const found = ingestors.find((i) => i.region === region);
    if (!found)
      throw new UnknownIngestRegionError(
        region,
        ingestors.map((i) => i.region),
      );
    return found;
  };
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.addHook('onRequest', hostCheck(options.allowedHosts ?? []));
    app.get('/v1/ingest', {
      config: { roles: READ },
      schema: { tags: ['analytics'], description: 'Every region’s ingestion: state, offsets, lag, counts.' },
      handler: async () => ({
        items: ingestors.map((i) => i.status()),
        ...(options.mirror ? { control: options.mirror() } : {}),
      }),
    });
    app.get('/v1/ingest/:region/health', {
      schema: {
        tags: ['analytics'],
        description: `Whether the region is ingested within the lag threshold: 200 pass or 503 fail, ${HEALTH_CONTENT_TYPE}. The region's analytics checkpoint calls it.`,
        params: regionParam,
      },
      handler: async (req, reply) => {
        const status = find(req.params.region).status();
        const body = {
          status: status.healthy ? 'pass' : 'fail',
          serviceId: `analytics:${status.region}`,
          ...(status.healthy ? {} : { output: whyNot(status) }),
          state: { type: status.state.type },
          lagMs: status.lagMs,
          lagEvents: status.lagEvents,
          lastContactAt: status.lastContactAt,
        };
        return reply
          .code(status.healthy ? 200 : 503)
          .header('cache-control', 'no-store')
          .type(HEALTH_CONTENT_TYPE)
          .serializer(JSON.stringify)
          .send(body);
      },
    });
    app.route({
      ...routeOf(ANALYTICS_ROUTES.stopIngest),
      config: { roles: ADMIN },
      handler: async (req) => {
        if (options.faults !== true) throw new FaultsDisabledError('analytics');
        return find(req.params.region).stop(req.body.reason);
      },
    });
    app.route({
      ...routeOf(ANALYTICS_ROUTES.resumeIngest),
      config: { roles: ADMIN },
      handler: async (req) => find(req.params.region).resume(),
    });
    app.get('/v1/rates', {
      config: { roles: READ },
      schema: {
        tags: ['analytics'],
        description: `Messages per region and second in [from, to) (ms); default the last ${DEFAULT_RATES_WINDOW_MS / 1000} s, at most ${MAX_RATES_WINDOW_MS / 1000} s per request.`,
        querystring: z
          .object({
            from: epochMs.optional(),
            to: epochMs.optional(),
            region: z.string().min(1).max(64).optional(),
          })
          .strict(),
      },
      handler: async (req) => {
        const to =
          req.query.to ??
          (req.query.from === undefined ? clock.now() : req.query.from + DEFAULT_RATES_WINDOW_MS);
        const from = req.query.from ?? Math.max(0, to - DEFAULT_RATES_WINDOW_MS);
        if (to <= from)
          throw new ValidationError('invalid querystring: to must be after from', [
            { path: 'querystring.to', message: 'must be greater than from' },
          ]);
        if (to - from > MAX_RATES_WINDOW_MS)
          throw new ValidationError(`invalid querystring: at most ${MAX_RATES_WINDOW_MS} ms per request`, [
            { path: 'querystring.from', message: `to − from must be at most ${MAX_RATES_WINDOW_MS} ms` },
          ]);
        if (req.query.region !== undefined) find(req.query.region);
        const items = await queries.rates({
          from,
          to,
          ...(req.query.region === undefined ? {} : { region: req.query.region }),
        });
        return { from, to, items };
      },
    });
    app.get('/v1/devices', {
      config: { roles: READ },
      schema: {
        tags: ['analytics'],
        description:
          'Devices by name, paged with `after` = the answer’s `next`; `gaps=true` lists only those missing sequence numbers.',
        querystring: z
          .object({
            limit: z.coerce.number().int().min(1).max(MAX_DEVICES_PAGE).default(100),
            after: z.string().min(1).max(128).optional(),
            gaps: z.enum(['true', 'false']).optional(),
          })
          .strict(),
      },
      handler: async (req) => {
        const items = await queries.devices({
          limit: req.query.limit,
          ...(req.query.after === undefined ? {} : { after: req.query.after }),
          withGaps: req.query.gaps === 'true',
        });
        const last = items[items.length - 1];
        return items.length === req.query.limit && last ? { items, next: last.thingName } : { items };
      },
    });
    app.get('/v1/devices/:thing', {
      config: { roles: READ },
      schema: {
        tags: ['analytics'],
        description: 'One device: last seen, region, messages, sequence range and gaps.',
        params: z.object({ thing: z.string().min(1).max(128) }).strict(),
      },
      handler: async (req) => {
        const device = await queries.device(req.params.thing);
        if (!device) throw new UnknownDeviceError(req.params.thing);
        return device;
      },
    });
    app.route({
      ...routeOf(ANALYTICS_ROUTES.totals),
      config: { roles: READ },
      handler: async () => queries.totals(),
    });
    app.get('/v1/timeline', {
      config: { roles: READ },
      schema: {
        tags: ['analytics'],
        description:
          'The controller’s decision log as mirrored, oldest first; page with `after` = the answer’s `next`.',
        querystring: z
          .object({
            after: z.coerce.number().int().nonnegative().optional(),
            limit: z.coerce.number().int().min(1).max(MAX_TIMELINE_PAGE).default(100),
            type: typeName.optional(),
          })
          .strict(),
      },
      handler: async (req) => {
        const items = await queries.timeline({
          limit: req.query.limit,
          ...(req.query.after === undefined ? {} : { after: req.query.after }),
          ...(req.query.type === undefined ? {} : { type: req.query.type }),
        });
        const last = items[items.length - 1];
        return items.length === req.query.limit && last ? { items, next: last.seq } : { items };
      },
    });
    app.get('/v1/health-history', {
      config: { roles: READ },
      schema: {
        tags: ['analytics'],
        description:
          'Region health changes (the timeline’s region-health entries), oldest first, optionally of one region.',
        querystring: z
          .object({
            region: z.string().min(1).max(64).optional(),
            after: z.coerce.number().int().nonnegative().optional(),
            limit: z.coerce.number().int().min(1).max(MAX_TIMELINE_PAGE).default(100),
          })
          .strict(),
      },
      handler: async (req) => {
        const region = req.query.region;
        if (region !== undefined) find(region);
        // Filtered after the read: page through entries until the page is full or the log ends.
        const items = [];
        let after = req.query.after ?? 0;
        for (;;) {
          const batch = await queries.timeline({ after, limit: MAX_TIMELINE_PAGE, type: 'region-health' });
          for (const entry of batch) {
            after = entry.seq;
            if (region === undefined || entry.event.region === region) items.push(entry);
            if (items.length === req.query.limit) break;
          }
          if (items.length === req.query.limit || batch.length < MAX_TIMELINE_PAGE) break;
        }
        const last = items[items.length - 1];
        return items.length === req.query.limit && last ? { items, next: last.seq } : { items };
      },
    });
  };
}
