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

/** Longest each call of a relay to the peer may take by default, in ms (`timeoutMs`). */
export const DEFAULT_RELAY_TIMEOUT_MS = 1000;
/** Bounds of a relay's `timeoutMs`, inclusive, in ms. */
const RELAY_TIMEOUT_LIMITS = { min: 10, max: 60_000 } as const;

const relayBody = z
  .object({
    region: z.string().regex(REGION_NAME_PATTERN, 'a region name').describe('the peer region to reach'),
    notice: failoverNoticeBody.describe('published on the peer first'),
    disconnect: z
      .object({ all: z.literal(true) })
      .strict()
      .optional()
      .describe('then close every device session on the peer, once the peer took the notice'),
    timeoutMs: z
      .number()
      .int()
      .min(RELAY_TIMEOUT_LIMITS.min)
      .max(RELAY_TIMEOUT_LIMITS.max)
      .optional()
      .describe(`longest each call to the peer may take, ms; default ${DEFAULT_RELAY_TIMEOUT_MS}`),
  })
  .strict();

/** How one call to the peer went: its answer, or why there was none. */
const relayOutcome = z
  .discriminatedUnion('ok', [
    z.object({
      ok: z.literal(true),
      status: z.number().int(),
      disconnected: z.number().int().optional().describe('sessions the peer closed'),
    }),
    z.object({
      ok: z.literal(false),
      status: z.number().int().optional().describe('the peer’s answer, when it answered'),
      code: z.string().optional().describe('the code of the peer’s problem+json answer'),
      error: z.string(),
    }),
  ])
  .meta({ id: 'RelayOutcome' });

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
    responses: {
      202: failoverNoticeBody.describe(
        'the notice the broker holds: this one, or the same one published before',
      ),
      ...errors,
      // IOTDR_BROKER_NOTICE_STALE: a newer notice is published; `kept` is it.
      ...problemAnswers(409),
    },
  }),
  failoverRelay: defineRoute({
    method: 'POST',
    url: '/v1/notices/failover/relay',
    tags: ['broker'],
    description:
      'Relay control’s failover notice (and, when asked, the disconnect of every device) to a peer region control cannot reach: this region calls the peer’s routes over its own link to it and answers how each call went.',
    body: relayBody,
    responses: {
      200: z.object({
        region: z.string(),
        notice: relayOutcome,
        disconnect: relayOutcome.optional().describe('present when the relay asked for it'),
      }),
      ...errors,
    },
  }),
} as const;
