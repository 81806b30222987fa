import { z } from 'zod';
import { CNC_OPERATIONS, ROLES } from '../../http/index.js';
import {
  CA_STATUSES,
  CERTIFICATE_STATUSES,
  certificateIdSchema,
  policyNameSchema,
  policyVersionIdSchema,
  THING_PRINCIPAL_TYPES,
  thingGroupNameSchema,
  thingNameSchema,
  tokenIdSchema,
} from '../model.js';

/** Response and parameter schemas of the management API; they also make /openapi.json. */

const iso = z.string().describe('ISO 8601 time');
const version = z.number().int().describe('entity version, incremented by every write');

export const thingSchema = z
  .object({
    thingName: z.string(),
    thingTypeName: z.string().nullable(),
    attributes: z.record(z.string(), z.string()),
    createdAt: iso,
    updatedAt: iso,
    version,
  })
  .meta({ id: 'Thing' });

export const thingTypeSchema = z
  .object({
    thingTypeName: z.string(),
    description: z.string().nullable(),
    searchableAttributes: z.array(z.string()),
    deprecated: z.boolean(),
    deprecatedAt: iso.nullable(),
    createdAt: iso,
    updatedAt: iso,
    version,
  })
  .meta({ id: 'ThingType' });

export const thingGroupSchema = z
  .object({
    thingGroupName: z.string(),
    parentGroupName: z.string().nullable(),
    description: z.string().nullable(),
    attributes: z.record(z.string(), z.string()),
    createdAt: iso,
    updatedAt: iso,
    version,
  })
  .meta({ id: 'ThingGroup' });

export const policySchema = z
  .object({
    policyName: z.string(),
    defaultVersionId: z.string(),
    versions: z.array(z.object({ versionId: z.string(), document: z.unknown(), createdAt: iso })),
    highestVersionId: z
      .string()
      .optional()
      .describe('the highest version id ever given; a deleted version id is never given again'),
    createdAt: iso,
    updatedAt: iso,
    version,
  })
  .meta({ id: 'Policy' });

export const certificateSchema = z
  .object({
    certificateId: z.string(),
    certificatePem: z.string(),
    status: z.enum(CERTIFICATE_STATUSES),
    caCertificateId: z.string().nullable(),
    subject: z.string(),
    issuer: z.string(),
    serialNumber: z.string(),
    notBefore: iso,
    notAfter: iso,
    createdAt: iso,
    updatedAt: iso,
    version,
  })
  .meta({ id: 'Certificate' });

export const createdCertificateSchema = z
  .object({
    certificate: certificateSchema,
    privateKeyPem: z
      .string()
      .optional()
      .describe('only when iotdr generated the key pair; returned once, never stored'),
    publicKeyPem: z.string().optional(),
  })
  .meta({ id: 'CreatedCertificate' });

export const caCertificateSchema = z
  .object({
    certificateId: z.string(),
    certificatePem: z.string(),
    status: z.enum(CA_STATUSES),
    subject: z.string(),
    notBefore: iso,
    notAfter: iso,
    createdAt: iso,
    updatedAt: iso,
    version,
  })
  .meta({ id: 'CaCertificate' });

export const thingPrincipalSchema = z
  .object({
    thingName: z.string(),
    certificateId: z.string(),
    attachedAt: iso,
    thingPrincipalType: z.enum(THING_PRINCIPAL_TYPES),
    version,
  })
  .meta({ id: 'CertificateAttachment' });
export const policyPrincipalSchema = z
  .object({ certificateId: z.string(), policyName: z.string(), attachedAt: iso, version })
  .meta({ id: 'PolicyAttachment' });
export const groupPolicySchema = z
  .object({ thingGroupName: z.string(), policyName: z.string(), attachedAt: iso, version })
  .meta({ id: 'GroupPolicyAttachment' });
export const groupMemberSchema = z
  .object({ thingGroupName: z.string(), thingName: z.string(), addedAt: iso, version })
  .meta({ id: 'GroupMembership' });

export const tokenSchema = z
  .object({
    tokenId: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    scope: z
      .object({
        operations: z.array(z.string()).optional(),
        thingGroups: z.array(z.string()).optional(),
        templates: z.array(z.string()).optional(),
      })
      .optional()
      .describe(
        'a console token limited to some command-and-control operations, thing groups and onboarding policy templates',
      ),
    createdAt: iso,
    version,
  })
  .meta({ id: 'Token' });
/** Who a bearer token is (GET /v1/whoami): what a process without the registry needs to know of it. */
export const principalSchema = z
  .object({
    name: z.string(),
    role: z.enum(ROLES),
    tokenId: z.string().optional(),
    scope: z
      .object({
        operations: z.array(z.enum(CNC_OPERATIONS)).optional(),
        thingGroups: z.array(z.string()).optional(),
        templates: z.array(z.string()).optional(),
      })
      .optional(),
  })
  .meta({ id: 'Principal' });
export const issuedTokenSchema = z
  .object({ token: z.string().describe('the bearer token; shown this once'), info: tokenSchema })
  .meta({ id: 'IssuedToken' });

export const hlcSchema = z.object({ wall: z.number().int(), counter: z.number().int() });
export const changeSchema = z
  .object({
    seq: z.number().int(),
    id: z.string(),
    kind: z.string(),
    key: z.string(),
    op: z.enum(['upsert', 'delete']),
    ref: z.string().nullable(),
    after: z.record(z.string(), z.unknown()).nullable(),
    version,
    hlc: hlcSchema,
    origin: z.string(),
    committedAt: z.number().int(),
  })
  .meta({ id: 'Change' });

export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().optional() });
}

export const namesSchema = z.object({ items: z.array(z.string()) });

export const pageQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    cursor: z.string().max(2048).optional(),
  })
  .strict();

export const forceQuery = z
  .object({
    force: z.enum(['true', 'false']).optional(),
    expectedVersion: z.coerce.number().int().nonnegative().optional(),
  })
  .strict();

export const versionQuery = z
  .object({ expectedVersion: z.coerce.number().int().nonnegative().optional() })
  .strict();

/** Changes one GET /v1/changes returns at most (`limit`), and its longest long poll (`wait`, ms). */
export const CHANGES_PAGE = { min: 1, max: 10_000 } as const;
export const CHANGES_WAIT_MS = { min: 0, max: 30_000 } as const;

export const changesQuery = z
  .object({
    after: z.coerce.number().int().nonnegative().default(0),
    limit: z.coerce.number().int().min(CHANGES_PAGE.min).max(CHANGES_PAGE.max).default(1000),
    wait: z.coerce
      .number()
      .int()
      .min(CHANGES_WAIT_MS.min)
      .max(CHANGES_WAIT_MS.max)
      .default(0)
      .describe('long-poll up to this many ms'),
    origin: z.string().max(63).optional().describe('only changes first made in this region'),
  })
  .strict();

export const thingParams = z.object({ name: thingNameSchema }).strict();
export const groupParams = z.object({ name: thingGroupNameSchema }).strict();
export const policyParams = z.object({ name: policyNameSchema }).strict();
export const certificateParams = z.object({ id: certificateIdSchema }).strict();
export const tokenParams = z.object({ id: tokenIdSchema }).strict();
export const thingCertificateParams = z.object({ name: thingNameSchema, id: certificateIdSchema }).strict();
export const certificatePolicyParams = z
  .object({ id: certificateIdSchema, policy: policyNameSchema })
  .strict();
export const groupThingParams = z.object({ group: thingGroupNameSchema, thing: thingNameSchema }).strict();
export const groupPolicyParams = z.object({ group: thingGroupNameSchema, policy: policyNameSchema }).strict();
export const policyVersionParams = z
  .object({ name: policyNameSchema, versionId: policyVersionIdSchema })
  .strict();

export const entitySchema = z
  .object({
    kind: z.string(),
    key: z.string(),
    ref: z.string().nullable(),
    doc: z.record(z.string(), z.unknown()).nullable(),
    version,
    hlc: hlcSchema,
    origin: z.string(),
    deleted: z.boolean(),
    updatedAt: z.number().int(),
  })
  .meta({ id: 'Entity' });
