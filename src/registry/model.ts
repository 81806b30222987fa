import { z } from 'zod';
import { CNC_OPERATIONS, ROLES, type Role, type TokenScope } from '../http/index.js';

/**
 * The registry's entities and request bodies, with AWS IoT Core's naming rules so that names carry
 * across unchanged. Entities are stored as JSON documents by (kind, key); attachments are entities
 * too, keyed `left|right` ('|' is allowed in no name, so keys are unambiguous).
 *
 * These are the registry's own kinds. It also stores kinds other components declare and register
 * with it (topic rules in src/rules, command-and-control documents in src/commands: kinds.ts).
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
  /** thing group → policy (the group's things inherit it); key `group|policy`, ref policy. */
  groupPolicy: 'thing-group-policy',
  token: 'token',
  /** MQTT password of one thing on the broker's token listener; key thing name, ref null. */
  deviceToken: 'device-token',
  /** The classic device shadow of one thing (service/shadows.ts); key thing name, ref null. */
  shadow: 'shadow',
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

/**
 * A token's scope as stored and as the API takes it; its shape is the HTTP toolkit's `TokenScope`,
 * which every route that authenticates sees on the principal.
 */
export const tokenScopeSchema = z
  .object({
    operations: z.array(z.enum(CNC_OPERATIONS)).min(1).max(CNC_OPERATIONS.length).optional(),
    thingGroups: z.array(thingGroupNameSchema).min(1).max(100).optional(),
    templates: z.array(policyNameSchema).min(1).max(100).optional(),
  })
  .strict()
  .refine((s) => s.operations !== undefined || s.thingGroups !== undefined || s.templates !== undefined, {
    message: 'a scope names at least one of operations, thingGroups, templates',
  });
// The schema parses into exactly the toolkit's shape: this fails to compile if either gains a field.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
export type _ScopeMatchesToolkit = Assert<Same<z.output<typeof tokenScopeSchema>, TokenScope>>;

export const CERTIFICATE_STATUSES = ['ACTIVE', 'INACTIVE', 'REVOKED', 'PENDING_ACTIVATION'] as const;
export const certificateStatusSchema = z.enum(CERTIFICATE_STATUSES);
export type CertificateStatus = z.infer<typeof certificateStatusSchema>;
export const CA_STATUSES = ['ACTIVE', 'INACTIVE'] as const;
export const caStatusSchema = z.enum(CA_STATUSES);

export const roleSchema = z.enum(ROLES);

/** AWS IoT allows a thing in at most 10 static groups. */
export const MAX_GROUPS_PER_THING = 10;
/**
 * Versions a policy may have, as in AWS IoT (CreatePolicyVersion): a sixth is refused with
 * IOTDR_REGISTRY_POLICY_VERSIONS_LIMIT until a version other than the default is deleted.
 */
export const MAX_POLICY_VERSIONS = 5;
/** Policies attached to one thing group; AWS IoT attaches at most 10 policies to one target. */
export const MAX_GROUP_POLICIES = 10;

/**
 * How a certificate is attached to a thing (AWS IoT AttachThingPrincipal `thingPrincipalType`).
 * EXCLUSIVE_THING: the thing is the certificate's only thing, and a connection with the certificate
 * acts as it whatever its client id. NON_EXCLUSIVE_THING (the default): the certificate may have
 * other things, and a connection acts as the one whose name is its client id.
 */
export const THING_PRINCIPAL_TYPES = ['EXCLUSIVE_THING', 'NON_EXCLUSIVE_THING'] as const;
export const thingPrincipalTypeSchema = z.enum(THING_PRINCIPAL_TYPES);
export type ThingPrincipalType = z.infer<typeof thingPrincipalTypeSchema>;
export const DEFAULT_THING_PRINCIPAL_TYPE: ThingPrincipalType = 'NON_EXCLUSIVE_THING';
/** AWS IoT's policyVersionId: digits; iotdr gives 1, 2, 3… and never gives one again. */
export const policyVersionIdSchema = z.string().regex(/^[1-9][0-9]{0,9}$/, 'a version number: 1, 2, 3…');

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
  /**
   * The highest version id ever given, so that a deleted version's id is never given again. Absent
   * in documents written before versions could be deleted: the highest in `versions` then.
   */
  highestVersionId?: string;
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
  /** Absent in attachments stored before the type existed: they are NON_EXCLUSIVE_THING. */
  thingPrincipalType?: ThingPrincipalType;
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

export interface GroupPolicyDoc {
  thingGroupName: string;
  policyName: string;
  attachedAt: string;
}

export interface TokenDoc {
  tokenId: string;
  name: string;
  role: Role;
  /** SHA-256 (hex) of the token's secret part; the secret itself is never stored. */
  secretHash: string;
  createdAt: string;
  /** Limits a console token to some command-and-control operations and thing groups. */
  scope?: TokenScope;
}

export interface DeviceTokenDoc {
  thingName: string;
  /** SHA-256 (hex) of the token; the token itself is returned once and never stored. */
  secretHash: string;
  /** Policies a session with this token is evaluated against, in this order. */
  policyNames: string[];
  createdAt: string;
}

/** AWS IoT attaches at most 10 policies to one principal. */
export const MAX_DEVICE_TOKEN_POLICIES = 10;

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

/** Sets which version of a policy decides (AWS IoT SetDefaultPolicyVersion). */
export const patchPolicyBody = z
  .object({
    defaultVersionId: policyVersionIdSchema,
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict();

/** AttachThingPrincipal takes the type in the query string, as AWS IoT's API does. */
export const attachCertificateQuery = z
  .object({ thingPrincipalType: thingPrincipalTypeSchema.optional() })
  .strict();

/**
 * The target of AWS IoT's AttachPolicy and DetachPolicy: a thing group's or a certificate's ARN,
 * or a thing group's name. Region and account in an ARN are not checked: a name means the same in
 * every region of the fleet.
 */
export type PolicyTarget = { kind: 'thing-group'; name: string } | { kind: 'certificate'; id: string };

const TARGET_ARN = /^arn:[^:]+:iot:[^:]*:[^:]*:(thinggroup|cert)\/(.+)$/;

export const policyTargetSchema = z
  .string()
  .min(1)
  .max(2048)
  .transform((target, ctx): PolicyTarget => {
    const arn = TARGET_ARN.exec(target);
    const [resource, name] = arn ? [arn[1], arn[2] ?? ''] : ['thinggroup', target];
    const parsed =
      resource === 'cert' ? certificateIdSchema.safeParse(name) : thingGroupNameSchema.safeParse(name);
    if (!parsed.success) {
      ctx.addIssue({
        code: 'custom',
        message:
          'a thing group name, or the ARN of a thing group (arn:aws:iot:REGION:ACCOUNT:thinggroup/NAME) or of a certificate (…:cert/ID)',
      });
      return z.NEVER;
    }
    return resource === 'cert' ? { kind: 'certificate', id: name } : { kind: 'thing-group', name };
  });

export const targetPolicyBody = z.object({ target: policyTargetSchema }).strict();

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
    scope: tokenScopeSchema.optional(),
  })
  .strict();

export const createDeviceTokenBody = z
  .object({
    policyNames: z
      .array(policyNameSchema)
      .min(1, 'at least one policy')
      .max(MAX_DEVICE_TOKEN_POLICIES, `at most ${MAX_DEVICE_TOKEN_POLICIES} policies`)
      .refine((names) => new Set(names).size === names.length, 'each policy at most once'),
  })
  .strict();
