import { z } from 'zod';

/**
 * The registry's entities and request bodies, with AWS IoT Core's naming rules so that names carry
 * across unchanged. Entities are stored as JSON documents by (kind, key); attachments are entities
 * too, keyed `left|right` ('|' is allowed in no name, so keys are unambiguous).
 */

export const KIND = {
  thing: 'thing',
  thingType: 'thing-type',
  thingGroup: 'thing-group',
  certificate: 'certificate',
  caCertificate: 'ca-certificate',
  policy: 'policy',
  /** thing → certificate (a principal); key `thing|certificateId`, ref certificateId. */
  thingPrincipal: 'thing-principal',
  /** certificate → policy; key `certificateId|policy`, ref policy. */
  policyPrincipal: 'policy-principal',
  /** static group membership; key `group|thing`, ref thing. */
  groupMember: 'thing-group-member',
  token: 'token',
} as const;

export type Kind = (typeof KIND)[keyof typeof KIND];

// AWS IoT: thing, thing type and thing group names are [a-zA-Z0-9:_-]+, 1..128.
export const thingNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9:_-]{1,128}$/, '1 to 128 characters from a-z A-Z 0-9 : _ -');
export const thingTypeNameSchema = thingNameSchema;
export const thingGroupNameSchema = thingNameSchema;
// AWS IoT: policy names are [\w+=,.@-]+, 1..128.
export const policyNameSchema = z
  .string()
  .regex(/^[\w+=,.@-]{1,128}$/, '1 to 128 characters from a-z A-Z 0-9 _ + = , . @ -');
export const certificateIdSchema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'the SHA-256 fingerprint of the certificate: 64 lowercase hex characters');
export const tokenIdSchema = z.string().regex(/^[0-9a-f]{16}$/, '16 lowercase hex characters');

const attributeNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_.,@/:#-]{1,128}$/, '1 to 128 characters from a-z A-Z 0-9 _ . , @ / : # -');
const attributeValueSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_.,@/:#=[\]-]{0,800}$/, 'up to 800 characters from a-z A-Z 0-9 _ . , @ / : # = [ ] -');
export const attributesSchema = z
  .record(attributeNameSchema, attributeValueSchema)
  .refine((a) => Object.keys(a).length <= 50, 'at most 50 attributes');
export const descriptionSchema = z.string().max(2028, 'at most 2028 characters');

export const CERTIFICATE_STATUSES = ['ACTIVE', 'INACTIVE', 'REVOKED', 'PENDING_ACTIVATION'] as const;
export const certificateStatusSchema = z.enum(CERTIFICATE_STATUSES);
export type CertificateStatus = z.infer<typeof certificateStatusSchema>;
export const CA_STATUSES = ['ACTIVE', 'INACTIVE'] as const;
export const caStatusSchema = z.enum(CA_STATUSES);

export const ROLES = ['admin', 'operator', 'reader', 'replicator'] as const;
export const roleSchema = z.enum(ROLES);
export type Role = z.infer<typeof roleSchema>;

/** AWS IoT allows a thing in at most 10 static groups. */
export const MAX_GROUPS_PER_THING = 10;
/** Policy versions kept; the oldest non-default version is pruned past this (AWS IoT keeps 5). */
export const MAX_POLICY_VERSIONS = 5;

// Stored documents. The entity's version lives beside the document in the store and is added to
// every API response.

export interface ThingDoc {
  thingName: string;
  thingTypeName: string | null;
  attributes: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface ThingTypeDoc {
  thingTypeName: string;
  description: string | null;
  searchableAttributes: string[];
  deprecated: boolean;
  deprecatedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface ThingGroupDoc {
  thingGroupName: string;
  parentGroupName: string | null;
  description: string | null;
  attributes: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface PolicyVersionDoc {
  versionId: string;
  document: unknown;
  createdAt: string;
}

export interface PolicyDoc {
  policyName: string;
  defaultVersionId: string;
  versions: PolicyVersionDoc[];
  createdAt: string;
  updatedAt: string;
}

export interface CertificateDoc {
  certificateId: string;
  certificatePem: string;
  status: CertificateStatus;
  /** The registered CA that signed it, or null for a certificate registered on its own. */
  caCertificateId: string | null;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  createdAt: string;
  updatedAt: string;
}

export interface CaCertificateDoc {
  certificateId: string;
  certificatePem: string;
  status: 'ACTIVE' | 'INACTIVE';
  subject: string;
  notBefore: string;
  notAfter: string;
  createdAt: string;
  updatedAt: string;
}

export interface ThingPrincipalDoc {
  thingName: string;
  certificateId: string;
  attachedAt: string;
}

export interface PolicyPrincipalDoc {
  certificateId: string;
  policyName: string;
  attachedAt: string;
}

export interface GroupMemberDoc {
  thingGroupName: string;
  thingName: string;
  addedAt: string;
}

export interface TokenDoc {
  tokenId: string;
  name: string;
  role: Role;
  /** SHA-256 (hex) of the token's secret part; the secret itself is never stored. */
  secretHash: string;
  createdAt: string;
}

// Request bodies (strict: unknown fields are refused).

export const putThingBody = z
  .object({
    thingTypeName: thingTypeNameSchema.nullable().optional(),
    attributes: attributesSchema.optional(),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const putThingTypeBody = z
  .object({
    description: descriptionSchema.nullable().optional(),
    searchableAttributes: z.array(attributeNameSchema).max(3, 'at most 3 searchable attributes').optional(),
    deprecated: z.boolean().optional(),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const putThingGroupBody = z
  .object({
    parentGroupName: thingGroupNameSchema.nullable().optional(),
    description: descriptionSchema.nullable().optional(),
    attributes: attributesSchema.optional(),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const putPolicyBody = z
  .object({
    /** The policy document, as a JSON object or as a JSON string (as AWS IoT takes it). */
    policyDocument: z.union([z.string(), z.record(z.string(), z.unknown())]),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

const pemSchema = z.string().min(1).max(16_384, 'at most 16384 characters');

export const createCertificateBody = z
  .object({
    csr: pemSchema.optional(),
    status: certificateStatusSchema.optional(),
  })
  .strict();

export const registerCertificateBody = z
  .object({
    certificatePem: pemSchema,
    caCertificatePem: pemSchema.optional(),
    status: certificateStatusSchema.optional(),
  })
  .strict();

export const registerCaCertificateBody = z
  .object({
    caCertificatePem: pemSchema,
    status: caStatusSchema.optional(),
  })
  .strict();

export const patchCertificateBody = z
  .object({
    status: certificateStatusSchema,
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const patchCaCertificateBody = z
  .object({
    status: caStatusSchema,
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

export const createTokenBody = z
  .object({
    name: z.string().regex(/^[a-zA-Z0-9_.:@-]{1,64}$/, '1 to 64 characters from a-z A-Z 0-9 _ . : @ -'),
    role: roleSchema,
  })
  .strict();
