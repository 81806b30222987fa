/**
 * The command-and-control API (served on each region's `cnc` listener, under `api.<zone>`):
 * onboarding one device or a list, suspend, resume, decommission, commands. Operator role; console
 * tokens may be scoped to operations and thing groups. Every mutating route takes an
 * `Idempotency-Key`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../common/index.js';
import {
  commandDocSchema,
  onboardingJobDocSchema,
  problemSchema,
  READ,
  type RegistryService,
  thingNameSchema,
  WRITE,
} from '../registry/index.js';
import { type CommandService, issueCommandBody } from './commands.js';
import { decommissionDevice, onboardBody, onboardDevice, resumeDevice, suspendDevice } from './devices.js';
import { UnknownDeviceError } from './errors.js';
import type { IdempotencyStore } from './idempotency.js';
import { type JobService, jobInputFromCsv, jobInputFromJson, jobQuerySchema, validateJob } from './jobs.js';
import { requireDeviceInScope, requireGroupsInScope, requireOperation } from './scope.js';

const errors = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  404: problemSchema,
  409: problemSchema,
  422: problemSchema,
};
const commandSchema = commandDocSchema.extend({ version: z.number().int() }).meta({ id: 'Command' });
const jobSchema = onboardingJobDocSchema
  .extend({
    version: z.number().int(),
    keysAvailable: z.boolean().describe('private keys made by iotdr wait here, to be fetched once'),
  })
  .meta({ id: 'OnboardingJob' });
const deviceSchema = z
  .object({
    thingName: z.string(),
    attributes: z.record(z.string(), z.string()),
    groups: z.array(z.string()),
    certificates: z.array(
      z.object({ certificateId: z.string(), status: z.string(), policies: z.array(z.string()) }),
    ),
    state: z.enum(['active', 'suspended', 'no-certificate']),
  })
  .meta({ id: 'Device' });
const thingParams = z.object({ thing: thingNameSchema }).strict();
const uuidParams = z.object({ id: z.uuid() }).strict();
const cnc = (roles: typeof READ) => ({ roles, scoped: true });
/** Largest CSV body, bytes (10,000 devices with CSRs fit). */
export const MAX_BULK_BODY_BYTES = 32 * 1024 * 1024;

function who(request: FastifyRequest): string {
  return request.principal?.name ?? 'unknown';
}

export interface CncRoutesOptions {
  service: RegistryService;
  commands: CommandService;
  jobs: JobService;
  idempotency: IdempotencyStore;
}

export function cncRoutes(options: CncRoutesOptions) {
  const { service, commands, jobs, idempotency } = options;
  return async (root: FastifyInstance): Promise<void> => {
    const app = root.withTypeProvider<ZodTypeProvider>();
    // CSV bodies for bulk onboarding, kept as text.
    app.addContentTypeParser(
      'text/csv',
      { parseAs: 'string', bodyLimit: MAX_BULK_BODY_BYTES },
      (_request, body, done) => done(null, body),
    );

    app.post('/v1/devices', {
      config: cnc(WRITE),
      schema: {
        tags: ['command and control'],
        description:
          'Onboard one device: thing, certificate (from `csr`, or a key pair made here whose key is returned this once), the template policy, groups.',
        body: onboardBody,
        response: errors,
      },
      handler: async (req, reply) => {
        requireOperation(req.principal, 'onboard');
        requireGroupsInScope(req.principal, req.body.groups);
        return idempotency.run(req, reply, async () => ({
          status: 201,
          body: await onboardDevice(service, req.body),
        }));
      },
    });

    app.get('/v1/devices/:thing', {
      config: cnc(READ),
      schema: {
        tags: ['command and control'],
        params: thingParams,
        response: { 200: deviceSchema, ...errors },
      },
      handler: async (req) => {
        requireOperation(req.principal, 'read');
        await requireDeviceInScope(service, req.principal, req.params.thing);
        const thing = await service.getThing(req.params.thing).catch((error: unknown) => {
          throw error instanceof NotFoundError ? new UnknownDeviceError(req.params.thing) : error;
        });
        const ids = await service.listThingCertificates(req.params.thing);
        const certificates = await Promise.all(
          ids.map(async (id) => {
            const c = await service.getCertificate(id);
            return {
              certificateId: id,
              status: c.status,
              policies: await service.listCertificatePolicies(id),
            };
          }),
        );
        const active = certificates.some((c) => c.status === 'ACTIVE');
        const state: z.infer<typeof deviceSchema>['state'] = active
          ? 'active'
          : certificates.length > 0
            ? 'suspended'
            : 'no-certificate';
        return {
          thingName: thing.thingName,
          attributes: thing.attributes,
          groups: await service.listThingGroupsOf(req.params.thing),
          certificates,
          state,
        };
      },
    });

    for (const [action, operation, run] of [
      ['suspend', 'suspend', suspendDevice],
      ['resume', 'resume', resumeDevice],
    ] as const) {
      app.post(`/v1/devices/:thing/${action}`, {
        config: cnc(WRITE),
        schema: {
          tags: ['command and control'],
          description:
            action === 'suspend'
              ? 'Every certificate of the device INACTIVE: its sessions are closed in every region as the change replicates.'
              : 'Every INACTIVE certificate of the device ACTIVE again (REVOKED ones stay revoked).',
          params: thingParams,
          response: errors,
        },
        handler: async (req, reply) => {
          requireOperation(req.principal, operation);
          await requireDeviceInScope(service, req.principal, req.params.thing);
          return idempotency.run(req, reply, async () => ({
            status: 200,
            body: await run(service, req.params.thing),
          }));
        },
      });
    }

    app.delete('/v1/devices/:thing', {
      config: cnc(WRITE),
      schema: {
        tags: ['command and control'],
        description:
          'Decommission: its certificates (unless another thing uses them), memberships, shadow, broker token and commands, then the thing. Policies and groups are shared and kept.',
        params: thingParams,
        response: errors,
      },
      handler: async (req, reply) => {
        requireOperation(req.principal, 'decommission');
        await requireDeviceInScope(service, req.principal, req.params.thing);
        return idempotency.run(req, reply, async () => ({
          status: 200,
          body: await decommissionDevice(service, req.params.thing),
        }));
      },
    });

    app.post('/v1/devices/:thing/commands', {
      config: cnc(WRITE),
      schema: {
        tags: ['command and control'],
        description: `Send a command: delivered on $iotdr/things/{thing}/commands (the id in the payload) by the region the device is connected to; the device answers on .../{id}/reply.`,
        params: thingParams,
        body: issueCommandBody,
        response: errors,
      },
      handler: async (req, reply) => {
        requireOperation(req.principal, 'command');
        await requireDeviceInScope(service, req.principal, req.params.thing);
        return idempotency.run(req, reply, async () => ({
          status: 201,
          body: await commands.issue(req.params.thing, req.body, who(req)),
        }));
      },
    });

    app.get('/v1/devices/:thing/commands', {
      config: cnc(READ),
      schema: {
        tags: ['command and control'],
        params: thingParams,
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict(),
        response: { 200: z.object({ items: z.array(commandSchema) }), ...errors },
      },
      handler: async (req) => {
        requireOperation(req.principal, 'read');
        await requireDeviceInScope(service, req.principal, req.params.thing);
        return { items: await commands.list(req.params.thing, req.query.limit) };
      },
    });

    app.get('/v1/commands/:id', {
      config: cnc(READ),
      schema: {
        tags: ['command and control'],
        params: uuidParams,
        response: { 200: commandSchema, ...errors },
      },
      handler: async (req) => {
        requireOperation(req.principal, 'read');
        const command = await commands.get(req.params.id);
        await requireDeviceInScope(service, req.principal, command.thingName);
        return command;
      },
    });

    app.post('/v1/onboarding-jobs', {
      config: cnc(WRITE),
      bodyLimit: MAX_BULK_BODY_BYTES,
      schema: {
        tags: ['command and control'],
        description:
          'Bulk onboarding: a JSON body `{template, groups, partial, devices: [...]}` or a CSV body (text/csv, header `thingName,groups,csr,attributes,thingTypeName`, `?template=&groups=&partial=`). The whole list is validated first: any bad line refuses it all (400, every line and field named) unless partial=true. 202 with the job.',
        querystring: jobQuerySchema,
        response: errors,
      },
      handler: async (req, reply) => {
        requireOperation(req.principal, 'onboard');
        const csv = (req.headers['content-type'] ?? '').startsWith('text/csv');
        const input = csv ? jobInputFromCsv(String(req.body ?? ''), req.query) : jobInputFromJson(req.body);
        if (!csv && (req.query.template !== undefined || req.query.groups !== undefined))
          throw new ValidationError('with a JSON body, say template and groups in the body', [
            { path: 'querystring', message: 'template and groups go in the JSON body' },
          ]);
        const partial = input.partial || req.query.partial;
        return idempotency.run(req, reply, async () => {
          const validated = await validateJob(service, { ...input, partial });
          for (const row of validated.accepted) requireGroupsInScope(req.principal, row.device.groups);
          if (validated.rejected.length > 0 && !partial) {
            throw new ValidationError(
              `${validated.rejected.length} line(s) of the device list are not valid; nothing was onboarded (send partial=true to onboard the valid ones): ${validated.rejected
                .slice(0, 10)
                .map((r) => `${r.path}: ${r.message}`)
                .join('; ')}`,
              validated.rejected.slice(0, 1000),
              'IOTDR_CNC_INVALID_DEVICE_LIST',
            );
          }
          if (validated.accepted.length === 0)
            throw new ValidationError(
              'no valid device in the list',
              validated.rejected.slice(0, 1000),
              'IOTDR_CNC_INVALID_DEVICE_LIST',
            );
          return { status: 202, body: await jobs.submit(validated, who(req)) };
        });
      },
    });

    app.get('/v1/onboarding-jobs/:id', {
      config: cnc(READ),
      schema: { tags: ['command and control'], params: uuidParams, response: { 200: jobSchema, ...errors } },
      handler: async (req) => {
        requireOperation(req.principal, 'read');
        const job = await jobs.get(req.params.id);
        return { ...job, keysAvailable: jobs.hasKeys(job.jobId) };
      },
    });

    app.post('/v1/onboarding-jobs/:id/keys', {
      config: cnc(WRITE),
      schema: {
        tags: ['command and control'],
        description:
          'The private keys iotdr made for the job’s devices, with their certificates, by thing name: handed out once, by the region that ran the job, after it finished (410 afterwards).',
        params: uuidParams,
        response: {
          200: z.object({
            jobId: z.string(),
            keys: z.record(
              z.string(),
              z.object({ certificateId: z.string(), certificatePem: z.string(), privateKeyPem: z.string() }),
            ),
          }),
          ...errors,
          410: problemSchema,
        },
      },
      handler: async (req, reply) => {
        requireOperation(req.principal, 'onboard');
        const job = await jobs.get(req.params.id);
        const keys = job.state === 'running' ? undefined : jobs.takeKeys(job.jobId);
        if (!keys)
          return reply
            .code(job.state === 'running' ? 409 : 410)
            .type('application/problem+json')
            .serializer(JSON.stringify)
            .send({
              type: `urn:iotdr:problem:${job.state === 'running' ? 'cnc-job-running' : 'cnc-keys-gone'}`,
              title: job.state === 'running' ? 'Conflict' : 'Gone',
              status: job.state === 'running' ? 409 : 410,
              code: job.state === 'running' ? 'IOTDR_CNC_JOB_RUNNING' : 'IOTDR_CNC_KEYS_GONE',
              detail:
                job.state === 'running'
                  ? 'the job is still running; fetch the keys once it finished'
                  : 'no keys to hand out: they were fetched already, the devices sent CSRs, or another region ran the job',
            });
        return { jobId: job.jobId, keys };
      },
    });
  };
}
