/**
 * The command-and-control API as route contracts: cncRoutes registers them, `iotdr devices`, the
 * fleet and the drill call them.
 */
import { z } from 'zod';
import { defineRoute, type Expect, problemAnswers, problemSchema, type SameType } from '../http/index.js';
import { CERTIFICATE_STATUSES, thingNameSchema } from '../registry/index.js';
import { issueCommandBody } from './commands.js';
import type { Decommissioned, DeviceCertificates, OnboardedDevice } from './devices.js';
import { onboardBody } from './devices.js';
import { commandDocSchema, onboardingJobDocSchema } from './documents.js';
import { jobQuerySchema } from './jobs.js';

const TAGS = ['command and control'];
const errors = problemAnswers(400, 401, 403, 404, 409, 422);
const thingParams = z.object({ thing: thingNameSchema }).strict();
const uuidParams = z.object({ id: z.uuid() }).strict();

const commandSchema = commandDocSchema.extend({ version: z.number().int() }).meta({ id: 'Command' });
const submittedJobSchema = onboardingJobDocSchema.omit({ owner: true }).extend({ version: z.number().int() });
const jobSchema = submittedJobSchema
  .extend({
    keysAvailable: z
      .boolean()
      .describe(
        'private keys made by iotdr wait here for this token (the one that submitted the job), to be fetched once',
      ),
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
const onboardedSchema = z
  .object({
    thingName: z.string(),
    template: z.string(),
    groups: z.array(z.string()),
    certificateId: z.string(),
    certificatePem: z.string(),
    privateKeyPem: z.string().optional().describe('only when iotdr made the key pair: shown this once'),
    privateKeyWithheld: z
      .literal(true)
      .optional()
      .describe('an Idempotency-Key retry: the key was made and shown by the first answer'),
  })
  .meta({ id: 'OnboardedDevice' });
const deviceCertificatesSchema = z
  .object({
    thingName: z.string(),
    certificates: z.array(z.object({ certificateId: z.string(), status: z.enum(CERTIFICATE_STATUSES) })),
  })
  .meta({ id: 'DeviceCertificates' });
const decommissionedSchema = z
  .object({
    thingName: z.string(),
    certificates: z.array(z.string()).describe('certificates deleted (attached to no other thing)'),
    sharedCertificates: z.array(z.string()).describe('certificates kept: another thing uses them too'),
    groups: z.array(z.string()),
    shadow: z.boolean(),
    deviceToken: z.boolean(),
    commands: z.number().int().describe('commands of the device removed'),
  })
  .meta({ id: 'Decommissioned' });

// devices.ts documents these answers; this fails to compile when a schema and its type drift apart.
export type _OnboardedMatches = Expect<
  SameType<Omit<z.output<typeof onboardedSchema>, 'privateKeyWithheld'>, OnboardedDevice>
>;
export type _CertificatesMatch = Expect<
  SameType<z.output<typeof deviceCertificatesSchema>, DeviceCertificates>
>;
export type _DecommissionedMatches = Expect<SameType<z.output<typeof decommissionedSchema>, Decommissioned>>;

/** Bulk onboarding takes a CSV list (text/csv, sent raw) or a JSON one the handler validates. */
const jobBody = z.union([
  z.string().describe('CSV: header thingName,groups,csr,attributes,thingTypeName'),
  z.looseObject({}).describe('JSON: {template, groups, partial, devices: [...]}'),
]);

export const CNC_ROUTES = {
  onboard: defineRoute({
    method: 'POST',
    url: '/v1/devices',
    tags: TAGS,
    description:
      'Onboard one device: thing, certificate (from `csr`, or a key pair made here whose key is returned this once), the template policy, groups.',
    body: onboardBody,
    responses: { 201: onboardedSchema, ...errors },
  }),
  device: defineRoute({
    method: 'GET',
    url: '/v1/devices/:thing',
    tags: TAGS,
    params: thingParams,
    responses: { 200: deviceSchema, ...errors },
  }),
  suspend: defineRoute({
    method: 'POST',
    url: '/v1/devices/:thing/suspend',
    tags: TAGS,
    description:
      'Every certificate of the device INACTIVE: its sessions are closed in every region as the change replicates.',
    params: thingParams,
    responses: { 200: deviceCertificatesSchema, ...errors },
  }),
  resume: defineRoute({
    method: 'POST',
    url: '/v1/devices/:thing/resume',
    tags: TAGS,
    description: 'Every INACTIVE certificate of the device ACTIVE again (REVOKED ones stay revoked).',
    params: thingParams,
    responses: { 200: deviceCertificatesSchema, ...errors },
  }),
  decommission: defineRoute({
    method: 'DELETE',
    url: '/v1/devices/:thing',
    tags: TAGS,
    description:
      'Decommission: its certificates (unless another thing uses them), memberships, shadow, broker token and commands, then the thing. Policies and groups are shared and kept.',
    params: thingParams,
    responses: { 200: decommissionedSchema, ...errors },
  }),
  issueCommand: defineRoute({
    method: 'POST',
    url: '/v1/devices/:thing/commands',
    tags: TAGS,
    description: `Send a command: delivered on $iotdr/things/{thing}/commands (the id in the payload) by the region the device is connected to; the device answers on .../{id}/reply.`,
    params: thingParams,
    body: issueCommandBody,
    responses: { 201: commandSchema, ...errors },
  }),
  commands: defineRoute({
    method: 'GET',
    url: '/v1/devices/:thing/commands',
    tags: TAGS,
    params: thingParams,
    query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict(),
    responses: { 200: z.object({ items: z.array(commandSchema) }), ...errors },
  }),
  command: defineRoute({
    method: 'GET',
    url: '/v1/commands/:id',
    tags: TAGS,
    params: uuidParams,
    responses: { 200: commandSchema, ...errors },
  }),
  submitJob: defineRoute({
    method: 'POST',
    url: '/v1/onboarding-jobs',
    tags: TAGS,
    description:
      'Bulk onboarding: a JSON body `{template, groups, partial, devices: [...]}` or a CSV body (text/csv, header `thingName,groups,csr,attributes,thingTypeName`, `?template=&groups=&partial=`). The whole list is validated first: any bad line refuses it all (400, every line and field named) unless partial=true. 202 with the job.',
    query: jobQuerySchema,
    body: jobBody,
    responses: { 202: submittedJobSchema, ...errors },
  }),
  job: defineRoute({
    method: 'GET',
    url: '/v1/onboarding-jobs/:id',
    tags: TAGS,
    params: uuidParams,
    responses: { 200: jobSchema, ...errors },
  }),
  takeKeys: defineRoute({
    method: 'POST',
    url: '/v1/onboarding-jobs/:id/keys',
    tags: TAGS,
    description:
      'The private keys iotdr made for the job’s devices, with their certificates, by thing name: handed out once, to the token that submitted the job (404 for another), by the region that ran the job, after it finished (410 afterwards, and once they expired unfetched).',
    params: uuidParams,
    responses: {
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
  }),
} as const;
