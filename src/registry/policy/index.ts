/**
 * The AWS IoT Core policy language: documents, validation and a compiled, allocation-light
 * evaluator for the broker's hot path.
 */
export type { IotAction } from './actions.js';
export { IGNORED_AWS_ACTIONS, IOT_ACTIONS } from './actions.js';
export type { PolicyCondition } from './condition.js';
export type { PolicyDocument, PolicyStatement } from './document.js';
export {
  MAX_POLICY_DOCUMENT_CHARS,
  POLICY_INVALID,
  POLICY_VERSIONS,
  parsePolicyDocument,
} from './document.js';
export type { CompiledPolicySet, Decision, NamedPolicyDocument } from './evaluate.js';
export { compilePolicies, evaluate } from './evaluate.js';
export type { CertificateFields, PolicyContext } from './variables.js';
export {
  CERTIFICATE_ALTERNATIVE_NAMES,
  CERTIFICATE_FIELDS,
  CERTIFICATE_NAME_ATTRIBUTES,
  MAX_CERTIFICATE_VALUES,
  normalizeAddress,
} from './variables.js';
