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
  /** MQTT password of one thing on the broker's token listener; key thing name, ref null. */
  deviceToken: 'device-token',
  /** A topic rule made through the API (src/rules); key rule name, ref null. */
  topicRule: 'topic-rule',
  /** The classic device shadow of one thing (service/shadows.ts); key thing name, ref null. */
  shadow: 'shadow',
  /** A command to one device (src/commands); key command id, ref thing name. */
  command: 'command',
  /** The first answer to a request with an Idempotency-Key (src/commands); key a SHA-256, ref null. */
  idempotency: 'idempotency-key',
  /** A bulk onboarding job (src/commands); key job id, ref null. */
  onboardingJob: 'onboarding-job',
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

/** What a console token may do on the command-and-control API (all of them when unscoped). */
export const CNC_OPERATIONS = ['read', 'onboard', 'suspend', 'resume', 'decommission', 'command'] as const;
export type CncOperation = (typeof CNC_OPERATIONS)[number];

/**
 * A token's scope: the operations it may run and the thing groups whose devices it may touch.
 * A scoped token works on the command-and-control routes only.
 */
export const tokenScopeSchema = z
  .object({
    operations: z.array(z.enum(CNC_OPERATIONS)).min(1).max(CNC_OPERATIONS.length).optional(),
    thingGroups: z.array(thingGroupNameSchema).min(1).max(100).optional(),
  })
  .strict()
  .refine((s) => s.operations !== undefined || s.thingGroups !== undefined, {
    message: 'a scope names operations, thingGroups or both',
  });
export type TokenScope = z.infer<typeof tokenScopeSchema>;

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

// Topic rules (src/rules). They live here, beside the other kinds, because the registry validates
// a rule arriving by replication with the same schema the API and the config use.

/** AWS IoT: rule names are [a-zA-Z0-9_]+, 1..128 (no '-', so no rule is named like a sub-route). */
export const ruleNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_]{1,128}$/, '1 to 128 characters from a-z A-Z 0-9 _');
/** Longest topic filter or republish topic, in characters. */
export const MAX_RULE_TOPIC_LENGTH = 1024;
export const MAX_RULE_ACTIONS = 10;
export const MAX_RULE_SELECT = 32;
/** Bounds of an HTTP action's timeout (ms) and attempts; the defaults live in src/rules. */
export const RULE_HTTP_TIMEOUT_MS = { min: 100, max: 60_000 } as const;
export const RULE_HTTP_ATTEMPTS = { min: 1, max: 20 } as const;

/** Why `filter` is not a valid MQTT topic filter, or undefined ([MQTT-4.7.1-1], [MQTT-4.7.1-2]). */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'empty';
  if (filter.includes('\u0000')) return 'contains U+0000';
  const levels = filter.split('/');
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1))
      return "'#' must be a whole level and the last one";
    if (level.includes('+') && level !== '+') return "'+' must be a whole level";
  }
  return undefined;
}

/** Whether some topic matches both filters (a level holding `${thingName}` counts as '+'). */
export function topicFiltersOverlap(a: string, b: string): boolean {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the substitution is written ${thingName}
  const level = (l: string) => (l.includes('${thingName}') ? '+' : l);
  const la = a.split('/').map(level);
  const lb = b.split('/').map(level);
  for (let i = 0; ; i++) {
    const x = la[i];
    const y = lb[i];
    if (x === '#' || y === '#') return true;
    if (x === undefined || y === undefined) return x === y;
    if (x !== '+' && y !== '+' && x !== y) return false;
  }
}

const ruleTopicFilterSchema = z
  .string()
  .max(MAX_RULE_TOPIC_LENGTH, `at most ${MAX_RULE_TOPIC_LENGTH} characters`)
  .superRefine((f, ctx) => {
    const problem = topicFilterProblem(f);
    if (problem) ctx.addIssue({ code: 'custom', message: `not an MQTT topic filter: ${problem}` });
  });
const republishTopicSchema = z
  .string()
  .min(1)
  .max(MAX_RULE_TOPIC_LENGTH, `at most ${MAX_RULE_TOPIC_LENGTH} characters`)
  .refine((t) => !/[+#]/.test(t) && !t.includes('\u0000'), 'a topic name: no wildcards (+ #) and no U+0000')
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the substitution is written ${thingName}
  .refine((t) => !t.replaceAll('${thingName}', '').includes('${'), 'the only substitution is ${thingName}');
const headerNameSchema = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'an HTTP header name');

export const ruleActionSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('bus') }).strict(),
  z
    .object({
      type: z.literal('republish'),
      topic: republishTopicSchema,
      qos: z.union([z.literal(0), z.literal(1)]).optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal('http'),
      url: z
        .string()
        .max(2048)
        .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'an http or https URL'),
      headers: z.record(headerNameSchema, z.string().max(4096)).optional(),
      timeoutMs: z.number().int().min(RULE_HTTP_TIMEOUT_MS.min).max(RULE_HTTP_TIMEOUT_MS.max).optional(),
      maxAttempts: z.number().int().min(RULE_HTTP_ATTEMPTS.min).max(RULE_HTTP_ATTEMPTS.max).optional(),
    })
    .strict(),
]);
export type RuleAction = z.infer<typeof ruleActionSchema>;

const ruleFields = {
  topicFilter: ruleTopicFilterSchema,
  select: z
    .array(z.string().regex(/^[^.]{1,128}(\.[^.]{1,128}){0,15}$/, 'a JSON field or dotted path (a.b.c)'))
    .min(1, 'at least one field; leave select out for the whole payload')
    .max(MAX_RULE_SELECT, `at most ${MAX_RULE_SELECT} fields`)
    .optional(),
  actions: z.array(ruleActionSchema).min(1, 'at least one action').max(MAX_RULE_ACTIONS),
};

/** A rule must not republish onto its own filter: it would feed itself forever. */
function refuseSelfLoop(rule: { topicFilter: string; actions: RuleAction[] }, ctx: z.RefinementCtx): void {
  for (const [i, action] of rule.actions.entries()) {
    if (action.type === 'republish' && topicFiltersOverlap(action.topic, rule.topicFilter)) {
      ctx.addIssue({
        code: 'custom',
        path: ['actions', i, 'topic'],
        message: `republishing to '${action.topic}' would match the rule's own filter '${rule.topicFilter}' (a loop)`,
      });
    }
  }
}

/** A rule as config and the engine know it. */
export const ruleDefinitionSchema = z
  .object({ name: ruleNameSchema, ...ruleFields, enabled: z.boolean().default(true) })
  .strict()
  .superRefine(refuseSelfLoop);
export type RuleDefinition = z.infer<typeof ruleDefinitionSchema>;

/** PUT /v1/rules/{name}. */
export const putRuleBody = z
  .object({
    ...ruleFields,
    enabled: z.boolean().default(true),
    expectedVersion: z.number().int().nonnegative().optional(),
  })
  .strict()
  .superRefine(refuseSelfLoop);

/** The stored document of an API rule. */
export const topicRuleDocSchema = z
  .object({
    name: ruleNameSchema,
    ...ruleFields,
    enabled: z.boolean(),
    createdAt: z.string().min(1),
    updatedAt: z.string().min(1),
  })
  .strict()
  .superRefine(refuseSelfLoop);
export type TopicRuleDoc = z.infer<typeof topicRuleDocSchema>;
