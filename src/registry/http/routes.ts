import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ADMIN, READ, REPLICATE, ROLES, routeOf, WRITE } from '../../http/index.js';
import {
  attachCertificateQuery,
  createCertificateBody,
  patchCaCertificateBody,
  patchCertificateBody,
  patchPolicyBody,
  putThingGroupBody,
  putThingTypeBody,
  registerCaCertificateBody,
  registerCertificateBody,
  targetPolicyBody,
} from '../model.js';
import type { RegistryService } from '../service/index.js';
import { deviceTokenSchema, errors, noContent, REGISTRY_ROUTES } from './contracts.js';
import {
  caCertificateSchema,
  certificateParams,
  certificatePolicyParams,
  certificateSchema,
  changeSchema,
  changesQuery,
  createdCertificateSchema,
  forceQuery,
  groupMemberSchema,
  groupParams,
  groupPolicyParams,
  groupPolicySchema,
  groupThingParams,
  namesSchema,
  pageOf,
  pageQuery,
  policyParams,
  policyPrincipalSchema,
  policySchema,
  thingCertificateParams,
  thingGroupSchema,
  thingParams,
  thingPrincipalSchema,
  thingSchema,
  thingTypeSchema,
  tokenParams,
  tokenSchema,
  versionQuery,
} from './schemas.js';

function deleteOptions(q: z.infer<typeof forceQuery>): { force: boolean; expectedVersion?: number } {
  return {
    force: q.force === 'true',
    ...(q.expectedVersion === undefined ? {} : { expectedVersion: q.expectedVersion }),
  };
}

function versionOption(q: { expectedVersion?: number | undefined }): { expectedVersion?: number } {
  return q.expectedVersion === undefined ? {} : { expectedVersion: q.expectedVersion };
}

/** The management API of one region's registry (docs/architecture.md §4.4, docs/registry.md). */
export function registryRoutes(service: RegistryService) {
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();

    // Things.
    app.get('/v1/things', {
      config: { roles: READ },
      schema: { tags: ['things'], querystring: pageQuery, response: { 200: pageOf(thingSchema), ...errors } },
      handler: (req) => service.listThings(req.query),
    });
    app.route({
      ...routeOf(REGISTRY_ROUTES.putThing),
      config: { roles: WRITE },
      handler: async (req, reply) => {
        const r = await service.putThing(req.params.name, req.body);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.route({
      ...routeOf(REGISTRY_ROUTES.getThing),
      config: { roles: READ },
      handler: (req) => service.getThing(req.params.name),
    });
    app.delete('/v1/things/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['things'],
        description: 'Delete a thing; force=true detaches its certificates first.',
        params: thingParams,
        querystring: forceQuery,
        response: { 204: noContent, ...errors },
      },
      handler: async (req, reply) => {
        await service.deleteThing(req.params.name, deleteOptions(req.query));
        return reply.code(204).send(null);
      },
    });
    app.get('/v1/things/:name/certificates', {
      config: { roles: READ },
      schema: { tags: ['things'], params: thingParams, response: { 200: namesSchema, ...errors } },
      handler: async (req) => ({ items: await service.listThingCertificates(req.params.name) }),
    });
    app.get('/v1/things/:name/thing-groups', {
      config: { roles: READ },
      schema: { tags: ['things'], params: thingParams, response: { 200: namesSchema, ...errors } },
      handler: async (req) => ({ items: await service.listThingGroupsOf(req.params.name) }),
    });
    app.put('/v1/things/:name/certificates/:id', {
      config: { roles: WRITE },
      schema: {
        tags: ['things'],
        description:
          "Attach a certificate to a thing (AWS IoT AttachThingPrincipal); idempotent. `thingPrincipalType=EXCLUSIVE_THING` makes the thing the certificate's only one; a new attachment is NON_EXCLUSIVE_THING by default, an existing one keeps its type.",
        params: thingCertificateParams,
        querystring: attachCertificateQuery,
        response: { 200: thingPrincipalSchema, 201: thingPrincipalSchema, ...errors },
      },
      handler: async (req, reply) => {
        const r = await service.attachCertificate(
          req.params.name,
          req.params.id,
          req.query.thingPrincipalType,
        );
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.get('/v1/things/:name/certificates/:id', {
      config: { roles: READ },
      schema: {
        tags: ['things'],
        description: 'The attachment of a certificate to a thing, with its thingPrincipalType.',
        params: thingCertificateParams,
        response: { 200: thingPrincipalSchema, ...errors },
      },
      handler: (req) => service.getThingPrincipal(req.params.name, req.params.id),
    });
    app.get('/v1/things/:name/policies', {
      config: { roles: READ },
      schema: {
        tags: ['things'],
        description:
          "Policies the thing inherits from its thing groups and their ancestors (its certificates' own policies are not listed).",
        params: thingParams,
        response: { 200: namesSchema, ...errors },
      },
      handler: async (req) => ({ items: (await service.inheritedPolicies(req.params.name)).policyNames }),
    });
    app.delete('/v1/things/:name/certificates/:id', {
      config: { roles: WRITE },
      schema: { tags: ['things'], params: thingCertificateParams, response: { 204: noContent, ...errors } },
      handler: async (req, reply) => {
        await service.detachCertificate(req.params.name, req.params.id);
        return reply.code(204).send(null);
      },
    });

    // Thing types.
    app.get('/v1/thing-types', {
      config: { roles: READ },
      schema: {
        tags: ['thing types'],
        querystring: pageQuery,
        response: { 200: pageOf(thingTypeSchema), ...errors },
      },
      handler: (req) => service.listThingTypes(req.query),
    });
    app.put('/v1/thing-types/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['thing types'],
        description: 'Create or update a thing type; deprecated=true deprecates it.',
        params: thingParams,
        body: putThingTypeBody,
        response: { 200: thingTypeSchema, 201: thingTypeSchema, ...errors },
      },
      handler: async (req, reply) => {
        const r = await service.putThingType(req.params.name, req.body);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.get('/v1/thing-types/:name', {
      config: { roles: READ },
      schema: { tags: ['thing types'], params: thingParams, response: { 200: thingTypeSchema, ...errors } },
      handler: (req) => service.getThingType(req.params.name),
    });
    app.delete('/v1/thing-types/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['thing types'],
        params: thingParams,
        querystring: versionQuery,
        response: { 204: noContent, ...errors },
      },
      handler: async (req, reply) => {
        await service.deleteThingType(req.params.name, versionOption(req.query));
        return reply.code(204).send(null);
      },
    });

    // Thing groups.
    app.get('/v1/thing-groups', {
      config: { roles: READ },
      schema: {
        tags: ['thing groups'],
        querystring: pageQuery,
        response: { 200: pageOf(thingGroupSchema), ...errors },
      },
      handler: (req) => service.listThingGroups(req.query),
    });
    app.put('/v1/thing-groups/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['thing groups'],
        params: groupParams,
        body: putThingGroupBody,
        response: { 200: thingGroupSchema, 201: thingGroupSchema, ...errors },
      },
      handler: async (req, reply) => {
        const r = await service.putThingGroup(req.params.name, req.body);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.get('/v1/thing-groups/:name', {
      config: { roles: READ },
      schema: { tags: ['thing groups'], params: groupParams, response: { 200: thingGroupSchema, ...errors } },
      handler: (req) => service.getThingGroup(req.params.name),
    });
    app.delete('/v1/thing-groups/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['thing groups'],
        description:
          'Delete a group without child groups; force=true removes its members and detaches its policies first.',
        params: groupParams,
        querystring: forceQuery,
        response: { 204: noContent, ...errors },
      },
      handler: async (req, reply) => {
        await service.deleteThingGroup(req.params.name, deleteOptions(req.query));
        return reply.code(204).send(null);
      },
    });
    app.get('/v1/thing-groups/:name/things', {
      config: { roles: READ },
      schema: { tags: ['thing groups'], params: groupParams, response: { 200: namesSchema, ...errors } },
      handler: async (req) => ({ items: await service.listGroupThings(req.params.name) }),
    });
    app.put('/v1/thing-groups/:group/things/:thing', {
      config: { roles: WRITE },
      schema: {
        tags: ['thing groups'],
        description: 'Add a thing to a group; idempotent.',
        params: groupThingParams,
        response: { 200: groupMemberSchema, 201: groupMemberSchema, ...errors },
      },
      handler: async (req, reply) => {
        const r = await service.addThingToGroup(req.params.group, req.params.thing);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.delete('/v1/thing-groups/:group/things/:thing', {
      config: { roles: WRITE },
      schema: { tags: ['thing groups'], params: groupThingParams, response: { 204: noContent, ...errors } },
      handler: async (req, reply) => {
        await service.removeThingFromGroup(req.params.group, req.params.thing);
        return reply.code(204).send(null);
      },
    });

    app.get('/v1/thing-groups/:name/policies', {
      config: { roles: READ },
      schema: { tags: ['thing groups'], params: groupParams, response: { 200: namesSchema, ...errors } },
      handler: async (req) => ({ items: await service.listGroupPolicies(req.params.name) }),
    });
    app.put('/v1/thing-groups/:group/policies/:policy', {
      config: { roles: WRITE },
      schema: {
        tags: ['thing groups'],
        description:
          "Attach a policy to a thing group; idempotent. The group's things, and those of its child groups, inherit it.",
        params: groupPolicyParams,
        response: { 200: groupPolicySchema, 201: groupPolicySchema, ...errors },
      },
      handler: async (req, reply) => {
        const r = await service.attachGroupPolicy(req.params.group, req.params.policy);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.delete('/v1/thing-groups/:group/policies/:policy', {
      config: { roles: WRITE },
      schema: { tags: ['thing groups'], params: groupPolicyParams, response: { 204: noContent, ...errors } },
      handler: async (req, reply) => {
        await service.detachGroupPolicy(req.params.group, req.params.policy);
        return reply.code(204).send(null);
      },
    });

    // Policies.
    app.get('/v1/policies', {
      config: { roles: READ },
      schema: {
        tags: ['policies'],
        querystring: pageQuery,
        response: { 200: pageOf(policySchema), ...errors },
      },
      handler: (req) => service.listPolicies(req.query),
    });
    app.route({
      ...routeOf(REGISTRY_ROUTES.putPolicy),
      config: { roles: WRITE },
      handler: async (req, reply) => {
        const r = await service.putPolicy(req.params.name, req.body);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.route({
      ...routeOf(REGISTRY_ROUTES.getPolicy),
      config: { roles: READ },
      handler: (req) => service.getPolicy(req.params.name),
    });
    app.delete('/v1/policies/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['policies'],
        description: 'Delete a policy; force=true detaches it from its certificates and thing groups first.',
        params: policyParams,
        querystring: forceQuery,
        response: { 204: noContent, ...errors },
      },
      handler: async (req, reply) => {
        await service.deletePolicy(req.params.name, deleteOptions(req.query));
        return reply.code(204).send(null);
      },
    });

    app.patch('/v1/policies/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['policies'],
        description: 'Make an existing version the default (AWS IoT SetDefaultPolicyVersion).',
        params: policyParams,
        body: patchPolicyBody,
        response: { 200: policySchema, ...errors },
      },
      handler: (req) => service.setDefaultPolicyVersion(req.params.name, req.body),
    });
    app.route({
      ...routeOf(REGISTRY_ROUTES.deletePolicyVersion),
      config: { roles: WRITE },
      handler: async (req, reply) => {
        await service.deletePolicyVersion(req.params.name, req.params.versionId, versionOption(req.query));
        return reply.code(204).send(null);
      },
    });
    // AWS IoT's AttachPolicy (PUT) and DetachPolicy (POST), whose target is an ARN or a group name.
    app.put('/v1/target-policies/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['policies'],
        description:
          'Attach a policy to a target (AWS IoT AttachPolicy): a thing group name, or a thing group or certificate ARN; idempotent.',
        params: policyParams,
        body: targetPolicyBody,
        response: {
          200: z.union([policyPrincipalSchema, groupPolicySchema]),
          201: z.union([policyPrincipalSchema, groupPolicySchema]),
          ...errors,
        },
      },
      handler: async (req, reply) => {
        const r = await service.attachPolicyTo(req.body.target, req.params.name);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.post('/v1/target-policies/:name', {
      config: { roles: WRITE },
      schema: {
        tags: ['policies'],
        description: 'Detach a policy from a target (AWS IoT DetachPolicy).',
        params: policyParams,
        body: targetPolicyBody,
        response: { 204: noContent, ...errors },
      },
      handler: async (req, reply) => {
        await service.detachPolicyFrom(req.body.target, req.params.name);
        return reply.code(204).send(null);
      },
    });

    // Certificates.
    app.get('/v1/certificates', {
      config: { roles: READ },
      schema: {
        tags: ['certificates'],
        querystring: pageQuery,
        response: { 200: pageOf(certificateSchema), ...errors },
      },
      handler: (req) => service.listCertificates(req.query),
    });
    app.post('/v1/certificates', {
      config: { roles: WRITE },
      schema: {
        tags: ['certificates'],
        description:
          'Issue a device certificate from the embedded CA: {"csr": PEM} signs the CSR, {} also generates the key pair (the private key is returned once).',
        body: createCertificateBody,
        response: { 201: createdCertificateSchema, ...errors },
      },
      handler: async (req, reply) => reply.code(201).send(await service.createCertificate(req.body)),
    });
    app.post('/v1/certificates/register', {
      config: { roles: WRITE },
      schema: {
        tags: ['certificates'],
        description:
          'Register a device certificate made elsewhere, signed by a registered CA (caCertificatePem) or on its own.',
        body: registerCertificateBody,
        response: { 200: certificateSchema, 201: certificateSchema, ...errors },
      },
      handler: async (req, reply) => {
        const r = await service.registerCertificate(req.body);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.get('/v1/certificates/:id', {
      config: { roles: READ },
      schema: {
        tags: ['certificates'],
        params: certificateParams,
        response: { 200: certificateSchema, ...errors },
      },
      handler: (req) => service.getCertificate(req.params.id),
    });
    app.patch('/v1/certificates/:id', {
      config: { roles: WRITE },
      schema: {
        tags: ['certificates'],
        description: 'Change the status; REVOKED is final.',
        params: certificateParams,
        body: patchCertificateBody,
        response: { 200: certificateSchema, ...errors },
      },
      handler: (req) => service.updateCertificateStatus(req.params.id, req.body),
    });
    app.delete('/v1/certificates/:id', {
      config: { roles: WRITE },
      schema: {
        tags: ['certificates'],
        description:
          'Delete a certificate that is not ACTIVE and not attached; force=true detaches it first.',
        params: certificateParams,
        querystring: forceQuery,
        response: { 204: noContent, ...errors },
      },
      handler: async (req, reply) => {
        await service.deleteCertificate(req.params.id, deleteOptions(req.query));
        return reply.code(204).send(null);
      },
    });
    app.get('/v1/certificates/:id/things', {
      config: { roles: READ },
      schema: {
        tags: ['certificates'],
        params: certificateParams,
        response: { 200: namesSchema, ...errors },
      },
      handler: async (req) => ({ items: await service.listCertificateThings(req.params.id) }),
    });
    app.get('/v1/certificates/:id/policies', {
      config: { roles: READ },
      schema: {
        tags: ['certificates'],
        params: certificateParams,
        response: { 200: namesSchema, ...errors },
      },
      handler: async (req) => ({ items: await service.listCertificatePolicies(req.params.id) }),
    });
    app.put('/v1/certificates/:id/policies/:policy', {
      config: { roles: WRITE },
      schema: {
        tags: ['certificates'],
        description: 'Attach a policy to a certificate; idempotent.',
        params: certificatePolicyParams,
        response: { 200: policyPrincipalSchema, 201: policyPrincipalSchema, ...errors },
      },
      handler: async (req, reply) => {
        const r = await service.attachPolicy(req.params.id, req.params.policy);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.delete('/v1/certificates/:id/policies/:policy', {
      config: { roles: WRITE },
      schema: {
        tags: ['certificates'],
        params: certificatePolicyParams,
        response: { 204: noContent, ...errors },
      },
      handler: async (req, reply) => {
        await service.detachPolicy(req.params.id, req.params.policy);
        return reply.code(204).send(null);
      },
    });

    // CA certificates.
    app.get('/v1/ca-certificates', {
      config: { roles: READ },
      schema: {
        tags: ['CA certificates'],
        querystring: pageQuery,
        response: { 200: pageOf(caCertificateSchema), ...errors },
      },
      handler: (req) => service.listCaCertificates(req.query),
    });
    app.post('/v1/ca-certificates', {
      config: { roles: WRITE },
      schema: {
        tags: ['CA certificates'],
        description: 'Register your own CA, so that device certificates it signs can be registered.',
        body: registerCaCertificateBody,
        response: { 200: caCertificateSchema, 201: caCertificateSchema, ...errors },
      },
      handler: async (req, reply) => {
        const r = await service.registerCaCertificate(req.body);
        return reply.code(r.created ? 201 : 200).send(r.item);
      },
    });
    app.get('/v1/ca-certificates/:id', {
      config: { roles: READ },
      schema: {
        tags: ['CA certificates'],
        params: certificateParams,
        response: { 200: caCertificateSchema, ...errors },
      },
      handler: (req) => service.getCaCertificate(req.params.id),
    });
    app.patch('/v1/ca-certificates/:id', {
      config: { roles: WRITE },
      schema: {
        tags: ['CA certificates'],
        params: certificateParams,
        body: patchCaCertificateBody,
        response: { 200: caCertificateSchema, ...errors },
      },
      handler: (req) => service.updateCaCertificateStatus(req.params.id, req.body),
    });
    app.delete('/v1/ca-certificates/:id', {
      config: { roles: WRITE },
      schema: {
        tags: ['CA certificates'],
        params: certificateParams,
        querystring: versionQuery,
        response: { 204: noContent, ...errors },
      },
      handler: async (req, reply) => {
        await service.deleteCaCertificate(req.params.id, versionOption(req.query));
        return reply.code(204).send(null);
      },
    });

    // Tokens (admin).
    app.route({
      ...routeOf(REGISTRY_ROUTES.listTokens),
      config: { roles: ADMIN },
      handler: (req) => service.listTokens(req.query),
    });
    app.route({
      ...routeOf(REGISTRY_ROUTES.whoami),
      // Every token may ask who it is, a console token too.
      config: { roles: ROLES.filter((r) => r !== 'admin'), scoped: true },
      handler: async (req) => {
        const p = req.principal;
        if (!p) throw new Error('whoami reached without a principal');
        return {
          name: p.name,
          role: p.role,
          ...(p.tokenId === undefined ? {} : { tokenId: p.tokenId }),
          ...(p.scope === undefined ? {} : { scope: p.scope }),
        };
      },
    });
    app.route({
      ...routeOf(REGISTRY_ROUTES.createToken),
      config: { roles: ADMIN },
      handler: async (req, reply) =>
        reply.code(201).send(await service.createToken(req.body.name, req.body.role, req.body.scope)),
    });
    app.get('/v1/tokens/:id', {
      config: { roles: ADMIN },
      schema: { tags: ['tokens'], params: tokenParams, response: { 200: tokenSchema, ...errors } },
      handler: (req) => service.getToken(req.params.id),
    });
    app.route({
      ...routeOf(REGISTRY_ROUTES.deleteToken),
      config: { roles: ADMIN },
      handler: async (req, reply) => {
        await service.deleteToken(req.params.id);
        return reply.code(204).send(null);
      },
    });

    // Device tokens: the thing's password on the broker's token listener.
    app.route({
      ...routeOf(REGISTRY_ROUTES.createDeviceToken),
      config: { roles: WRITE },
      handler: async (req, reply) =>
        reply.code(201).send(await service.createDeviceToken(req.params.name, req.body.policyNames)),
    });
    app.get('/v1/things/:name/token', {
      config: { roles: READ },
      schema: { tags: ['things'], params: thingParams, response: { 200: deviceTokenSchema, ...errors } },
      handler: (req) => service.getDeviceToken(req.params.name),
    });
    app.delete('/v1/things/:name/token', {
      config: { roles: WRITE },
      schema: { tags: ['things'], params: thingParams, response: { 204: noContent, ...errors } },
      handler: async (req, reply) => {
        await service.deleteDeviceToken(req.params.name);
        return reply.code(204).send(null);
      },
    });

    // The change log (replication reads only this).
    app.get('/v1/changes', {
      config: { sites: ['region'], linkRoles: REPLICATE },
      schema: {
        tags: ['replication'],
        description:
          'The change log in seq order after `after`; with `wait`, an empty answer waits that long for the next commit.',
        querystring: changesQuery,
        response: {
          200: z.object({
            changes: z.array(changeSchema),
            lastSeq: z.number().int().describe('the highest committed seq'),
            firstSeq: z
              .number()
              .int()
              .describe('the lowest seq still kept (older ones were pruned); 0 when empty'),
            scannedTo: z
              .number()
              .int()
              .describe('the answer holds every change matching the filter up to this seq'),
            remaining: z.number().int().describe('changes matching the filter after the last one returned'),
          }),
          ...errors,
        },
      },
      handler: async (req, reply) => {
        // The response's 'close' fires when the client goes away before the answer: stop waiting.
        const controller = new AbortController();
        const onClose = () => controller.abort();
        reply.raw.once('close', onClose);
        try {
          const page = await service.changes({
            after: req.query.after,
            limit: req.query.limit,
            waitMs: req.query.wait,
            signal: controller.signal,
            ...(req.query.origin === undefined ? {} : { origin: req.query.origin }),
          });
          // The client is gone (or the region is stopping and the store closing): nobody reads
          // the answer, so do not touch the store again.
          if (controller.signal.aborted) {
            reply.hijack();
            reply.raw.destroy();
            return;
          }
          const last = page.changes[page.changes.length - 1]?.seq ?? req.query.after;
          const [lastSeq, firstSeq, remaining] = await Promise.all([
            service.store.lastSeq(),
            service.store.firstSeq(),
            service.store.countChanges({
              after: last,
              ...(req.query.origin === undefined ? {} : { origin: req.query.origin }),
            }),
          ]);
          return { changes: page.changes, lastSeq, firstSeq, scannedTo: page.scannedTo, remaining };
        } finally {
          reply.raw.off('close', onClose);
        }
      },
    });
  };
}
