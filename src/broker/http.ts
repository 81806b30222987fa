import type { Agent } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import {
  ADMIN,
  ApiClient,
  bearerToken,
  CallError,
  READ,
  routeOf,
  type SuccessOf,
  WRITE,
} from '../http/index.js';
import type { RegionBroker } from './broker.js';
import { BROKER_ROUTES, DEFAULT_RELAY_TIMEOUT_MS } from './contracts.js';
import { relayToSelf, unknownRelayRegion } from './errors.js';

/** A peer region's API as this region calls it. */
export interface RelayPeer {
  url: string;
  /** This region's site agent for the peer; undefined on plain links (the caller's token goes on). */
  agent?: Agent;
}

export interface BrokerRouteOptions {
  /** The other regions' APIs by name, for relaying control's notice; undefined for a region not listed. */
  peerOf?: (region: string) => RelayPeer | undefined;
}

/** How one call to the peer went, as the relay answers it. */
type RelayOutcome = SuccessOf<typeof BROKER_ROUTES.failoverRelay>['notice'];

/**
 * The broker's operations on the region API: live sessions, server-side disconnect, the failover
 * notice, and the relay of control's notice and disconnect to a peer region control cannot reach.
 */
export function brokerRoutes(broker: RegionBroker, options: BrokerRouteOptions = {}) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.route({
      ...routeOf(BROKER_ROUTES.connections),
      config: { roles: READ, sites: ['analytics'] },
      handler: async () => ({ items: broker.connections() }),
    });
    app.route({
      ...routeOf(BROKER_ROUTES.disconnect),
      // A peer region relays control's disconnect (POST /v1/notices/failover/relay).
      config: { roles: WRITE, sites: ['control', 'region'] },
      handler: async (req) => ({ disconnected: await broker.disconnect(req.body) }),
    });
    app.route({
      ...routeOf(BROKER_ROUTES.failoverNotice),
      config: { roles: ADMIN, sites: ['control', 'region'] },
      handler: async (req, reply) => reply.code(202).send(await broker.publishFailoverNotice(req.body)),
    });
    app.route({
      ...routeOf(BROKER_ROUTES.failoverRelay),
      // Control's only: a region may not have its own notice relayed, nor a relay relayed again.
      config: { roles: ADMIN, sites: ['control'] },
      handler: async (req) => {
        const { region, notice, disconnect } = req.body;
        if (region === broker.region) throw relayToSelf(region);
        const peer = options.peerOf?.(region);
        if (peer === undefined) throw unknownRelayRegion(region);
        const timeoutMs = req.body.timeoutMs ?? DEFAULT_RELAY_TIMEOUT_MS;
        // Over mutual TLS this region calls as itself; on plain links with the caller's admin token.
        const token = peer.agent === undefined ? bearerToken(req.headers.authorization) : undefined;
        const api = new ApiClient(region, peer.url.replace(/\/+$/, ''), token, peer.agent);
        const published = await relayed(() =>
          api.requestAny(BROKER_ROUTES.failoverNotice, { body: notice, timeoutMs }),
        );
        req.log.info({ region, epoch: notice.epoch, outcome: published }, 'failover notice relayed');
        if (disconnect === undefined) return { region, notice: published };
        // The disconnect is fenced by the notice: a peer holding a newer one may be active again.
        const closed: RelayOutcome = published.ok
          ? await relayed(() => api.requestAny(BROKER_ROUTES.disconnect, { body: disconnect, timeoutMs }))
          : { ok: false, error: 'not requested: the peer did not take the notice' };
        req.log.info({ region, outcome: closed }, 'disconnect relayed');
        return { region, notice: published, disconnect: closed };
      },
    });
  };
}

/** One call to the peer as an outcome: its answer (a problem's code kept), or why none came. Never throws. */
async function relayed(call: () => Promise<{ status: number; body: object }>): Promise<RelayOutcome> {
  try {
    const { status, body } = await call();
    if (status >= 200 && status < 300)
      return {
        ok: true,
        status,
        ...('disconnected' in body ? { disconnected: Number(body.disconnected) } : {}),
      };
    // Every other answer the peer's routes declare is problem+json.
    const problem: { code?: unknown; detail?: unknown } = body;
    return {
      ok: false,
      status,
      ...(typeof problem.code === 'string' ? { code: problem.code } : {}),
      error: typeof problem.detail === 'string' ? problem.detail : `answered ${status}`,
    };
  } catch (error) {
    if (!(error instanceof CallError)) return { ok: false, error: (error as Error).message };
    const failure = error.failure;
    switch (failure.type) {
      case 'timeout':
        return { ok: false, error: `no answer within ${failure.timeoutMs} ms` };
      case 'unreachable':
        return { ok: false, error: failure.cause };
      case 'refused':
        return {
          ok: false,
          status: failure.status,
          ...(failure.code === undefined ? {} : { code: failure.code }),
          error: error.message,
        };
      case 'unexpected':
        return { ok: false, status: failure.status, error: error.message };
    }
  }
}
