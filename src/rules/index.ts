export { parseRuleDefinitions } from './config.js';
export { type DeadLetter, DeadLetterStore } from './dead-letters.js';
export {
  type Backoff,
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_BACKOFF_MAX_MS,
  DEFAULT_HTTP_MAX_ATTEMPTS,
  DEFAULT_HTTP_TIMEOUT_MS,
} from './deliver.js';
export {
  DEFAULT_MAX_DELIVERIES_IN_FLIGHT,
  DEFAULT_MAX_REPUBLISH_DEPTH,
  type HandleResult,
  RuleEngine,
  type RuleEngineOptions,
  type RuleView,
} from './engine.js';
export { republishTopic, topicMatches } from './filter.js';
export { ruleRoutes } from './http.js';
export { selectFields } from './select.js';
export { type ApiRule, type RulePutResult, RuleStore } from './store.js';
export { type InboundMessage, type PublishFn, realSleep, type Sleep } from './types.js';
