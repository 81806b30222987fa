import { ConflictError, type FieldIssue, NotFoundError, ValidationError } from '../common/index.js';

export function ruleNotFound(name: string): NotFoundError {
  return new NotFoundError('IOTDR_RULES_NOT_FOUND', `rule '${name}' does not exist`, { rule: name });
}

/** The name belongs to a rule from the region's configuration: the API can neither make nor change it. */
export function ruleNameReserved(name: string): ConflictError {
  return new ConflictError(
    'IOTDR_RULES_NAME_RESERVED',
    `rule '${name}' comes from the configuration; the API cannot create, change or delete a rule of that name`,
    { rule: name },
  );
}

export function ruleVersionMismatch(name: string, actual: number, expected: number): ConflictError {
  return new ConflictError(
    'IOTDR_RULES_VERSION_MISMATCH',
    `rule '${name}' is at version ${actual}, not ${expected}`,
    { rule: name, expectedVersion: expected, actualVersion: actual },
  );
}

export function deadLetterNotFound(id: string): NotFoundError {
  return new NotFoundError('IOTDR_RULES_DEAD_LETTER_NOT_FOUND', `dead letter '${id}' does not exist`, { id });
}

/** Rules given in the configuration that do not validate. */
export function invalidRules(issues: FieldIssue[]): ValidationError {
  return new ValidationError(
    `invalid rules: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    issues,
    'IOTDR_RULES_INVALID',
  );
}
