export {
  DEFAULT_RULE_HTTP_ALLOWED_NETWORKS,
  DEFAULT_RULES,
  parseRuleDefinitions,
  RULES_LIMITS,
  type RuleActionConfig,
  type RuleConfig,
  type RuleHttpConfig,
  ruleHttpSection,
  rulesSection,
} from './config.js';
export { type DeadLetter, DeadLetterStore } from './dead-letters.js';
export {
  type Backoff,
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_BACKOFF_MAX_MS,
  DEFAULT_HTTP_MAX_ATTEMPTS,
  DEFAULT_HTTP_TIMEOUT_MS,
} from './deliver.js';
export { type AddressCheck, addressCheck, parseNetwork } from './egress.js';
export {
  DEFAULT_MAX_DELIVERIES_IN_FLIGHT,
  DEFAULT_MAX_REPUBLISH_DEPTH,
  type HandleOptions,
  type HandleResult,
  type RuleActionScope,
  RuleEngine,
  type RuleEngineOptions,
  type RuleView,
} from './engine.js';
export { RULES_ERRORS } from './errors.js';
export { republishTopic, topicMatches } from './filter.js';
export { ruleRoutes } from './http.js';
export {
  MAX_RULE_ACTIONS,
  MAX_RULE_SELECT,
  MAX_RULE_TOPIC_LENGTH,
  putRuleBody,
  RULE_DOCUMENTS,
  RULE_HTTP_ATTEMPTS,
  RULE_HTTP_TIMEOUT_MS,
  type RuleAction,
  type RuleDefinition,
  ruleActionSchema,
  ruleDefinitionSchema,
  ruleNameSchema,
  TOPIC_RULE_KIND,
  type TopicRuleDoc,
  topicFilterProblem,
  topicFiltersOverlap,
  topicRuleDocSchema,
} from './model.js';
export { REDACTED } from './redact.js';
export { selectFields } from './select.js';
export { type ApiRule, type RulePutResult, RuleStore } from './store.js';
export { type InboundMessage, type PublishFn, realSleep, type Sleep } from './types.js';
