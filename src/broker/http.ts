import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ADMIN, problemSchema, READ, WRITE } from '../registry/index.js';
import type { RegionBroker } from './broker.js';

const errors = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  404: problemSchema,
  503: problemSchema,
};
const thingName = z.string().regex(/^[a-zA-Z0-9:_-]{1,128}$/, '1 to 128 characters from a-z A-Z 0-9 : _ -');

const connectionSchema = z
  .object({
    thing: z.string().nullable().describe('the thing the session acts as; null when none'),
    clientId: z.string(),
    address: z.string().describe('source IP address'),
    since: z.number().describe('ms epoch of the CONNECT'),
    auth: z.enum(['mtls', 'token']),
    node: z.string().optional().describe('the broker node holding the session, when the region has several'),
  })
  .meta({ id: 'Connection' });

const disconnectBody = z.union([
  z.object({ thing: thingName }).strict(),
  z.object({ group: thingName }).strict(),
  z.object({ all: z.literal(true) }).strict(),
]);

const failoverNoticeBody = z
  .object({
    activeRegion: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a region name'),
    epoch: z.number().int().nonnegative(),
    at: z.iso.datetime({ offset: true }).describe('ISO 8601 time of the switch'),
  })
  .strict();

/** The broker's operations on the region API: live sessions, server-side disconnect, the failover notice. */
export function brokerRoutes(broker: RegionBroker) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.get('/v1/connections', {
      config: { roles: READ },
      schema: {
        tags: ['broker'],
        description: 'Live device sessions on this region’s broker.',
        response: { 200: z.object({ items: z.array(connectionSchema) }), ...errors },
      },
      handler: async () => ({ items: broker.connections() }),
    });
    app.post('/v1/connections/disconnect', {
      config: { roles: WRITE },
      schema: {
        tags: ['broker'],
        description:
          'Close the sessions of one thing ({"thing"}), of the things of a group ({"group"}), or all ({"all": true}).',
        body: disconnectBody,
        response: { 200: z.object({ disconnected: z.number().int() }), ...errors },
      },
      handler: async (req) => ({ disconnected: await broker.disconnect(req.body) }),
    });
    app.post('/v1/notices/failover', {
      config: { roles: ADMIN },
      schema: {
        tags: ['broker'],
        description: 'Publish the failover notice, retained at QoS 1, on $iotdr/notices/failover.',
        body: failoverNoticeBody,
        response: { 202: failoverNoticeBody, ...errors },
      },
      handler: async (req, reply) => {
        await broker.publishFailoverNotice(req.body);
        return reply.code(202).send(req.body);
      },
    });
  };
}
