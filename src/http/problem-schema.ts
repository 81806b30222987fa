import { z } from 'zod';

/** A problem (problem.ts) as a response schema, so every API's OpenAPI document names its errors. */
export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string().describe('stable error code, e.g. IOTDR_REGISTRY_STILL_ATTACHED'),
    instance: z.string().optional(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .catchall(z.unknown())
  .meta({ id: 'Problem' });

/**
 * A route's problem+json answers by status, `problemAnswers(400, 401, 404)`: what its contract
 * lists beside its successes, so OpenAPI and the client know every answer it may give.
 */
export function problemAnswers<const S extends number>(...statuses: S[]): Record<S, typeof problemSchema> {
  return Object.fromEntries(statuses.map((s) => [s, problemSchema])) as Record<S, typeof problemSchema>;
}
