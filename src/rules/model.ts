import { z } from 'zod';
import { PLATFORM_TOPIC_PREFIX } from '../common/index.js';
import type { DocumentKind } from '../registry/index.js';

/**
 * The topic rule: one schema for a rule in the configuration, a rule PUT through the API and the
 * stored document a peer region sends. The registry stores API rules but does not define them: it
 * checks a replicated rule with `RULE_DOCUMENTS`, which the region registers with its registry.
 */

/** The stored kind of an API rule (data on disk and the replication wire: never renamed). */
export const TOPIC_RULE_KIND = 'topic-rule';

/** AWS IoT: rule names are [a-zA-Z0-9_]+, 1..128 (no '-', so no rule is named like a sub-route). */
export const RULE_NAME_PATTERN = /^[a-zA-Z0-9_]{1,128}$/;
export const ruleNameSchema = z.string().regex(RULE_NAME_PATTERN, '1 to 128 characters from a-z A-Z 0-9 _');
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
  .refine((t) => !t.replaceAll('${thingName}', '').includes('${'), 'the only substitution is ${thingName}')
  // A republished failover notice would reach every device as the platform's word (an epoch no
  // real notice then passes); commands and shadows there are the platform's to answer.
  .refine(
    (t) => !t.startsWith(PLATFORM_TOPIC_PREFIX),
    `not under ${PLATFORM_TOPIC_PREFIX}: those topics are written by the platform only`,
  );
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

/** The rule as a registry document kind; key rule name, ref null. */
export const RULE_DOCUMENTS: readonly DocumentKind[] = [
  {
    kind: TOPIC_RULE_KIND,
    schema: topicRuleDocSchema,
    key: ruleNameSchema,
    identity: (doc) => ({ key: doc.name as string, ref: null }),
  },
];
