import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { routeOf } from '../http/index.js';
import { HEALTH_CONTENT_TYPE, HEALTH_ROUTES } from './contracts.js';
import type { HealthService } from './service.js';
import { httpStatusOf } from './types.js';

/**
 * GET /health and GET /health/{checkpoint} (draft-inadarei-api-health-check). No authentication:
 * checkers on other networks call them, and the answers carry no secret. So that anyone may call
 * them as often as they like, a checkpoint runs at most once per the service's `cacheMs`; a
 * request in between is answered the latest result as is (no-store still: it is fresh enough for
 * the region to stand by, not for a cache on the way to keep).
 */
export function healthRoutes(health: HealthService) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.route({
      ...routeOf(HEALTH_ROUTES.health),
      handler: async (_request, reply) => {
        const body = await health.check();
        return reply
          .code(httpStatusOf(body.status))
          .header('cache-control', 'no-store')
          .type(HEALTH_CONTENT_TYPE)
          .send(body);
      },
    });
    app.route({
      ...routeOf(HEALTH_ROUTES.checkpoint),
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
