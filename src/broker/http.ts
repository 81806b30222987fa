import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ADMIN, READ, routeOf, WRITE } from '../http/index.js';
import type { RegionBroker } from './broker.js';
import { BROKER_ROUTES } from './contracts.js';

/** The broker's operations on the region API: live sessions, server-side disconnect, the failover notice. */
export function brokerRoutes(broker: RegionBroker) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.route({
      ...routeOf(BROKER_ROUTES.connections),
      config: { roles: READ, sites: ['analytics'] },
      handler: async () => ({ items: broker.connections() }),
    });
    app.route({
      ...routeOf(BROKER_ROUTES.disconnect),
      config: { roles: WRITE, sites: ['control'] },
      handler: async (req) => ({ disconnected: await broker.disconnect(req.body) }),
    });
    app.route({
      ...routeOf(BROKER_ROUTES.failoverNotice),
      config: { roles: ADMIN, sites: ['control'] },
      handler: async (req, reply) => {
        await broker.publishFailoverNotice(req.body);
        return reply.code(202).send(req.body);
      },
    });
  };
}
