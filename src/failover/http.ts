import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ADMIN, READ, routeOf, WRITE } from '../http/index.js';
import { FAILOVER_ROUTES } from './contracts.js';
import type { FailoverController } from './controller.js';
import { CheckerMismatchError, NoDecisionYetError, NoLeaderError, NotLeaderError } from './errors.js';
import type { DecisionFeed } from './feed.js';
import type { Observation } from './types.js';

/** The token name that made a request: recorded with every routing control. */
function who(request: FastifyRequest): string {
  return request.principal?.name ?? 'unknown';
}

/** A routing control as it reached a node, for the node to relay to the leader. */
export interface RelayedRequest {
  readonly method: string;
  /** Path and query, as received. */
  readonly url: string;
  readonly body: unknown;
  readonly authorization: string | undefined;
}

/** The leader's answer, relayed as it is. */
export interface RelayedAnswer {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly text: string;
}

/** Marks a routing control a node relays, so the node it reaches never relays it again. */
export const RELAYED_BY_HEADER = 'x-iotdr-relayed-by';

export interface FailoverRoutesOptions {
  /**
   * With several control nodes: sends a routing control to the leader (`leaderUrl`) with the
   * caller's token, and resolves its answer. Without it, a node that does not lead refuses.
   */
  relay?: (leaderUrl: string, leaderNode: string, request: RelayedRequest) => Promise<RelayedAnswer>;
}

/**
 * The controller's routes: state, decision log, routing controls (admin) and the observations of
 * remote checkers (each with its site certificate; an operator token on plain loopback links). Works in any app that authenticates by `config.roles`: the control
 * API or a region API (both built by buildApi). A routing control reaching a node that does not
 * lead is relayed to the leader, once.
 */
export function failoverRoutes(controller: FailoverController, options: FailoverRoutesOptions = {}) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    /** Undefined when this node leads (the handler decides); else the leader's answer, relayed. */
    const relayed = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      if (controller.leads()) return undefined;
      const node = controller.node ?? 'control';
      const leader = controller.leader();
      if (leader === null || leader.node === node) throw new NoLeaderError(node);
      if (!options.relay || req.headers[RELAYED_BY_HEADER] !== undefined)
        throw new NotLeaderError(node, leader);
      const answer = await options.relay(leader.url, leader.node, {
        method: req.method,
        url: req.url,
        body: req.body,
        authorization: req.headers.authorization,
      });
      req.log.info({ leader: leader.node, status: answer.status }, 'routing control relayed to the leader');
      if (answer.contentType) reply.type(answer.contentType);
      return reply.code(answer.status).send(answer.text);
    };
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
      handler: async (req, reply) =>
        (await relayed(req, reply)) ??
        controller.switchTo({ to: req.body.to, reason: req.body.reason, who: who(req) }),
    });
    app.route({
      ...routeOf(FAILOVER_ROUTES.failback),
      config: { roles: ADMIN },
      handler: async (req, reply) =>
        (await relayed(req, reply)) ?? controller.failbackNow({ reason: req.body.reason, who: who(req) }),
    });
    app.route({
      ...routeOf(FAILOVER_ROUTES.clearOverride),
      config: { roles: ADMIN },
      handler: async (req, reply) =>
        (await relayed(req, reply)) ?? controller.clearOverride({ reason: req.query.reason, who: who(req) }),
    });
    app.route({
      ...routeOf(FAILOVER_ROUTES.observations),
      // Over mutual TLS a checker reports with its own certificate only, for its own id; a control
      // node's own checker reports to the other nodes with the node's certificate.
      config: { sites: ['checker', 'control'], linkRoles: WRITE },
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
