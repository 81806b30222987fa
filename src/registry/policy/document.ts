/**
 * Policy documents in AWS IoT Core's JSON shape, validated once at the edge into a frozen value.
 *
 * Every valid AWS IoT policy element is accepted: Action or NotAction, Resource or NotResource,
 * Condition. What iotdr cannot evaluate (a condition key it does not know, `Principal`, which an
 * AWS IoT policy has no use for) is refused by name rather than ignored, since dropping a
 * Condition from an Allow would grant more than its author meant.
 */
import { type FieldIssue, ValidationError } from '../../common/index.js';
import { actionProblem } from './actions.js';
import { compileCondition, type PolicyCondition } from './condition.js';
import { parseResource } from './resource.js';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  /** Normalized to an array; exactly one of Action and NotAction. */
  Action?: string[];
  NotAction?: string[];
  /** Normalized to an array, as written; exactly one of Resource and NotResource. */
  Resource?: string[];
  NotResource?: string[];
  /** Values normalized to arrays of strings. */
  Condition?: PolicyCondition;
}

export interface PolicyDocument {
  /** Absent means '2008-10-17', as in IAM. */
  Version?: string;
  Id?: string;
  /** Normalized to an array. */
  Statement: PolicyStatement[];
}

export const POLICY_INVALID = 'IOTDR_POLICY_INVALID';
/** Versions of the policy language; '2008-10-17' (also a missing Version) reads `${…}` as plain text. */
export const POLICY_VERSIONS: readonly string[] = Object.freeze(['2012-10-17', '2008-10-17']);
/** AWS IoT Core's limit on a policy document, in characters with whitespace removed. */
export const MAX_POLICY_DOCUMENT_CHARS = 2048;

/** Whether `${…}` in the document is a policy variable: only in Version '2012-10-17'. */
export function hasVariables(document: Pick<PolicyDocument, 'Version'>): boolean {
  return document.Version === '2012-10-17';
}

const DOCUMENT_KEYS = ['Version', 'Id', 'Statement'];
const STATEMENT_KEYS = ['Sid', 'Effect', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition'];
/** IAM keys that an AWS IoT policy has no use for: it is attached to its principals. */
const PRINCIPAL_KEYS = new Set(['Principal', 'NotPrincipal']);

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
    if (PRINCIPAL_KEYS.has(key)) {
      issues.add(
        [...path, key],
        `'${key}' has no place in an AWS IoT policy, which applies to the certificates it is attached to; remove it`,
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

/** The one of `key` and `Not<key>` a statement has; undefined (and an issue) unless exactly one. */
function oneOf(
  raw: Record<string, unknown>,
  key: 'Action' | 'Resource',
  path: Path,
  issues: Issues,
): { key: string; not: boolean; list: string[]; isString: boolean } | undefined {
  const not = `Not${key}`;
  if (raw[key] !== undefined && raw[not] !== undefined) {
    issues.add([...path, not], `a statement has ${key} or ${not}, not both`);
    return undefined;
  }
  const which = raw[not] !== undefined ? not : key;
  if (raw[which] === undefined) {
    issues.add([...path, key], `${key} (or ${not}) is required: a string or a non-empty array of strings`);
    return undefined;
  }
  const value = raw[which];
  const list = stringList(value, which, [...path, which], issues);
  return { key: which, not: which === not, list, isString: typeof value === 'string' };
}

function parseStatement(
  raw: unknown,
  path: Path,
  variables: boolean,
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
  const actions = oneOf(raw, 'Action', path, issues);
  actions?.list.forEach((action, i) => {
    const problem = actionProblem(action);
    if (problem !== undefined)
      issues.add(actions.isString ? [...path, actions.key] : [...path, actions.key, i], problem);
  });
  const resources = oneOf(raw, 'Resource', path, issues);
  resources?.list.forEach((resource, i) => {
    const parsed = parseResource(resource, variables);
    if (!parsed.ok)
      issues.add(resources.isString ? [...path, resources.key] : [...path, resources.key, i], parsed.message);
  });
  const condition =
    raw.Condition === undefined
      ? undefined
      : compileCondition(raw.Condition, variables, [...path, 'Condition'], (at, message) =>
          issues.add(at, message),
        );
  if ((Effect !== 'Allow' && Effect !== 'Deny') || actions === undefined || resources === undefined)
    return undefined;
  const statement: PolicyStatement = { Effect };
  if (typeof Sid === 'string') statement.Sid = Sid;
  if (actions.not) statement.NotAction = actions.list;
  else statement.Action = actions.list;
  if (resources.not) statement.NotResource = resources.list;
  else statement.Resource = resources.list;
  if (condition !== undefined) statement.Condition = condition.condition;
  return statement;
}

function deepFreeze(doc: PolicyDocument): PolicyDocument {
  for (const s of doc.Statement) {
    for (const list of [s.Action, s.NotAction, s.Resource, s.NotResource])
      if (list !== undefined) Object.freeze(list);
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
  // As in IAM, a missing Version is '2008-10-17'.
  if (Version !== undefined && (typeof Version !== 'string' || !POLICY_VERSIONS.includes(Version))) {
    issues.add(['Version'], `Version ${describe(Version)} is not supported: use '2012-10-17'`);
  }
  if (Id !== undefined && typeof Id !== 'string') issues.add(['Id'], 'Id must be a string');
  const allowVariables = hasVariables({ Version: typeof Version === 'string' ? Version : undefined });
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
  const doc: PolicyDocument = { Statement: statements };
  if (typeof Version === 'string') doc.Version = Version;
  if (typeof Id === 'string') doc.Id = Id;
  return deepFreeze(doc);
}
