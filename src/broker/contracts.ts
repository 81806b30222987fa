/**
 * The broker's routes on the region API as route contracts: brokerRoutes registers them; the
 * drill (and any client) calls them with ApiClient.
 */
import { z } from 'zod';
import { REGION_NAME_PATTERN } from '../common/index.js';
import { defineRoute, problemAnswers } from '../http/index.js';

const errors = problemAnswers(400, 401, 403, 404, 503);
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
    activeRegion: z.string().regex(REGION_NAME_PATTERN, 'a region name'),
    epoch: z.number().int().nonnegative(),
    at: z.iso.datetime({ offset: true }).describe('ISO 8601 time of the switch'),
  })
  .strict();

export const BROKER_ROUTES = {
  connections: defineRoute({
    method: 'GET',
    url: '/v1/connections',
    tags: ['broker'],
    description: 'Live device sessions on this region’s broker.',
    responses: { 200: z.object({ items: z.array(connectionSchema) }), ...errors },
  }),
  disconnect: defineRoute({
    method: 'POST',
    url: '/v1/connections/disconnect',
    tags: ['broker'],
    description:
      'Close the sessions of one thing ({"thing"}), of the things of a group ({"group"}), or all ({"all": true}).',
    body: disconnectBody,
    responses: { 200: z.object({ disconnected: z.number().int() }), ...errors },
  }),
  failoverNotice: defineRoute({
    method: 'POST',
    url: '/v1/notices/failover',
    tags: ['broker'],
    description: 'Publish the failover notice, retained at QoS 1, on $iotdr/notices/failover.',
    body: failoverNoticeBody,
    responses: { 202: failoverNoticeBody, ...errors },
  }),
} as const;
