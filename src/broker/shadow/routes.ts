import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { problemAnswers, READ, WRITE } from '../../http/index.js';
import { type RegistryService, thingNameSchema } from '../../registry/index.js';

/**
 * The shadow routes of the region API (docs/shadows.md, "HTTP API"), served by
 * `buildRegistryApi({ routes })`.
 */

const errors = problemAnswers(400, 401, 403, 404, 409, 413, 503);
const params = z.object({ name: thingNameSchema });
const json = z.record(z.string(), z.unknown());
const sections = z.object({ desired: json.optional(), reported: json.optional() });
const version = z.number().int().describe('shadow version, incremented by every update');
const timestamp = z.number().int().describe('seconds since the epoch');

const shadowSchema = z
  .object({
    state: sections.extend({ delta: json.optional().describe('desired values reported does not match') }),
    metadata: sections,
    version,
    timestamp,
  })
  .meta({ id: 'Shadow' });
const updateAcceptedSchema = z
  .object({
    state: z.object({ desired: json.nullable().optional(), reported: json.nullable().optional() }),
    metadata: z.object({ desired: z.unknown().optional(), reported: z.unknown().optional() }),
    version,
    timestamp,
    clientToken: z.string().optional(),
  })
  .meta({ id: 'ShadowUpdateAccepted' });
const deleteAcceptedSchema = z
  .object({
    version: version.describe('version of the deleted shadow'),
    timestamp,
    clientToken: z.string().optional(),
  })
  .meta({ id: 'ShadowDeleteAccepted' });
// The registry service validates requests (the same rules and codes as over MQTT), so the schema
// here only documents them.
const updateBody = z
  .unknown()
  .describe(
    'update request: { state: { desired?: object | null, reported?: object | null }, version?: integer, clientToken?: string }',
  );
const deleteBody = z.unknown().describe('optional: { version?: integer, clientToken?: string }');

export function shadowRoutes(service: RegistryService) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    app.get('/v1/things/:name/shadow', {
      config: { roles: READ },
      schema: { tags: ['shadows'], params, response: { 200: shadowSchema, ...errors } },
      handler: (req) => service.getShadow(req.params.name),
    });
    app.post('/v1/things/:name/shadow', {
      config: { roles: WRITE },
      schema: {
        tags: ['shadows'],
        description: 'Update the thing shadow: desired and reported merge, null removes a key.',
        params,
        body: updateBody,
        response: { 200: updateAcceptedSchema, ...errors },
      },
      handler: (req) => service.updateShadow(req.params.name, req.body),
    });
    app.delete('/v1/things/:name/shadow', {
      config: { roles: WRITE },
      schema: {
        tags: ['shadows'],
        description: 'Delete the thing shadow; a later update starts a new one.',
        params,
        body: deleteBody,
        response: { 200: deleteAcceptedSchema, ...errors },
      },
      handler: (req) => service.deleteShadow(req.params.name, req.body),
    });
  };
}
