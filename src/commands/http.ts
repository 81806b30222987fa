/**
 * The command-and-control API (served on each region's `cnc` listener, under `api.<zone>`):
 * onboarding one device or a list, suspend, resume, decommission, commands. Operator role; console
 * tokens may be scoped to operations and thing groups. Every mutating route takes an
 * `Idempotency-Key`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { NotFoundError, ValidationError } from '../common/index.js';
import { READ, routeOf, type SuccessOf, WRITE } from '../http/index.js';
import type { RegistryService } from '../registry/index.js';
import type { CommandService } from './commands.js';
import { CNC_ROUTES } from './contracts.js';
import { decommissionDevice, onboardDevice, resumeDevice, suspendDevice } from './devices.js';
import {
  InvalidDeviceListError,
  JobRunningError,
  KeysExpiredError,
  KeysGoneError,
  UnknownDeviceError,
} from './errors.js';
import type { IdempotencyStore } from './idempotency.js';
import { type JobService, jobInputFromCsv, jobInputFromJson, publicJob, validateJob } from './jobs.js';
import {
  requireDeviceInScope,
  requireGroupsInScope,
  requireJobInScope,
  requireOperation,
  requireTemplateInScope,
} from './scope.js';

const cnc = (roles: typeof READ) => ({ roles, scoped: true });
/** Largest CSV body, bytes (10,000 devices with CSRs fit). */
export const MAX_BULK_BODY_BYTES = 32 * 1024 * 1024;

function who(request: FastifyRequest): string {
  return request.principal?.name ?? 'unknown';
}

/** The token a job's keys are kept for: its id (names are not unique), its name for a static token. */
function owner(request: FastifyRequest): string {
  const principal = request.principal;
  return principal?.tokenId ?? `name:${principal?.name ?? 'unknown'}`;
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

    app.route({
      ...routeOf(CNC_ROUTES.onboard),
      config: cnc(WRITE),
      handler: async (req, reply) => {
        requireOperation(req.principal, 'onboard');
        requireTemplateInScope(req.principal, req.body.template);
        requireGroupsInScope(req.principal, req.body.groups);
        return idempotency.run(req, reply, async () => ({
          status: 201,
          body: await onboardDevice(service, req.body),
        }));
      },
    });

    app.route({
      ...routeOf(CNC_ROUTES.device),
      config: cnc(READ),
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
        const state: SuccessOf<typeof CNC_ROUTES.device>['state'] = active
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

    for (const [contract, operation, run] of [
      [CNC_ROUTES.suspend, 'suspend', suspendDevice],
      [CNC_ROUTES.resume, 'resume', resumeDevice],
    ] as const) {
      app.route({
        ...routeOf(contract),
        config: cnc(WRITE),
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

    app.route({
      ...routeOf(CNC_ROUTES.decommission),
      config: cnc(WRITE),
      handler: async (req, reply) => {
        requireOperation(req.principal, 'decommission');
        await requireDeviceInScope(service, req.principal, req.params.thing);
        return idempotency.run(req, reply, async () => ({
          status: 200,
          body: await decommissionDevice(service, req.params.thing),
        }));
      },
    });

    app.route({
      ...routeOf(CNC_ROUTES.issueCommand),
      config: cnc(WRITE),
      handler: async (req, reply) => {
        requireOperation(req.principal, 'command');
        await requireDeviceInScope(service, req.principal, req.params.thing);
        return idempotency.run(req, reply, async () => ({
          status: 201,
          body: await commands.issue(req.params.thing, req.body, who(req)),
        }));
      },
    });

    app.route({
      ...routeOf(CNC_ROUTES.commands),
      config: cnc(READ),
      handler: async (req) => {
        requireOperation(req.principal, 'read');
        await requireDeviceInScope(service, req.principal, req.params.thing);
        return { items: await commands.list(req.params.thing, req.query.limit) };
      },
    });

    app.route({
      ...routeOf(CNC_ROUTES.command),
      config: cnc(READ),
      handler: async (req) => {
        requireOperation(req.principal, 'read');
        const command = await commands.get(req.params.id);
        await requireDeviceInScope(service, req.principal, command.thingName);
        return command;
      },
    });

    app.route({
      ...routeOf(CNC_ROUTES.submitJob),
      config: cnc(WRITE),
      bodyLimit: MAX_BULK_BODY_BYTES,
      handler: async (req, reply) => {
        requireOperation(req.principal, 'onboard');
        const csv = (req.headers['content-type'] ?? '').startsWith('text/csv');
        const input = csv ? jobInputFromCsv(String(req.body ?? ''), req.query) : jobInputFromJson(req.body);
        requireTemplateInScope(req.principal, input.template);
        if (!csv && (req.query.template !== undefined || req.query.groups !== undefined))
          throw new ValidationError('with a JSON body, say template and groups in the body', [
            { path: 'querystring', message: 'template and groups go in the JSON body' },
          ]);
        const partial = input.partial || req.query.partial;
        return idempotency.run(req, reply, async () => {
          const validated = await validateJob(service, { ...input, partial });
          for (const row of validated.accepted) requireGroupsInScope(req.principal, row.device.groups);
          if (validated.rejected.length > 0 && !partial) {
            throw new InvalidDeviceListError(
              `${validated.rejected.length} line(s) of the device list are not valid; nothing was onboarded (send partial=true to onboard the valid ones): ${validated.rejected
                .slice(0, 10)
                .map((r) => `${r.path}: ${r.message}`)
                .join('; ')}`,
              validated.rejected.slice(0, 1000),
            );
          }
          if (validated.accepted.length === 0)
            throw new InvalidDeviceListError(
              'no valid device in the list',
              validated.rejected.slice(0, 1000),
            );
          return { status: 202, body: publicJob(await jobs.submit(validated, who(req), owner(req))) };
        });
      },
    });

    app.route({
      ...routeOf(CNC_ROUTES.job),
      config: cnc(READ),
      handler: async (req) => {
        requireOperation(req.principal, 'read');
        await jobs.expireKeys();
        const job = await jobs.get(req.params.id);
        requireJobInScope(req.principal, job, owner(req));
        return { ...publicJob(job), keysAvailable: jobs.hasKeys(job.jobId, owner(req)) };
      },
    });

    app.route({
      ...routeOf(CNC_ROUTES.takeKeys),
      config: cnc(WRITE),
      handler: async (req) => {
        requireOperation(req.principal, 'onboard');
        await jobs.expireKeys();
        const job = await jobs.get(req.params.id);
        requireJobInScope(req.principal, job, owner(req));
        if (job.state === 'running') throw new JobRunningError(job.jobId);
        const keys = jobs.takeKeys(job.jobId, owner(req));
        if (!keys)
          throw job.keysExpiredAt
            ? new KeysExpiredError(job.jobId, job.keysExpiredAt)
            : new KeysGoneError(job.jobId);
        return { jobId: job.jobId, keys };
      },
    });
  };
}
