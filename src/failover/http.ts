import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ADMIN, READ, routeOf, WRITE } from '../http/index.js';
import { FAILOVER_ROUTES } from './contracts.js';
import type { FailoverController } from './controller.js';
import { CheckerMismatchError, NoDecisionYetError } from './errors.js';
import type { DecisionFeed } from './feed.js';
import type { Observation } from './types.js';

/** The token name that made a request: recorded with every routing control. */
function who(request: FastifyRequest): string {
  return request.principal?.name ?? 'unknown';
}

/**
 * The controller's routes: state, decision log, routing controls (admin) and the observations of
 * remote checkers (each with its site certificate; an operator token on plain loopback links). Works in any app that authenticates by `config.roles`: the control
 * API or a region API (both built by buildApi).
 */
export function failoverRoutes(controller: FailoverController) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.route({
      ...routeOf(FAILOVER_ROUTES.state),
      config: { roles: READ, sites: ['analytics'] },
      handler: async () => controller.state(),
    });
    app.route({
      ...routeOf(FAILOVER_ROUTES.events),
      config: { roles: READ, sites: ['analytics'] },
      handler: async (req) => {
        const items = await controller.events({
          limit: req.query.limit,
          ...(req.query.after === undefined ? {} : { after: req.query.after }),
          ...(req.query.type === undefined ? {} : { type: req.query.type }),
        });
        const last = items[items.length - 1];
        return items.length === req.query.limit && last ? { items, next: last.seq } : { items };
      },
    });
    app.route({
      ...routeOf(FAILOVER_ROUTES.switch),
      config: { roles: ADMIN },
      handler: async (req) =>
        controller.switchTo({ to: req.body.to, reason: req.body.reason, who: who(req) }),
    });
    app.route({
      ...routeOf(FAILOVER_ROUTES.failback),
      config: { roles: ADMIN },
      handler: async (req) => controller.failbackNow({ reason: req.body.reason, who: who(req) }),
    });
    app.route({
      ...routeOf(FAILOVER_ROUTES.clearOverride),
      config: { roles: ADMIN },
      handler: async (req) => controller.clearOverride({ reason: req.query.reason, who: who(req) }),
    });
    app.route({
      ...routeOf(FAILOVER_ROUTES.observations),
      // Over mutual TLS a checker reports with its own certificate only, for its own id.
      config: { sites: ['checker'], linkRoles: WRITE },
      handler: async (req, reply) => {
        const site = req.principal?.site;
        if (site !== undefined && site.name !== req.body.checker)
          throw new CheckerMismatchError(site.name, req.body.checker);
        const now = controller.now();
        const observations: Observation[] = req.body.observations.map((o) => ({
          ...o,
          at: Math.max(0, Math.round(now - o.latencyMs)),
        }));
        await controller.report(observations);
        return reply.code(202).send({ accepted: observations.length });
      },
    });
  };
}

/**
 * GET /v1/failover/decision: what the fleet's names answer, for DNS servers in other processes
 * (`iotdr dns`). With `after` (the epoch the follower serves) and `wait`, a long poll that answers
 * as soon as the epoch differs, or after `wait` ms with the unchanged decision.
 */
export function decisionRoutes(feed: DecisionFeed) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    // Stopping the server ends every wait at once, so close() is not held by long polls.
    const shutdown = new AbortController();
    app.addHook('onClose', async () => shutdown.abort());
    app.route({
      ...routeOf(FAILOVER_ROUTES.decision),
      config: { roles: READ, sites: ['dns'] },
      handler: async (req, reply) => {
        const gone = new AbortController();
        const abort = () => gone.abort();
        reply.raw.once('close', abort);
        shutdown.signal.addEventListener('abort', abort, { once: true });
        try {
          const decision = await feed.next(req.query.after, req.query.wait, gone.signal);
          if (!decision) throw new NoDecisionYetError();
          return decision;
        } finally {
          reply.raw.off('close', abort);
          shutdown.signal.removeEventListener('abort', abort);
        }
      },
    });
  };
}
