import {
  ConflictError,
  type ErrorCatalogue,
  type FieldIssue,
  IotdrError,
  NotFoundError,
  ValidationError,
} from '../common/index.js';

/** Every code topic rules raise. */
export const RULES_ERRORS = {
  IOTDR_RULES_NOT_FOUND: { status: 404, meaning: 'no rule of that name' },
  IOTDR_RULES_NAME_RESERVED: {
    status: 409,
    meaning:
      "the name is a rule of the region's configuration, which the API cannot create, change or delete",
  },
  IOTDR_RULES_VERSION_MISMATCH: {
    status: 409,
    meaning: "`expectedVersion` is not the rule's current version",
  },
  IOTDR_RULES_DEAD_LETTER_NOT_FOUND: { status: 404, meaning: 'no dead letter with that id' },
  IOTDR_RULES_INVALID: {
    meaning: 'rules given in the configuration are not valid; `issues` names each field',
  },
  IOTDR_RULES_API_UNAVAILABLE: {
    status: 503,
    meaning:
      'the region runs its configuration rules only (no rule store), so the rules API cannot change them',
  },
  IOTDR_RULES_HTTP_ADDRESS_REFUSED: {
    meaning:
      "an HTTP action's URL names, or resolves to, an address that is not globally reachable (loopback, link-local, private…) and not in `ruleHttp.allowedNetworks`; the delivery is dead-lettered with this reason, not retried",
  },
  IOTDR_RULES_REDACTED_HEADER: {
    status: 400,
    meaning:
      'a header value is the redaction placeholder `***`, but the stored rule has no value to keep for it: no such header on the action at the same place, or that action posts to another origin',
  },
} as const satisfies ErrorCatalogue;

type RulesErrors = typeof RULES_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends RulesErrors {}
}

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

/** A region without a rule store (config rules only) asked to change or list API rules. */
export function noApiRules(): IotdrError {
  return new IotdrError('IOTDR_RULES_API_UNAVAILABLE', 'this region runs config rules only', { status: 503 });
}

/** An HTTP action may not connect there (see egress.ts); `reason` names the address and its kind. */
export function httpAddressRefused(reason: string): IotdrError {
  return new IotdrError(
    'IOTDR_RULES_HTTP_ADDRESS_REFUSED',
    `refused (not in ruleHttp.allowedNetworks): ${reason}`,
  );
}

/** A PUT sent `***` back for a header whose stored value it cannot keep. */
export function redactedHeader(issues: FieldIssue[]): ValidationError {
  return new ValidationError(
    `send the header's value: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    issues,
    'IOTDR_RULES_REDACTED_HEADER',
  );
}
