/**
 * The `rules` section of the configuration (docs/rules.md): region-local topic rules, checked in
 * the file's terms by the section's schema, then by the rule model the region runs, so what a
 * region would refuse at start `iotdr config check` refuses too; and the check the region runs on
 * them at start.
 */
import { z } from 'zod';
import {
  describeInput,
  expecting,
  formatPath,
  headersSchema,
  httpUrlSchema,
  integerWithin,
  isMapping,
  matching,
  type Range,
  section,
  trueOrFalse,
} from '../common/index.js';
import { DEFAULT_HTTP_MAX_ATTEMPTS, DEFAULT_HTTP_TIMEOUT_MS } from './deliver.js';
import { parseNetwork } from './egress.js';
import { invalidRules } from './errors.js';
import {
  RULE_HTTP_ATTEMPTS,
  RULE_HTTP_TIMEOUT_MS,
  RULE_NAME_PATTERN,
  type RuleDefinition,
  ruleDefinitionSchema,
} from './model.js';

const rulesSchema = z.array(ruleDefinitionSchema).superRefine((rules, ctx) => {
  const seen = new Set<string>();
  for (const [i, rule] of rules.entries()) {
    if (seen.has(rule.name))
      ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate rule name '${rule.name}'` });
    seen.add(rule.name);
  }
});

/**
 * The rules of a region's configuration, validated like API rules (same schema), with unique
 * names. Throws IOTDR_RULES_INVALID naming every bad field (`rules.0.actions.1.url`).
 */
export function parseRuleDefinitions(input: unknown, path = 'rules'): RuleDefinition[] {
  const parsed = rulesSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw invalidRules(
    parsed.error.issues.map((i) => ({ path: formatPath([path, ...i.path]), message: i.message })),
  );
}

/**
 * The rule a fleet needs for analytics: device telemetry (`devices/<thing>/telemetry`, where the
 * device policy template lets a device publish) onto the region's event bus. A `rules` list in the
 * configuration replaces it.
 */
export const DEFAULT_RULES = [
  { name: 'telemetry', topicFilter: 'devices/+/telemetry', actions: [{ type: 'bus' as const }] },
] as const;

/** Bounds of the section's numbers, inclusive; keys are paths within a rule. */
export const RULES_LIMITS = {
  /** ms, of an HTTP action. */
  'actions[].timeoutMs': RULE_HTTP_TIMEOUT_MS,
  /** Attempts, of an HTTP action. */
  'actions[].maxAttempts': RULE_HTTP_ATTEMPTS,
} as const satisfies Record<string, Range>;

export type RuleActionConfig =
  | { readonly type: 'bus' }
  | { readonly type: 'republish'; readonly topic: string; readonly qos: 0 | 1 }
  | {
      readonly type: 'http';
      readonly url: string;
      readonly headers?: Readonly<Record<string, string>>;
      readonly timeoutMs: number;
      readonly maxAttempts: number;
    };

export interface RuleConfig {
  /** `RULE_NAME_PATTERN` (`^[a-zA-Z0-9_]{1,128}$`), unique. */
  readonly name: string;
  /** MQTT topic filter (+ and # wildcards) of the messages the rule takes. */
  readonly topicFilter: string;
  /** JSON fields to keep (dotted paths); absent keeps the whole payload. */
  readonly select?: readonly string[];
  readonly actions: readonly RuleActionConfig[];
  readonly enabled: boolean;
}

/** MQTT topic filter: levels split by /, + alone in a level, # alone and last [MQTT-4.7.1]. */
const TOPIC_FILTER_MESSAGE =
  'an MQTT topic filter: 1 to 256 characters, + only as a whole level, # only as the whole last level';
const topicFilterSchema = z.string({ error: expecting(`expected ${TOPIC_FILTER_MESSAGE}`) }).refine(
  (value) => {
    if (value.length === 0 || Buffer.byteLength(value) > 256 || value.includes('\u0000')) return false;
    const levels = value.split('/');
    return levels.every(
      (level, i) =>
        (!level.includes('+') || level === '+') &&
        (!level.includes('#') || (level === '#' && i === levels.length - 1)),
    );
  },
  { error: expecting(`expected ${TOPIC_FILTER_MESSAGE}`) },
);
const TOPIC_MESSAGE = 'an MQTT topic: 1 to 256 characters without + or #';
const topicSchema = z
  .string({ error: expecting(`expected ${TOPIC_MESSAGE}`) })
  .refine(
    (value) =>
      value.length > 0 && Buffer.byteLength(value) <= 256 && !/[+#]/.test(value) && !value.includes('\u0000'),
    { error: expecting(`expected ${TOPIC_MESSAGE}`) },
  );

const actionSchema = z.discriminatedUnion(
  'type',
  [
    section({ type: z.literal('bus') }),
    section({
      type: z.literal('republish'),
      topic: topicSchema,
      qos: z.union([z.literal(0), z.literal(1)], { error: expecting('expected 0 or 1') }).default(0),
    }),
    section({
      type: z.literal('http'),
      url: httpUrlSchema,
      headers: headersSchema().optional(),
      timeoutMs: integerWithin(RULES_LIMITS['actions[].timeoutMs'], 'ms').default(DEFAULT_HTTP_TIMEOUT_MS),
      maxAttempts: integerWithin(RULES_LIMITS['actions[].maxAttempts'], 'attempts').default(
        DEFAULT_HTTP_MAX_ATTEMPTS,
      ),
    }),
  ],
  {
    error: (issue) =>
      isMapping(issue.input)
        ? `expected type bus, republish or http, got ${describeInput(issue.input.type)}`
        : `expected a mapping with a type (bus, republish or http), got ${describeInput(issue.input)}`,
  },
);

const ruleShape = section({
  name: matching(RULE_NAME_PATTERN, 'a rule name: 1 to 128 characters from a-z A-Z 0-9 _'),
  topicFilter: topicFilterSchema,
  select: z
    .array(
      matching(
        /^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*$/,
        'a JSON field path such as temperature or sensor.value',
      ),
      {
        error: expecting('expected a list of JSON field paths'),
      },
    )
    .min(1, { error: 'expected at least one field, or leave select out to keep the whole payload' })
    .optional(),
  actions: z
    .array(actionSchema, { error: expecting('expected a list of actions') })
    .min(1, { error: 'expected at least one action' }),
  enabled: trueOrFalse().default(true),
});
// The rule model the region runs has the last word: what it would refuse at start, the
// configuration refuses now. It speaks once the file's own checks (in the file's terms) pass.
const ruleSchema = ruleShape.pipe(
  z.custom<z.output<typeof ruleShape>>().superRefine((rule, ctx) => {
    const model = ruleDefinitionSchema.safeParse(rule);
    if (model.success) return;
    for (const issue of model.error.issues)
      ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  }),
);

export const rulesSection = z
  .array(ruleSchema, { error: expecting('expected a list of rules') })
  .prefault(() => DEFAULT_RULES.map((rule) => ({ ...rule, actions: rule.actions.map((x) => ({ ...x })) })));

/**
 * The `ruleHttp` section: where the rules' HTTP actions may connect. An address that is not
 * globally reachable (loopback, link-local and the cloud metadata address, private, unique local,
 * multicast, unspecified, and their IPv4-mapped forms) is refused unless a network listed here
 * holds it; the private LAN included, so a webhook there is a decision written down.
 */
export interface RuleHttpConfig {
  /** CIDRs (`10.1.0.0/16`, `fd00:1::/64`) or single addresses; default none. */
  readonly allowedNetworks: readonly string[];
}

export const DEFAULT_RULE_HTTP_ALLOWED_NETWORKS: readonly string[] = [];

const NETWORK_MESSAGE = 'a network in CIDR form (10.0.0.0/8, fd00::/8) or one IP address';
const networkSchema = z
  .string({ error: expecting(`expected ${NETWORK_MESSAGE}`) })
  .superRefine((value, ctx) => {
    const network = parseNetwork(value);
    if (typeof network === 'string')
      ctx.addIssue({ code: 'custom', message: `${network}, got ${describeInput(value)}` });
  });

export const ruleHttpSection = section({
  allowedNetworks: z
    .array(networkSchema, { error: expecting(`expected a list of networks, each ${NETWORK_MESSAGE}`) })
    .prefault(() => [...DEFAULT_RULE_HTTP_ALLOWED_NETWORKS]),
}).prefault({});
