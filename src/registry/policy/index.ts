/**
 * The AWS IoT Core policy language: documents, validation and a compiled, allocation-free
 * evaluator for the broker's hot path.
 */
export type { IotAction } from './actions.js';
export { IGNORED_AWS_ACTIONS, IOT_ACTIONS } from './actions.js';
export type { PolicyDocument, PolicyStatement } from './document.js';
export {
  MAX_POLICY_DOCUMENT_CHARS,
  POLICY_INVALID,
  POLICY_VERSIONS,
  parsePolicyDocument,
} from './document.js';
export type { CompiledPolicySet, Decision, NamedPolicyDocument } from './evaluate.js';
export { compilePolicies, evaluate } from './evaluate.js';
export type { PolicyContext } from './variables.js';
