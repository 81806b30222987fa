/**
 * The registry routes other parts of iotdr call (the CLI, the fleet, the drill) as route
 * contracts: registryRoutes registers them, ApiClient calls them.
 */
import { z } from 'zod';
import { defineRoute, problemAnswers } from '../../http/index.js';
import { createDeviceTokenBody, createTokenBody, putPolicyBody, putThingBody } from '../model.js';
import {
  issuedTokenSchema,
  pageOf,
  pageQuery,
  policyParams,
  policySchema,
  policyVersionParams,
  principalSchema,
  thingParams,
  thingSchema,
  tokenParams,
  tokenSchema,
  versionQuery,
} from './schemas.js';

export const errors = problemAnswers(400, 401, 403, 404, 409, 413, 503);
export const noContent = z.null().describe('no content');
export const deviceTokenSchema = z
  .object({
    thingName: z.string(),
    policyNames: z.array(z.string()),
    createdAt: z.string(),
    version: z.number().int(),
  })
  .meta({ id: 'DeviceToken' });

export const REGISTRY_ROUTES = {
  putThing: defineRoute({
    method: 'PUT',
    url: '/v1/things/:name',
    tags: ['things'],
    description: 'Create or update a thing; idempotent.',
    params: thingParams,
    body: putThingBody,
    responses: { 200: thingSchema, 201: thingSchema, ...errors },
  }),
  getThing: defineRoute({
    method: 'GET',
    url: '/v1/things/:name',
    tags: ['things'],
    params: thingParams,
    responses: { 200: thingSchema, ...errors },
  }),
  putPolicy: defineRoute({
    method: 'PUT',
    url: '/v1/policies/:name',
    tags: ['policies'],
    description:
      'Create a policy or add a version and make it the default; the same document again changes nothing.',
    params: policyParams,
    body: putPolicyBody,
    responses: { 200: policySchema, 201: policySchema, ...errors },
  }),
  getPolicy: defineRoute({
    method: 'GET',
    url: '/v1/policies/:name',
    tags: ['policies'],
    params: policyParams,
    responses: { 200: policySchema, ...errors },
  }),
  deletePolicyVersion: defineRoute({
    method: 'DELETE',
    url: '/v1/policies/:name/versions/:versionId',
    tags: ['policies'],
    description:
      'Delete a version other than the default (AWS IoT DeletePolicyVersion); its id is never given again.',
    params: policyVersionParams,
    query: versionQuery,
    responses: { 204: noContent, ...errors },
  }),
  whoami: defineRoute({
    method: 'GET',
    url: '/v1/whoami',
    tags: ['tokens'],
    description:
      "Who the bearer token is: its name, role, id and scope. Control and analytics ask a region this to know people's tokens.",
    responses: { 200: principalSchema, ...errors },
  }),
  listTokens: defineRoute({
    method: 'GET',
    url: '/v1/tokens',
    tags: ['tokens'],
    query: pageQuery,
    responses: { 200: pageOf(tokenSchema), ...errors },
  }),
  createToken: defineRoute({
    method: 'POST',
    url: '/v1/tokens',
    tags: ['tokens'],
    description: 'Create a bearer token with a role; the token is returned this once.',
    body: createTokenBody,
    responses: { 201: issuedTokenSchema, ...errors },
  }),
  deleteToken: defineRoute({
    method: 'DELETE',
    url: '/v1/tokens/:id',
    tags: ['tokens'],
    params: tokenParams,
    responses: { 204: noContent, ...errors },
  }),
  createDeviceToken: defineRoute({
    method: 'POST',
    url: '/v1/things/:name/token',
    tags: ['things'],
    description:
      "Issue the thing's device token (MQTT password on the token listener, username = thing name), replacing any previous one; the token is returned this once.",
    params: thingParams,
    body: createDeviceTokenBody,
    responses: { 201: z.object({ token: z.string(), info: deviceTokenSchema }), ...errors },
  }),
} as const;
