import { z } from 'zod';
import { ValidationError } from '../common/index.js';
import type { DocumentKind } from './kinds.js';
import {
  attributesSchema,
  CA_STATUSES,
  CERTIFICATE_STATUSES,
  certificateIdSchema,
  KIND,
  MAX_DEVICE_TOKEN_POLICIES,
  MAX_POLICY_VERSIONS,
  policyNameSchema,
  policyVersionIdSchema,
  roleSchema,
  thingGroupNameSchema,
  thingNameSchema,
  thingPrincipalTypeSchema,
  thingTypeNameSchema,
  tokenIdSchema,
  tokenScopeSchema,
} from './model.js';
import { parsePolicyDocument } from './policy/index.js';
import { SHADOW_MAX_CLIENT_TOKEN_BYTES, type ShadowDoc, shadowDocProblem } from './service/shadows.js';

/**
 * The registry's own document kinds, as a region checks them when they arrive from outside its
 * service (a replicated change, a snapshot): key format, stored shape, and the key and ref the
 * document implies. A change that fails is never applied; replication dead-letters it.
 */

const iso = z.string().min(1);
const nullableString = z.string().nullable();
const s = (doc: Record<string, unknown>, field: string) => doc[field] as string;
const n = (doc: Record<string, unknown>, field: string) => (doc[field] ?? null) as string | null;

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

/**
 * A policy's default version exists, its version ids are distinct and none above the highest it
 * records, and every version's document parses. At most five versions is the schema's: a peer's
 * document obeyed it at its origin, and one that does not is refused, never trimmed.
 */
function policyProblem(doc: Record<string, unknown>): string | undefined {
  const versions = doc.versions as Array<{ versionId: string; document: unknown }>;
  if (!versions.some((v) => v.versionId === doc.defaultVersionId)) {
    return `policy '${s(doc, 'policyName')}' has no version ${String(doc.defaultVersionId)} (its default)`;
  }
  if (new Set(versions.map((v) => v.versionId)).size !== versions.length) {
    return `policy '${s(doc, 'policyName')}' has a version id twice`;
  }
  const highest = doc.highestVersionId;
  if (typeof highest === 'string' && versions.some((v) => Number(v.versionId) > Number(highest))) {
    return `policy '${s(doc, 'policyName')}' has a version above its highestVersionId ${highest}`;
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
  return undefined;
}

export const BUILT_IN_KINDS: readonly DocumentKind[] = [
  {
    kind: KIND.thing,
    schema: z
      .object({
        thingName: thingNameSchema,
        thingTypeName: thingTypeNameSchema.nullable(),
        attributes: attributesSchema,
        createdAt: iso,
        updatedAt: iso,
      })
      .strict(),
    key: thingNameSchema,
    identity: (d) => ({ key: s(d, 'thingName'), ref: n(d, 'thingTypeName') }),
  },
  {
    kind: KIND.thingType,
    schema: z
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
    key: thingTypeNameSchema,
    identity: (d) => ({ key: s(d, 'thingTypeName'), ref: null }),
  },
  {
    kind: KIND.thingGroup,
    schema: z
      .object({
        thingGroupName: thingGroupNameSchema,
        parentGroupName: thingGroupNameSchema.nullable(),
        description: nullableString,
        attributes: attributesSchema,
        createdAt: iso,
        updatedAt: iso,
      })
      .strict(),
    key: thingGroupNameSchema,
    identity: (d) => ({ key: s(d, 'thingGroupName'), ref: n(d, 'parentGroupName') }),
  },
  {
    kind: KIND.policy,
    schema: z
      .object({
        policyName: policyNameSchema,
        defaultVersionId: policyVersionIdSchema,
        versions: z
          .array(
            z.object({ versionId: policyVersionIdSchema, document: z.unknown(), createdAt: iso }).strict(),
          )
          .min(1)
          .max(MAX_POLICY_VERSIONS),
        highestVersionId: policyVersionIdSchema.optional(),
        createdAt: iso,
        updatedAt: iso,
      })
      .strict(),
    key: policyNameSchema,
    identity: (d) => ({ key: s(d, 'policyName'), ref: null }),
    problem: policyProblem,
  },
  {
    kind: KIND.certificate,
    schema: z
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
    key: certificateIdSchema,
    identity: (d) => ({ key: s(d, 'certificateId'), ref: n(d, 'caCertificateId') }),
  },
  {
    kind: KIND.caCertificate,
    schema: z
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
    key: certificateIdSchema,
    identity: (d) => ({ key: s(d, 'certificateId'), ref: null }),
  },
  {
    kind: KIND.thingPrincipal,
    schema: z
      .object({
        thingName: thingNameSchema,
        certificateId: certificateIdSchema,
        attachedAt: iso,
        thingPrincipalType: thingPrincipalTypeSchema.optional(),
      })
      .strict(),
    key: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}\|[0-9a-f]{64}$/),
    identity: (d) => ({ key: `${s(d, 'thingName')}|${s(d, 'certificateId')}`, ref: s(d, 'certificateId') }),
  },
  {
    kind: KIND.policyPrincipal,
    schema: z
      .object({ certificateId: certificateIdSchema, policyName: policyNameSchema, attachedAt: iso })
      .strict(),
    key: z.string().regex(/^[0-9a-f]{64}\|[\w+=,.@-]{1,128}$/),
    identity: (d) => ({ key: `${s(d, 'certificateId')}|${s(d, 'policyName')}`, ref: s(d, 'policyName') }),
  },
  {
    kind: KIND.groupMember,
    schema: z
      .object({ thingGroupName: thingGroupNameSchema, thingName: thingNameSchema, addedAt: iso })
      .strict(),
    key: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}\|[a-zA-Z0-9:_-]{1,128}$/),
    identity: (d) => ({ key: `${s(d, 'thingGroupName')}|${s(d, 'thingName')}`, ref: s(d, 'thingName') }),
  },
  {
    kind: KIND.groupPolicy,
    schema: z
      .object({ thingGroupName: thingGroupNameSchema, policyName: policyNameSchema, attachedAt: iso })
      .strict(),
    key: z.string().regex(/^[a-zA-Z0-9:_-]{1,128}\|[\w+=,.@-]{1,128}$/),
    identity: (d) => ({ key: `${s(d, 'thingGroupName')}|${s(d, 'policyName')}`, ref: s(d, 'policyName') }),
  },
  {
    kind: KIND.token,
    schema: z
      .object({
        tokenId: tokenIdSchema,
        name: z.string().min(1).max(64),
        role: roleSchema,
        secretHash: z.string().regex(/^[0-9a-f]{64}$/),
        createdAt: iso,
        scope: tokenScopeSchema.optional(),
      })
      .strict(),
    key: tokenIdSchema,
    identity: (d) => ({ key: s(d, 'tokenId'), ref: s(d, 'role') }),
  },
  {
    kind: KIND.deviceToken,
    schema: z
      .object({
        thingName: thingNameSchema,
        secretHash: z.string().regex(/^[0-9a-f]{64}$/),
        policyNames: z.array(policyNameSchema).min(1).max(MAX_DEVICE_TOKEN_POLICIES),
        createdAt: iso,
      })
      .strict(),
    key: thingNameSchema,
    identity: (d) => ({ key: s(d, 'thingName'), ref: null }),
  },
  {
    kind: KIND.shadow,
    schema: shadowDocSchema(),
    key: thingNameSchema,
    identity: (d) => ({ key: s(d, 'thingName'), ref: null }),
    problem: (doc) => {
      const problem = shadowDocProblem(doc as unknown as ShadowDoc);
      return problem === undefined ? undefined : `invalid shadow document: ${problem}`;
    },
  },
];
