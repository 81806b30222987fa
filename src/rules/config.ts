import { z } from 'zod';
import { formatPath } from '../common/index.js';
import { type RuleDefinition, ruleDefinitionSchema } from '../registry/index.js';
import { invalidRules } from './errors.js';

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
