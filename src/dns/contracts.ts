/**
 * The route a DNS follower reads, as a contract: GET /v1/failover/decision. The controller serves
 * it (failover's decisionRoutes registers it from this contract); it lives here, with its reader,
 * because failover depends on dns and dns must not depend on failover.
 */
import { z } from 'zod';
import { defineRoute, problemSchema } from '../http/index.js';
import { activeRegionSchema } from './state.js';

/** Longest a follower may wait for the next decision in one request, ms. */
export const MAX_DECISION_WAIT_MS = 60_000;

/** A decision as the controller serves it and a follower applies and keeps it. */
export const followedDecisionSchema = activeRegionSchema
  .extend({
    address: activeRegionSchema.shape.address.describe('the IP the fleet names answer'),
    decidedAt: z.number().int().min(0).describe('ms since the epoch'),
  })
  .strict()
  .meta({ id: 'ServedDecision' });

/** A decision as a follower received and serves it. */
export type FollowedDecision = z.infer<typeof followedDecisionSchema>;

export const DECISION_ROUTE = defineRoute({
  method: 'GET',
  url: '/v1/failover/decision',
  tags: ['failover'],
  description: `The active region, the address the fleet's names answer, and the epoch. With \`after\` and \`wait\` (ms, at most ${MAX_DECISION_WAIT_MS}), waits for a decision with another epoch. 503 before the controller's first decision.`,
  query: z
    .object({
      after: z.coerce.number().int().nonnegative().optional(),
      wait: z.coerce.number().int().min(0).max(MAX_DECISION_WAIT_MS).default(0),
    })
    .strict(),
  responses: {
    200: followedDecisionSchema,
    400: problemSchema,
    401: problemSchema,
    403: problemSchema,
    404: problemSchema,
    409: problemSchema,
    503: problemSchema,
  },
});
