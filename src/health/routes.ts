import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { problemSchema } from '../http/index.js';
import type { HealthService } from './service.js';
import { httpStatusOf } from './types.js';

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
const responses = { 200: healthResponseSchema, 503: healthResponseSchema };

/**
 * GET /health and GET /health/{checkpoint} (draft-inadarei-api-health-check). No authentication:
 * checkers on other networks call them, and the answers carry no secret. Every request runs the
 * checkpoints; nothing is cached.
 */
export function healthRoutes(health: HealthService) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.get('/health', {
      schema: {
        tags: ['health'],
        description: `Runs every checkpoint now, concurrently, each under its own timeout. 200 for pass or warn, 503 for fail; ${HEALTH_CONTENT_TYPE}.`,
        security: [],
        response: responses,
      },
      handler: async (_request, reply) => {
        const body = await health.check();
        return reply
          .code(httpStatusOf(body.status))
          .header('cache-control', 'no-store')
          .type(HEALTH_CONTENT_TYPE)
          .send(body);
      },
    });
    app.get('/health/:checkpoint', {
      schema: {
        tags: ['health'],
        description:
          'Runs one checkpoint now. The status is that of the region were this its only checkpoint: a failing non-critical checkpoint answers warn.',
        security: [],
        params: z.object({ checkpoint: z.string().min(1).max(128) }).strict(),
        response: { ...responses, 404: problemSchema },
      },
      handler: async (request, reply) => {
        const body = await health.checkOne(request.params.checkpoint);
        return reply
          .code(httpStatusOf(body.status))
          .header('cache-control', 'no-store')
          .type(HEALTH_CONTENT_TYPE)
          .send(body);
      },
    });
  };
}
