/**
 * Policy documents in AWS IoT Core's JSON shape, validated once at the edge into a frozen value.
 *
 * iotdr does not silently ignore a policy clause: a key it does not evaluate (Condition,
 * NotAction, NotResource, Principal, …) is rejected, since dropping a Condition from an Allow
 * would grant more than its author meant.
 */
import { type FieldIssue, ValidationError } from '../../common/index.js';
import { expandAction, VALID_ACTIONS_HINT } from './actions.js';
import { parseResource } from './resource.js';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  /** Normalized to an array. */
  Action: string[];
  /** Normalized to an array, as written (ARNs are shortened when compiling). */
  Resource: string[];
}

export interface PolicyDocument {
  Version: string;
  Id?: string;
  /** Normalized to an array. */
  Statement: PolicyStatement[];
}

export const POLICY_INVALID = 'IOTDR_POLICY_INVALID';
/** Versions of the policy language; '2008-10-17' has no policy variables. */
export const POLICY_VERSIONS: readonly string[] = Object.freeze(['2012-10-17', '2008-10-17']);
/** AWS IoT Core's limit on a policy document, in characters with whitespace removed. */
export const MAX_POLICY_DOCUMENT_CHARS = 2048;

const DOCUMENT_KEYS = ['Version', 'Id', 'Statement'];
const STATEMENT_KEYS = ['Sid', 'Effect', 'Action', 'Resource'];
/** IAM keys that are meaningful elsewhere but that iotdr does not evaluate. */
const UNSUPPORTED_IAM_KEYS = new Set(['Condition', 'NotAction', 'NotResource', 'Principal', 'NotPrincipal']);

type Path = ReadonlyArray<string | number>;

class Issues {
  readonly list: FieldIssue[] = [];
  constructor(private readonly prefix: string) {}
  add(path: Path, message: string): void {
    const full = [this.prefix, ...path.map(String)].filter((p) => p !== '').join('.');
    this.list.push({ path: full === '' ? '(root)' : full, message });
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `'${value}'` : `a ${typeof value}`;
}

function checkKeys(obj: Record<string, unknown>, allowed: string[], path: Path, issues: Issues): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key)) continue;
    if (UNSUPPORTED_IAM_KEYS.has(key)) {
      issues.add(
        [...path, key],
        `'${key}' is not supported: iotdr evaluates Effect, Action and Resource only and will not ignore ` +
          'a policy clause; express the rule with Allow/Deny statements on resources',
      );
      continue;
    }
    const near = allowed.find((a) => a.toLowerCase() === key.toLowerCase());
    const hint = near === undefined ? '' : ` (did you mean '${near}'? keys are case-sensitive)`;
    issues.add([...path, key], `unknown key '${key}'${hint}; allowed keys are ${allowed.join(', ')}`);
  }
}

/** A string or a non-empty array of strings, as a list; issues for anything else. */
function stringList(value: unknown, what: string, path: Path, issues: Issues): string[] {
  if (value === undefined) {
    issues.add(path, `${what} is required: a string or a non-empty array of strings`);
    return [];
  }
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) {
    issues.add(path, `${what} must be a string or a non-empty array of strings, not ${describe(value)}`);
    return [];
  }
  if (list.length === 0) issues.add(path, `${what} must not be empty`);
  const out: string[] = [];
  list.forEach((item: unknown, i) => {
    const itemPath = typeof value === 'string' ? path : [...path, i];
    if (typeof item !== 'string' || item === '') {
      issues.add(itemPath, `each ${what} must be a non-empty string, not ${describe(item)}`);
    } else {
      out.push(item);
    }
  });
  return out;
}

function parseStatement(
  raw: unknown,
  path: Path,
  allowVariables: boolean,
  issues: Issues,
): PolicyStatement | undefined {
  if (!isObject(raw)) {
    issues.add(path, `a statement must be an object with Effect, Action and Resource, not ${describe(raw)}`);
    return undefined;
  }
  checkKeys(raw, STATEMENT_KEYS, path, issues);
  const { Sid, Effect } = raw;
  if (Sid !== undefined && typeof Sid !== 'string') issues.add([...path, 'Sid'], 'Sid must be a string');
  if (Effect !== 'Allow' && Effect !== 'Deny') {
    issues.add(
      [...path, 'Effect'],
      Effect === undefined
        ? "Effect is required: 'Allow' or 'Deny'"
        : `Effect must be 'Allow' or 'Deny' (case-sensitive), not ${describe(Effect)}`,
    );
  }
  const actionIsString = typeof raw.Action === 'string';
  const actions = stringList(raw.Action, 'Action', [...path, 'Action'], issues);
  actions.forEach((action, i) => {
    if (!expandAction(action).known) {
      const at = actionIsString ? [...path, 'Action'] : [...path, 'Action', i];
      issues.add(at, `'${action}' names no AWS IoT action; ${VALID_ACTIONS_HINT}`);
    }
  });
  const resourceIsString = typeof raw.Resource === 'string';
  const resources = stringList(raw.Resource, 'Resource', [...path, 'Resource'], issues);
  resources.forEach((resource, i) => {
    const parsed = parseResource(resource, allowVariables);
    if (!parsed.ok)
      issues.add(resourceIsString ? [...path, 'Resource'] : [...path, 'Resource', i], parsed.message);
  });
  if (Effect !== 'Allow' && Effect !== 'Deny') return undefined;
  const statement: PolicyStatement = { Effect, Action: actions, Resource: resources };
  if (typeof Sid === 'string') statement.Sid = Sid;
  return statement;
}

function deepFreeze(doc: PolicyDocument): PolicyDocument {
  for (const s of doc.Statement) {
    Object.freeze(s.Action);
    Object.freeze(s.Resource);
    Object.freeze(s);
  }
  Object.freeze(doc.Statement);
  return Object.freeze(doc);
}

function fail(issues: Issues): never {
  const summary = issues.list.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new ValidationError(`policy document is invalid: ${summary}`, issues.list, POLICY_INVALID);
}

/**
 * Validates a policy document given as an object or as JSON text, into a frozen document whose
 * Statement, Action and Resource are arrays. Throws ValidationError (IOTDR_POLICY_INVALID) naming
 * every bad field by its path below `pathPrefix`, e.g. `policyDocument.Statement.1.Action.0`.
 */
export function parsePolicyDocument(input: unknown, pathPrefix = 'policyDocument'): PolicyDocument {
  const issues = new Issues(pathPrefix);
  let value = input;
  let text: string | undefined;
  if (typeof input === 'string') {
    text = input;
    try {
      value = JSON.parse(input);
    } catch (err) {
      issues.add([], `is not valid JSON: ${(err as Error).message}`);
      fail(issues);
    }
  } else {
    try {
      text = JSON.stringify(input);
    } catch (err) {
      issues.add([], `cannot be written as JSON: ${(err as Error).message}`);
      fail(issues);
    }
  }
  if (!isObject(value)) {
    issues.add([], `must be a JSON object with Version and Statement, not ${describe(value)}`);
    fail(issues);
  }
  const size = (text ?? '').replace(/\s+/g, '').length;
  if (size > MAX_POLICY_DOCUMENT_CHARS) {
    issues.add(
      [],
      `is ${size} characters without whitespace; AWS IoT's limit, which iotdr keeps, is ${MAX_POLICY_DOCUMENT_CHARS}: ` +
        'split it into several policies',
    );
  }
  checkKeys(value, DOCUMENT_KEYS, [], issues);
  const { Version, Id, Statement } = value;
  if (typeof Version !== 'string' || !POLICY_VERSIONS.includes(Version)) {
    issues.add(
      ['Version'],
      `${Version === undefined ? 'Version is required' : `Version ${describe(Version)} is not supported`}: use '2012-10-17'`,
    );
  }
  if (Id !== undefined && typeof Id !== 'string') issues.add(['Id'], 'Id must be a string');
  const allowVariables = Version !== '2008-10-17';
  const statements: PolicyStatement[] = [];
  if (Statement === undefined) {
    issues.add(['Statement'], 'Statement is required: a statement object or a non-empty array of them');
  } else if (Array.isArray(Statement)) {
    if (Statement.length === 0)
      issues.add(['Statement'], 'Statement must not be empty: give at least one statement');
    Statement.forEach((raw: unknown, i) => {
      const s = parseStatement(raw, ['Statement', i], allowVariables, issues);
      if (s !== undefined) statements.push(s);
    });
  } else {
    const s = parseStatement(Statement, ['Statement'], allowVariables, issues);
    if (s !== undefined) statements.push(s);
  }
  if (issues.list.length > 0) fail(issues);
  const doc: PolicyDocument = { Version: Version as string, Statement: statements };
  if (typeof Id === 'string') doc.Id = Id;
  return deepFreeze(doc);
}
