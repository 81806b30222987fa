import { z } from 'zod';
import { ValidationError } from '../common/index.js';
import { cncKeySchemas, commandDocSchema, idempotencyDocSchema, onboardingJobDocSchema } from './cnc.js';
import {
  attributesSchema,
  CA_STATUSES,
  CERTIFICATE_STATUSES,
  certificateIdSchema,
  KIND,
  MAX_DEVICE_TOKEN_POLICIES,
  policyNameSchema,
  roleSchema,
  ruleNameSchema,
  thingGroupNameSchema,
  thingNameSchema,
  thingTypeNameSchema,
  tokenIdSchema,
  tokenScopeSchema,
  topicRuleDocSchema,
} from './model.js';
import { parsePolicyDocument } from './policy/index.js';
import { SHADOW_MAX_CLIENT_TOKEN_BYTES, type ShadowDoc, shadowDocProblem } from './service/shadows.js';

/**
 * Checks an entity that arrives from outside this region's service (a replicated change, a
 * snapshot): its kind is known, its key and ref fit its document, and the document has the stored
 * shape. A change that fails here is never applied; replication dead-letters it with the reason.
 */

const iso = z.string().min(1);
const nullableString = z.string().nullable();

const docSchemas: Record<string, z.ZodType<Record<string, unknown>>> = {
  [KIND.thing]: z
    .object({
      thingName: thingNameSchema,
      thingTypeName: thingTypeNameSchema.nullable(),
      attributes: attributesSchema,
      createdAt: iso,
      updatedAt: iso,
    })
    .strict(),
  [KIND.thingType]: z
    .object({
      thingTypeName: thingTypeNameSchema,
      description: nullableString,
      searchableAttributes: z.array(z.string()),
      deprecated: z.boolean(),
      deprecatedAt: nullableString,
      createdAt: iso,
      updatedAt: iso,
    })
    .strict(),
  [KIND.thingGroup]: z
    .object({
      thingGroupName: thingGroupNameSchema,
      parentGroupName: thingGroupNameSchema.nullable(),
      description: nullableString,
      attributes: attributesSchema,
      createdAt: iso,
      updatedAt: iso,
    })
    .strict(),
  [KIND.policy]: z
    .object({
      policyName: policyNameSchema,
      defaultVersionId: z.string().min(1),
      versions: z
        .array(z.object({ versionId: z.string().min(1), document: z.unknown(), createdAt: iso }).strict())
        .min(1),
      createdAt: iso,
      updatedAt: iso,
    })
    .strict(),
  [KIND.certificate]: z
    .object({
      certificateId: certificateIdSchema,
      certificatePem: z.string().min(1),
      status: z.enum(CERTIFICATE_STATUSES),
      caCertificateId: certificateIdSchema.nullable(),
      subject: z.string(),
      issuer: z.string(),
      serialNumber: z.string(),
      notBefore: iso,
      notAfter: iso,
      createdAt: iso,
      updatedAt: iso,
    })
    .strict(),
  [KIND.caCertificate]: z
    .object({
      certificateId: certificateIdSchema,
      certificatePem: z.string().min(1),
      status: z.enum(CA_STATUSES),
      subject: z.string(),
      notBefore: iso,
      notAfter: iso,
      createdAt: iso,
      updatedAt: iso,
    })
    .strict(),
  [KIND.thingPrincipal]: z
    .object({ thingName: thingNameSchema, certificateId: certificateIdSchema, attachedAt: iso })
    .strict(),
  [KIND.policyPrincipal]: z
    .object({ certificateId: certificateIdSchema, policyName: policyNameSchema, attachedAt: iso })
    .strict(),
  [KIND.groupMember]: z
    .object({ thingGroupName: thingGroupNameSchema, thingName: thingNameSchema, addedAt: iso })
    .strict(),
  [KIND.token]: z
    .object({
      tokenId: tokenIdSchema,
      name: z.string().min(1).max(64),
      role: roleSchema,
      secretHash: z.string().regex(/^[0-9a-f]{64}$/),
      createdAt: iso,
      scope: tokenScopeSchema.optional(),
    })
    .strict(),
  [KIND.deviceToken]: z
    .object({
      thingName: thingNameSchema,
      secretHash: z.string().regex(/^[0-9a-f]{64}$/),
      policyNames: z.array(policyNameSchema).min(1).max(MAX_DEVICE_TOKEN_POLICIES),
      createdAt: iso,
    })
    .strict(),
  [KIND.topicRule]: topicRuleDocSchema,
  [KIND.shadow]: shadowDocSchema(),
  [KIND.command]: commandDocSchema,
  [KIND.idempotency]: idempotencyDocSchema,
  [KIND.onboardingJob]: onboardingJobDocSchema,
};

/** The stored shadow's shape; its contents (depth, size, keys) are checked by shadowDocProblem. */
function shadowDocSchema() {
  const sections = z
    .object({
      desired: z.record(z.string(), z.unknown()).optional(),
      reported: z.record(z.string(), z.unknown()).optional(),
    })
    .strict();
  return z
    .object({
      thingName: thingNameSchema,
      state: sections,
      metadata: sections,
      timestamp: z.number().int().nonnegative(),
      clientToken: z.string().min(1).max(SHADOW_MAX_CLIENT_TOKEN_BYTES).nullable(),
      previous: z
        .object({ state: sections, metadata: sections, version: z.number().int().positive() })
        .strict()
        .nullable(),
    })
    .strict();
}

/** What key and ref a document implies, per kind. */
function identity(kind: string, doc: Record<string, unknown>): { key: string; ref: string | null } {
  const s = (field: string) => doc[field] as string;
  const n = (field: string) => (doc[field] ?? null) as string | null;
  switch (kind) {
    case KIND.thing:
      return { key: s('thingName'), ref: n('thingTypeName') };
    case KIND.thingType:
      return { key: s('thingTypeName'), ref: null };
    case KIND.thingGroup:
      return { key: s('thingGroupName'), ref: n('parentGroupName') };
    case KIND.policy:
      return { key: s('policyName'), ref: null };
    case KIND.certificate:
      return { key: s('certificateId'), ref: n('caCertificateId') };
    case KIND.caCertificate:
      return { key: s('certificateId'), ref: null };
    case KIND.thingPrincipal:
      return { key: `${s('thingName')}|${s('certificateId')}`, ref: s('certificateId') };
    case KIND.policyPrincipal:
      return { key: `${s('certificateId')}|${s('policyName')}`, ref: s('policyName') };
    case KIND.groupMember:
      return { key: `${s('thingGroupName')}|${s('thingName')}`, ref: s('thingName') };
    case KIND.deviceToken:
      return { key: s('thingName'), ref: null };
    case KIND.topicRule:
      return { key: s('name'), ref: null };
    case KIND.shadow:
      return { key: s('thingName'), ref: null };
    case KIND.command:
      return { key: s('commandId'), ref: s('thingName') };
    case KIND.idempotency:
      return { key: s('id'), ref: null };
    case KIND.onboardingJob:
      return { key: s('jobId'), ref: null };
    default:
      return { key: s('tokenId'), ref: s('role') };
  }
}

/** Key formats of each kind, for deletes (which carry no document). */
const keySchemas: Record<string, z.ZodType<string>> = {
  [KIND.thing]: thingNameSchema,
  [KIND.thingType]: thingTypeNameSchema,
  [KIND.thingGroup]: thingGroupNameSchema,
  [KIND.policy]: policyNameSchema,
  [KIND.certificate]: certificateIdSchema,
  [KIND.caCertificate]: certificateIdSchema,
  [KIND.thingPrincipal]: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}\|[0-9a-f]{64}$/),
  [KIND.policyPrincipal]: z.string().regex(/^[0-9a-f]{64}\|[\w+=,.@-]{1,128}$/),
  [KIND.groupMember]: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}\|[a-zA-Z0-9:_-]{1,128}$/),
  [KIND.token]: tokenIdSchema,
  [KIND.deviceToken]: thingNameSchema,
  [KIND.topicRule]: ruleNameSchema,
  [KIND.shadow]: thingNameSchema,
  [KIND.command]: cncKeySchemas.command,
  [KIND.idempotency]: cncKeySchemas.idempotency,
  [KIND.onboardingJob]: cncKeySchemas.job,
};

/** Kinds the registry knows; anything else is not applied. */
export const ENTITY_KINDS: readonly string[] = Object.keys(docSchemas);

/**
 * Why this entity cannot be applied, or undefined when it can. `doc` is null for a delete.
 */
export function entityProblem(
  kind: string,
  key: string,
  ref: string | null,
  doc: unknown,
): string | undefined {
  const keySchema = keySchemas[kind];
  const docSchema = docSchemas[kind];
  if (!keySchema || !docSchema) return `unknown kind '${kind}'`;
  if (!keySchema.safeParse(key).success) return `key '${key}' is not a valid ${kind} key`;
  if (doc === null) return undefined;
  const parsed = docSchema.safeParse(doc);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    return `invalid ${kind} document: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'does not parse'}`;
  }
  const expected = identity(kind, parsed.data);
  if (expected.key !== key) return `key '${key}' does not match the document (expected '${expected.key}')`;
  if (expected.ref !== ref) return `ref '${ref}' does not match the document (expected '${expected.ref}')`;
  if (kind === KIND.shadow) {
    // The original, not zod's copy: a `__proto__` key must be seen to be refused.
    const problem = shadowDocProblem(doc as ShadowDoc);
    if (problem !== undefined) return `invalid shadow document: ${problem}`;
  }
  if (kind === KIND.policy) {
    const versions = parsed.data.versions as Array<{ versionId: string; document: unknown }>;
    if (!versions.some((v) => v.versionId === parsed.data.defaultVersionId)) {
      return `policy '${key}' has no version ${String(parsed.data.defaultVersionId)} (its default)`;
    }
    for (const v of versions) {
      try {
        parsePolicyDocument(v.document, `versions.${v.versionId}.document`);
      } catch (error) {
        return error instanceof ValidationError
          ? `invalid policy document: ${error.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`
          : 'invalid policy document';
      }
    }
  }
  return undefined;
}
