import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ADMIN, problemSchema, READ, WRITE } from '../registry/index.js';
import type { FailoverController } from './controller.js';
import { NoDecisionYetError } from './errors.js';
import type { DecisionFeed } from './feed.js';
import { CHECKER_ID, REGION_NAME } from './options.js';
import { MAX_EVENTS_PAGE } from './store.js';
import type { Observation } from './types.js';

const errors = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  404: problemSchema,
  409: problemSchema,
};
const regionName = z.string().regex(REGION_NAME, 'a region name');
const reason = z.string().trim().min(1, 'say why').max(1000);

export const EVENT_TYPES = [
  'switch',
  'region-health',
  'override-set',
  'override-cleared',
  'no-healthy-region',
  'healthy-region-again',
  'holding-ended',
] as const;

/** Most observations in one POST /v1/observations. */
export const MAX_OBSERVATIONS_PER_REPORT = 100;

export const observationSchema = z
  .object({
    checker: z.string().regex(CHECKER_ID, 'a checker id'),
    region: regionName,
    at: z.number().int().nonnegative().describe("ms epoch, the checker's clock: the controller restamps it"),
    outcome: z
      .enum(['pass', 'slow', 'fail'])
      .describe('pass; slow: answered late or only timeouts (busy); fail'),
    failingComponents: z.array(z.string().min(1).max(64)).max(64),
    failing: z
      .array(
        z
          .object({
            component: z.string().min(1).max(64),
            check: z.string().min(1).max(300),
            critical: z.boolean(),
            output: z.string().max(2000).optional(),
            observedValue: z.union([z.number(), z.string().max(200), z.boolean(), z.null()]).optional(),
            observedUnit: z.string().max(32).optional(),
            timedOut: z.boolean().optional(),
          })
          .strict(),
      )
      .max(256),
    latencyMs: z.number().nonnegative().max(3_600_000),
    error: z.string().max(4000).optional(),
  })
  .strict()
  .meta({ id: 'Observation' });

const observationsBody = z
  .object({
    checker: z.string().regex(CHECKER_ID, 'a checker id'),
    observations: z.array(observationSchema).min(1).max(MAX_OBSERVATIONS_PER_REPORT),
  })
  .strict()
  .refine((b) => b.observations.every((o) => o.checker === b.checker), {
    message: 'every observation must carry the checker of the report',
    path: ['observations'],
  });

// The answers are the controller's own typed values; these schemas document their main fields
// and keep the rest (loose) rather than restate every variant.
const switchSchema = z
  .object({ type: z.literal('switch'), id: z.string(), seq: z.number(), epoch: z.number(), to: z.string() })
  .loose()
  .meta({ id: 'FailoverSwitch' });
const eventSchema = z
  .object({ type: z.enum(EVENT_TYPES), id: z.string(), seq: z.number().int(), at: z.number() })
  .loose()
  .meta({ id: 'FailoverEvent' });
const stateSchema = z
  .object({
    activeRegion: z.string(),
    epoch: z.number().int(),
    decidedAt: z.number(),
    mode: z.object({ type: z.enum(['holding', 'health', 'override']) }).loose(),
    failback: z.enum(['manual', 'auto']),
    noHealthyRegion: z.boolean(),
    failbackAvailable: z.string().nullable(),
    quorum: z.number().int(),
    checkers: z.array(z.string()),
    regions: z.array(z.object({ region: z.string(), status: z.enum(['unknown', 'up', 'down']) }).loose()),
    lastSwitch: switchSchema.nullable(),
  })
  .loose()
  .meta({ id: 'FailoverState' });
const controlAnswer = z.object({ switch: switchSchema.nullable(), state: stateSchema });

/** The token name that made a request: recorded with every routing control. */
function who(request: FastifyRequest): string {
  return request.principal?.name ?? 'unknown';
}

/**
 * The controller's routes: state, decision log, routing controls (admin) and the observations of
 * remote checkers (operator). Works in any app that authenticates by `config.roles`: the control
 * API (buildControlApi) or a region API (buildRegistryApi's `routes`).
 */
export function failoverRoutes(controller: FailoverController) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.get('/v1/failover/state', {
      config: { roles: READ },
      schema: {
        tags: ['failover'],
        description:
          'Active region, epoch, mode (holding, health, override), health of every region per checker, last switch with its timings.',
        response: { 200: stateSchema, ...errors },
      },
      handler: async () => controller.state(),
    });
    app.get('/v1/failover/events', {
      config: { roles: READ },
      schema: {
        tags: ['failover'],
        description: 'The decision log, oldest first. Page with `after` = the answer’s `next`.',
        querystring: z
          .object({
            after: z.coerce.number().int().nonnegative().optional(),
            limit: z.coerce.number().int().min(1).max(MAX_EVENTS_PAGE).default(100),
            type: z.enum(EVENT_TYPES).optional(),
          })
          .strict(),
        response: {
          200: z.object({ items: z.array(eventSchema), next: z.number().int().optional() }),
          ...errors,
        },
      },
      handler: async (req) => {
        const items = controller.events({
          limit: req.query.limit,
          ...(req.query.after === undefined ? {} : { after: req.query.after }),
          ...(req.query.type === undefined ? {} : { type: req.query.type }),
        });
        const last = items[items.length - 1];
        return items.length === req.query.limit && last ? { items, next: last.seq } : { items };
      },
    });
    app.post('/v1/failover/switch', {
      config: { roles: ADMIN },
      schema: {
        tags: ['failover'],
        description:
          'Routing control: make `to` the active region, whatever health says, until failback or DELETE /v1/failover/override.',
        body: z.object({ to: regionName, reason }).strict(),
        response: { 200: controlAnswer, ...errors },
      },
      handler: async (req) =>
        controller.switchTo({ to: req.body.to, reason: req.body.reason, who: who(req) }),
    });
    app.post('/v1/failover/failback', {
      config: { roles: ADMIN },
      schema: {
        tags: ['failover'],
        description:
          'Routing control: back to the highest-priority healthy region, and back to following health. 409 when there is nothing to fail back to.',
        body: z.object({ reason }).strict(),
        response: { 200: controlAnswer, ...errors },
      },
      handler: async (req) => controller.failbackNow({ reason: req.body.reason, who: who(req) }),
    });
    app.delete('/v1/failover/override', {
      config: { roles: ADMIN },
      schema: {
        tags: ['failover'],
        description:
          'Remove the routing control: health decides again at once (which may switch). 409 when none is set.',
        querystring: z.object({ reason }).strict(),
        response: { 200: controlAnswer, ...errors },
      },
      handler: async (req) => controller.clearOverride({ reason: req.query.reason, who: who(req) }),
    });
    app.post('/v1/observations', {
      config: { roles: WRITE },
      schema: {
        tags: ['failover'],
        description: `Observations of a remote checker (at most ${MAX_OBSERVATIONS_PER_REPORT}). Counted all or none; the controller stamps them with its own clock (receipt − latency) so checkers' clock skew does not matter.`,
        body: observationsBody,
        response: { 202: z.object({ accepted: z.number().int() }), ...errors },
      },
      handler: async (req, reply) => {
        const now = controller.now();
        const observations: Observation[] = req.body.observations.map((o) => ({
          ...o,
          at: Math.max(0, Math.round(now - o.latencyMs)),
        }));
        controller.report(observations);
        return reply.code(202).send({ accepted: observations.length });
      },
    });
  };
}

/** Longest a follower may wait for the next decision in one request, ms. */
export const MAX_DECISION_WAIT_MS = 60_000;

const servedDecisionSchema = z
  .object({
    region: z.string(),
    address: z.string().describe('the IP the fleet names answer'),
    epoch: z.number().int(),
    decidedAt: z.number().int().describe('ms since the epoch'),
  })
  .meta({ id: 'ServedDecision' });

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
    app.get('/v1/failover/decision', {
      config: { roles: READ },
      schema: {
        tags: ['failover'],
        description: `The active region, the address the fleet's names answer, and the epoch. With \`after\` and \`wait\` (ms, at most ${MAX_DECISION_WAIT_MS}), waits for a decision with another epoch. 503 before the controller's first decision.`,
        querystring: z
          .object({
            after: z.coerce.number().int().nonnegative().optional(),
            wait: z.coerce.number().int().min(0).max(MAX_DECISION_WAIT_MS).default(0),
          })
          .strict(),
        response: { 200: servedDecisionSchema, 503: problemSchema, ...errors },
      },
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
