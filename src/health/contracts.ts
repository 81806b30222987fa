/**
 * The region's health routes as contracts (draft-inadarei-api-health-check): healthRoutes
 * registers them, checkers call GET /health with them. Public: checkers on other networks call
 * them without a token, and the answers carry no secret.
 */
import { z } from 'zod';
import { defineRoute, type Expect, problemSchema, type SameType } from '../http/index.js';
import type { HealthResponse } from './types.js';

/** draft-inadarei-api-health-check §3: the response's media type. */
export const HEALTH_CONTENT_TYPE = 'application/health+json';

const statusSchema = z.enum(['pass', 'warn', 'fail']);
const checkEntrySchema = z
  .object({
    componentId: z.string().describe('the checkpoint name'),
    componentType: z.string(),
    observedValue: z.union([z.number(), z.string(), z.boolean(), z.null()]),
    observedUnit: z.string().optional(),
    status: statusSchema,
    time: z.string().describe('ISO 8601 time of the observation'),
    ageMs: z
      .number()
      .optional()
      .describe('ms since the observation, by the region clock: a result is reused within health.cacheMs'),
    output: z.string().optional().describe('why it is warn or fail'),
    critical: z.boolean().describe('failing fails the region; otherwise it only warns'),
    timedOut: z
      .boolean()
      .optional()
      .describe(
        'on a failing check: it did not finish within its timeout (slow or hung), rather than erring',
      ),
  })
  .meta({ id: 'HealthCheck' });
const healthResponseSchema = z
  .object({
    status: statusSchema,
    version: z.string(),
    releaseId: z.string(),
    serviceId: z.string().describe('the region name'),
    description: z.string(),
    output: z.string().optional(),
    checks: z
      .record(z.string(), z.array(checkEntrySchema))
      .describe('keyed <component>:<measurement>, e.g. broker:roundTrip'),
  })
  .meta({ id: 'Health' });
/** 200 for pass and warn, 503 for fail (draft §3.1): both carry the health report. */
const responses = { 200: healthResponseSchema, 503: healthResponseSchema };

// types.ts documents the report; this fails to compile when the schema and the type drift apart.
export type _HealthMatches = Expect<SameType<z.output<typeof healthResponseSchema>, HealthResponse>>;

export const HEALTH_ROUTES = {
  health: defineRoute({
    method: 'GET',
    url: '/health',
    tags: ['health'],
    description: `Every checkpoint, run concurrently, each under its own timeout; a result younger than the region's health.cacheMs (from its run's start) is answered as is, with its ageMs. 200 for pass or warn, 503 for fail; ${HEALTH_CONTENT_TYPE}.`,
    public: true,
    responses,
  }),
  checkpoint: defineRoute({
    method: 'GET',
    url: '/health/:checkpoint',
    tags: ['health'],
    description:
      'One checkpoint, answered as GET /health answers it (a result younger than health.cacheMs as is). The status is that of the region were this its only checkpoint: a failing non-critical checkpoint answers warn.',
    public: true,
    params: z.object({ checkpoint: z.string().min(1).max(128) }).strict(),
    responses: { ...responses, 404: problemSchema },
  }),
} as const;
