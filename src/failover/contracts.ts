/**
 * The controller's API as route contracts: failoverRoutes and decisionRoutes register them; the CLI,
 * the drill and remote checkers (HttpObservationSink) call them. The answers' schemas describe the controller's typed values in full (types.ts), so a client
 * narrows a mode or an event by its `type` instead of casting.
 */
import { z } from 'zod';
import { REGION_NAME_PATTERN } from '../common/index.js';
import { DECISION_ROUTE } from '../dns/index.js';
import { defineRoute, type Expect, problemAnswers, type SameType } from '../http/index.js';
import type { ServedDecision } from './feed.js';
import { MAX_EVENTS_PAGE } from './store.js';
import { type FailoverEvent, type FailoverState, SWITCH_STEPS } from './types.js';

export const EVENT_TYPES = [
  'switch',
  'region-health',
  'override-set',
  'override-cleared',
  'no-healthy-region',
  'healthy-region-again',
  'holding-ended',
] as const;

const errors = problemAnswers(400, 401, 403, 404, 409);
/** A routing control on a node that does not lead, when it cannot relay it to the leader. */
const controlErrors = problemAnswers(400, 401, 403, 404, 409, 502, 503);
const regionName = z.string().regex(REGION_NAME_PATTERN, 'a region name');
const reason = z.string().trim().min(1, 'say why').max(1000);
const at = z.number().describe('ms since the epoch');
const healthStatus = z.enum(['unknown', 'up', 'down']);

/** Most observations in one POST /v1/observations. */
export const MAX_OBSERVATIONS_PER_REPORT = 100;

export const observationSchema = z
  .object({
    checker: z.string().regex(REGION_NAME_PATTERN, 'a checker id'),
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
    checker: z.string().regex(REGION_NAME_PATTERN, 'a checker id'),
    observations: z.array(observationSchema).min(1).max(MAX_OBSERVATIONS_PER_REPORT),
  })
  .strict()
  .refine((b) => b.observations.every((o) => o.checker === b.checker), {
    message: 'every observation must carry the checker of the report',
    path: ['observations'],
  });

const failingCheckSchema = z.object({
  component: z.string(),
  check: z.string(),
  critical: z.boolean(),
  output: z.string().optional(),
  observedValue: z.union([z.number(), z.string(), z.boolean(), z.null()]).optional(),
  observedUnit: z.string().optional(),
  timedOut: z.boolean().optional(),
});
const checkerViewSchema = z.object({
  lastAt: at,
  outcome: z.enum(['pass', 'slow', 'fail']),
  consecutiveFailures: z.number().int(),
  consecutiveNotPassing: z.number().int(),
  consecutiveSuccesses: z.number().int(),
  failingSince: at.nullable(),
  degradedSince: at.nullable(),
  failingComponents: z.array(z.string()),
  failing: z.array(failingCheckSchema),
  latencyMs: z.number(),
  error: z.string().optional(),
  vote: z.enum(['up', 'down', 'none']),
  downBecause: z.enum(['failures', 'degraded']).optional(),
});
const overrideSchema = z.object({ region: z.string(), reason: z.string(), who: z.string(), at });
const switchSchema = z
  .object({
    type: z.literal('switch'),
    id: z.string(),
    seq: z.number().int(),
    at,
    from: z.string().nullable(),
    to: z.string(),
    epoch: z.number().int(),
    trigger: z.discriminatedUnion('type', [
      z.object({ type: z.literal('health'), region: z.string(), status: healthStatus }),
      z.object({ type: z.literal('auto-failback'), stableSinceAt: at }),
      z.object({ type: z.literal('manual'), who: z.string(), reason: z.string() }),
      z.object({ type: z.literal('failback'), who: z.string(), reason: z.string() }),
    ]),
    timings: z
      .object({
        firstFailedProbeAt: at.nullable(),
        thresholdCrossedAt: at.nullable(),
        decidedAt: at,
        dnsUpdatedAt: at.nullable(),
        noticesPublishedAt: at.nullable(),
        disconnectsRequestedAt: at.nullable(),
        webhooksCalledAt: at.nullable(),
      })
      .describe('the time of every RTO factor; null: not applicable or not done yet'),
    steps: z.partialRecord(z.enum(SWITCH_STEPS), z.unknown()).describe('outcome of each step per target'),
  })
  .meta({ id: 'FailoverSwitch' });
const eventSchema = z
  .discriminatedUnion('type', [
    switchSchema,
    z.object({
      type: z.literal('region-health'),
      id: z.string(),
      seq: z.number().int(),
      at,
      region: z.string(),
      from: healthStatus,
      to: healthStatus,
      failingComponents: z.array(z.string()),
      cause: z.enum(['failures', 'degraded', 'recovered']),
      failing: z.array(failingCheckSchema),
      checkers: z.record(z.string(), checkerViewSchema),
    }),
    z.object({
      type: z.literal('override-set'),
      id: z.string(),
      seq: z.number().int(),
      at,
      override: overrideSchema,
    }),
    z.object({
      type: z.literal('override-cleared'),
      id: z.string(),
      seq: z.number().int(),
      at,
      who: z.string(),
      reason: z.string(),
      previous: overrideSchema,
    }),
    z.object({
      type: z.literal('no-healthy-region'),
      id: z.string(),
      seq: z.number().int(),
      at,
      keeping: z.string(),
    }),
    z.object({
      type: z.literal('healthy-region-again'),
      id: z.string(),
      seq: z.number().int(),
      at,
      regions: z.array(z.string()),
    }),
    z.object({ type: z.literal('holding-ended'), id: z.string(), seq: z.number().int(), at }),
  ])
  .meta({ id: 'FailoverEvent' });
const stateSchema = z
  .object({
    activeRegion: z.string(),
    epoch: z.number().int(),
    decidedAt: at,
    mode: z.discriminatedUnion('type', [
      z.object({ type: z.literal('holding'), since: at }),
      z.object({ type: z.literal('health') }),
      z.object({ type: z.literal('override'), override: overrideSchema }),
    ]),
    failback: z.enum(['manual', 'auto']),
    noHealthyRegion: z.boolean(),
    failbackAvailable: z.string().nullable(),
    quorum: z.number().int(),
    checkers: z.array(z.string()),
    regions: z.array(
      z.object({
        region: z.string(),
        priority: z.number(),
        status: healthStatus,
        since: at.nullable(),
        failingComponents: z.array(z.string()),
        degraded: z
          .object({
            since: at,
            budgetEndsAt: at,
            latencyMs: z.number(),
            failing: z.array(failingCheckSchema),
          })
          .nullable(),
        checkers: z.record(z.string(), checkerViewSchema),
      }),
    ),
    lastSwitch: switchSchema.nullable(),
    control: z.object({
      node: z.string(),
      leads: z.boolean(),
      leader: z
        .object({
          node: z.string(),
          url: z.string(),
          since: at,
          lease: z.string(),
          leaseTtlMs: z.number().int(),
        })
        .nullable(),
    }),
  })
  .meta({ id: 'FailoverState' });
const controlAnswer = z.object({ switch: switchSchema.nullable(), state: stateSchema });

// types.ts documents these shapes; this fails to compile when a schema and its type drift apart.
export type _StateMatches = Expect<SameType<z.output<typeof stateSchema>, FailoverState>>;
export type _EventMatches = Expect<SameType<z.output<typeof eventSchema>, FailoverEvent>>;
export type _DecisionMatches = Expect<
  SameType<z.output<(typeof DECISION_ROUTE.responses)[200]>, ServedDecision>
>;

export const FAILOVER_ROUTES = {
  state: defineRoute({
    method: 'GET',
    url: '/v1/failover/state',
    tags: ['failover'],
    description:
      'Active region, epoch, mode (holding, health, override), health of every region per checker, last switch with its timings.',
    responses: { 200: stateSchema, ...errors },
  }),
  events: defineRoute({
    method: 'GET',
    url: '/v1/failover/events',
    tags: ['failover'],
    description: 'The decision log, oldest first. Page with `after` = the answer’s `next`.',
    query: z
      .object({
        after: z.coerce.number().int().nonnegative().optional(),
        limit: z.coerce.number().int().min(1).max(MAX_EVENTS_PAGE).default(100),
        type: z.enum(EVENT_TYPES).optional(),
      })
      .strict(),
    responses: {
      200: z.object({ items: z.array(eventSchema), next: z.number().int().optional() }),
      ...errors,
    },
  }),
  switch: defineRoute({
    method: 'POST',
    url: '/v1/failover/switch',
    tags: ['failover'],
    description:
      'Routing control: make `to` the active region, whatever health says, until failback or DELETE /v1/failover/override. A control node that does not lead relays it to the leader (503 when none leads).',
    body: z.object({ to: regionName, reason }).strict(),
    responses: { 200: controlAnswer, ...controlErrors },
  }),
  failback: defineRoute({
    method: 'POST',
    url: '/v1/failover/failback',
    tags: ['failover'],
    description:
      'Routing control: back to the highest-priority healthy region, and back to following health. 409 when there is nothing to fail back to.',
    body: z.object({ reason }).strict(),
    responses: { 200: controlAnswer, ...controlErrors },
  }),
  clearOverride: defineRoute({
    method: 'DELETE',
    url: '/v1/failover/override',
    tags: ['failover'],
    description:
      'Remove the routing control: health decides again at once (which may switch). 409 when none is set.',
    query: z.object({ reason }).strict(),
    responses: { 200: controlAnswer, ...controlErrors },
  }),
  observations: defineRoute({
    method: 'POST',
    url: '/v1/observations',
    tags: ['failover'],
    description: `Observations of a remote checker (at most ${MAX_OBSERVATIONS_PER_REPORT}). Counted all or none; the controller stamps them with its own clock (receipt − latency) so checkers' clock skew does not matter.`,
    body: observationsBody,
    responses: { 202: z.object({ accepted: z.number().int() }), ...errors },
  }),
  /** What DNS followers read: its contract is dns's, where they can import it. */
  decision: DECISION_ROUTE,
} as const;
