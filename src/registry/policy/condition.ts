/**
 * A statement's Condition element, with IAM's semantics: every operator of the block must hold,
 * and every key of an operator; a key's several values are alternatives (any one matching is a
 * match), so a negated operator holds when none matches. A key the connection does not have makes
 * an operator false, a negated one true, an `…IfExists` one true; `Null` tests just that.
 * `ForAnyValue:` and `ForAllValues:` compare a key's set of values (IAM's multi-value conditions).
 *
 * Compiled once with the policy set; evaluating walks the clauses and allocates only to substitute
 * a variable into an equality value or to lower-case for an `…IgnoreCase` operator.
 */
import { BlockList, isIP } from 'node:net';
import {
  type CompiledPattern,
  compilePattern,
  globMatch,
  matchPattern,
  patternResolves,
  type Token,
  tokenize,
} from './match.js';
import { splitArn } from './resource.js';
import {
  keyValue,
  keyValues,
  needsCertificate,
  normalizeAddress,
  type PolicyContext,
  type PolicyVariable,
  parseKey,
  resolveVariable,
} from './variables.js';

/** A Condition as stored: operator → key → values, as strings (JSON numbers and booleans are written as text). */
export type PolicyCondition = Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;

const STRING = 0;
const LIKE = 1;
const NUMERIC = 2;
const DATE = 3;
const BOOL = 4;
const IP = 5;
const ARN = 6;
const NULL = 7;

const EQ = 0;
const LT = 1;
const LE = 2;
const GT = 3;
const GE = 4;

const NONE = 0;
const ANY = 1;
const ALL = 2;

interface Operator {
  family: number;
  negated: boolean;
  ignoreCase: boolean;
  compare: number;
}

function operator(family: number, negated = false, compare = EQ, ignoreCase = false): Operator {
  return { family, negated, ignoreCase, compare };
}

const OPERATORS: ReadonlyMap<string, Operator> = new Map([
  ['StringEquals', operator(STRING)],
  ['StringNotEquals', operator(STRING, true)],
  ['StringEqualsIgnoreCase', operator(STRING, false, EQ, true)],
  ['StringNotEqualsIgnoreCase', operator(STRING, true, EQ, true)],
  ['StringLike', operator(LIKE)],
  ['StringNotLike', operator(LIKE, true)],
  ['NumericEquals', operator(NUMERIC)],
  ['NumericNotEquals', operator(NUMERIC, true)],
  ['NumericLessThan', operator(NUMERIC, false, LT)],
  ['NumericLessThanEquals', operator(NUMERIC, false, LE)],
  ['NumericGreaterThan', operator(NUMERIC, false, GT)],
  ['NumericGreaterThanEquals', operator(NUMERIC, false, GE)],
  ['DateEquals', operator(DATE)],
  ['DateNotEquals', operator(DATE, true)],
  ['DateLessThan', operator(DATE, false, LT)],
  ['DateLessThanEquals', operator(DATE, false, LE)],
  ['DateGreaterThan', operator(DATE, false, GT)],
  ['DateGreaterThanEquals', operator(DATE, false, GE)],
  ['Bool', operator(BOOL)],
  ['IpAddress', operator(IP)],
  ['NotIpAddress', operator(IP, true)],
  ['ArnEquals', operator(ARN)],
  ['ArnLike', operator(ARN)],
  ['ArnNotEquals', operator(ARN, true)],
  ['ArnNotLike', operator(ARN, true)],
  ['Null', operator(NULL)],
]);

const OPERATORS_HINT =
  `operators are ${[...OPERATORS.keys()].join(', ')}, each but Null with an 'IfExists' suffix ` +
  "and a 'ForAnyValue:' or 'ForAllValues:' prefix";

interface StringValue {
  /** The value (lower-cased for …IgnoreCase, 'true'/'false' for Bool); null when it holds a variable. */
  text: string | null;
  tokens: Token[];
}

interface ArnValue {
  service: string;
  resource: CompiledPattern;
}

interface Clause {
  key: PolicyVariable;
  multi: boolean;
  family: number;
  negated: boolean;
  ignoreCase: boolean;
  compare: number;
  ifExists: boolean;
  set: number;
  strings: StringValue[];
  patterns: CompiledPattern[];
  numbers: number[];
  ips: BlockList | null;
  arns: ArnValue[];
  /** Null: per value, whether the key must be absent. */
  absent: boolean[];
}

export interface CompiledCondition {
  clauses: Clause[];
  /** Whether a clause needs the client certificate's fields. */
  certificate: boolean;
}

export type Report = (path: ReadonlyArray<string | number>, message: string) => void;

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const EPOCH_SECONDS = /^\d+$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function numberOf(text: string): number {
  return NUMBER.test(text) ? Number(text) : Number.NaN;
}

/** A date as IAM writes it: ISO 8601 or seconds since the epoch; ms, NaN when neither. */
function dateOf(text: string): number {
  if (EPOCH_SECONDS.test(text)) return Number(text) * 1000;
  return ISO_DATE.test(text) ? Date.parse(text) : Number.NaN;
}

function compare(a: number, b: number, how: number): boolean {
  switch (how) {
    case LT:
      return a < b;
    case LE:
      return a <= b;
    case GT:
      return a > b;
    case GE:
      return a >= b;
    default:
      return a === b;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A condition value as text: a string, number or boolean, alone or in an array. */
function valueList(raw: unknown, path: ReadonlyArray<string | number>, report: Report): string[] | undefined {
  const list = Array.isArray(raw) ? raw : [raw];
  const out: string[] = [];
  for (const [i, item] of list.entries()) {
    if (
      typeof item === 'string' ||
      typeof item === 'boolean' ||
      (typeof item === 'number' && Number.isFinite(item))
    ) {
      out.push(String(item));
    } else {
      report(
        Array.isArray(raw) ? [...path, i] : path,
        'a condition value must be a string, number or boolean',
      );
      return undefined;
    }
  }
  return out;
}

function parseOperator(name: string): { op: Operator; set: number; ifExists: boolean } | string {
  let rest = name;
  let set = NONE;
  if (rest.startsWith('ForAnyValue:')) {
    set = ANY;
    rest = rest.slice('ForAnyValue:'.length);
  } else if (rest.startsWith('ForAllValues:')) {
    set = ALL;
    rest = rest.slice('ForAllValues:'.length);
  }
  let ifExists = false;
  if (rest.endsWith('IfExists') && rest !== 'IfExists') {
    ifExists = true;
    rest = rest.slice(0, -'IfExists'.length);
  }
  const op = OPERATORS.get(rest);
  if (op === undefined) {
    if (rest === 'BinaryEquals')
      return "'BinaryEquals' is not supported: no key iotdr knows holds binary data";
    const near = [...OPERATORS.keys()].find((o) => o.toLowerCase() === rest.toLowerCase());
    const hint = near === undefined ? '' : ` (did you mean '${near}'? operators are case-sensitive)`;
    return `unknown condition operator '${name}'${hint}; ${OPERATORS_HINT}`;
  }
  if (op.family === NULL && (ifExists || set !== NONE)) {
    return `'${name}': Null takes neither 'IfExists' nor 'ForAnyValue:'/'ForAllValues:'`;
  }
  return { op, set, ifExists };
}

function emptyClause(
  key: PolicyVariable,
  multi: boolean,
  op: Operator,
  set: number,
  ifExists: boolean,
): Clause {
  return {
    key,
    multi,
    family: op.family,
    negated: op.negated,
    ignoreCase: op.ignoreCase,
    compare: op.compare,
    ifExists,
    set,
    strings: [],
    patterns: [],
    numbers: [],
    ips: op.family === IP ? new BlockList() : null,
    arns: [],
    absent: [],
  };
}

function addSubnet(list: BlockList, value: string): boolean {
  const [address = '', bits, ...extra] = value.split('/');
  const kind = isIP(address);
  if (kind === 0 || extra.length > 0 || (bits !== undefined && !/^\d{1,3}$/.test(bits))) return false;
  const max = kind === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : Number(bits);
  if (prefix > max) return false;
  list.addSubnet(address, prefix, kind === 4 ? 'ipv4' : 'ipv6');
  return true;
}

/** Compiles one value into the clause; the problem with it, or undefined. */
function addValue(clause: Clause, value: string, variables: boolean): string | undefined {
  switch (clause.family) {
    case STRING: {
      const tokens = tokenize(value, variables, false);
      if (!tokens.ok) return tokens.message;
      const plain = tokens.tokens.every((t) => t.t === 'lit');
      const text = tokens.tokens.map((t) => (t.t === 'lit' ? t.text : '')).join('');
      clause.strings.push({
        text: plain ? (clause.ignoreCase ? text.toLowerCase() : text) : null,
        tokens: tokens.tokens,
      });
      return undefined;
    }
    case LIKE: {
      const tokens = tokenize(value, variables, true);
      if (!tokens.ok) return tokens.message;
      clause.patterns.push(compilePattern(tokens.tokens));
      return undefined;
    }
    case NUMERIC: {
      const n = numberOf(value);
      if (!Number.isFinite(n)) return `'${value}' is not a number`;
      clause.numbers.push(n);
      return undefined;
    }
    case DATE: {
      const t = dateOf(value);
      if (Number.isNaN(t))
        return `'${value}' is not a date: ISO 8601 (2024-01-01T00:00:00Z) or seconds since the epoch`;
      clause.numbers.push(t);
      return undefined;
    }
    case BOOL:
    case NULL: {
      const lower = value.toLowerCase();
      if (lower !== 'true' && lower !== 'false') return `'${value}' is not 'true' or 'false'`;
      if (clause.family === BOOL) clause.strings.push({ text: lower, tokens: [] });
      else clause.absent.push(lower === 'true');
      return undefined;
    }
    case IP:
      return addSubnet(clause.ips as BlockList, value)
        ? undefined
        : `'${value}' is not an IP address or CIDR range (203.0.113.0/24, 2001:db8::/32)`;
    default: {
      const arn = splitArn(value);
      if (arn === undefined)
        return `'${value}' is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)`;
      const tokens = tokenize(arn.resource, variables, true);
      if (!tokens.ok) return tokens.message;
      clause.arns.push({ service: arn.service.toLowerCase(), resource: compilePattern(tokens.tokens) });
      return undefined;
    }
  }
}

function usesCertificate(clause: Clause): boolean {
  const variables = [
    ...clause.strings.flatMap((s) => s.tokens.flatMap((t) => (t.t === 'var' ? [t.variable] : []))),
    ...clause.patterns.flatMap((p) => p.variables),
    ...clause.arns.flatMap((a) => a.resource.variables),
  ];
  return needsCertificate(clause.key) || variables.some(needsCertificate);
}

/**
 * Validates and compiles a Condition element. Every problem is reported at its path below `path`
 * (`Condition.StringEquals.iot:ClientId.0`); the result is undefined when there was one.
 * `variables` is false for a '2008-10-17' document, where `${…}` is plain text.
 */
export function compileCondition(
  raw: unknown,
  variables: boolean,
  path: ReadonlyArray<string | number>,
  report: Report,
): { condition: PolicyCondition; compiled: CompiledCondition } | undefined {
  if (!isObject(raw)) {
    report(path, 'Condition must be an object of operators, e.g. {"StringEquals": {"iot:ClientId": "x"}}');
    return undefined;
  }
  let ok = true;
  const condition: Record<string, Record<string, readonly string[]>> = {};
  const clauses: Clause[] = [];
  for (const [name, block] of Object.entries(raw)) {
    const at = [...path, name];
    const parsed = parseOperator(name);
    if (typeof parsed === 'string') {
      report(at, parsed);
      ok = false;
      continue;
    }
    if (!isObject(block)) {
      report(at, `'${name}' must map condition keys to values, e.g. {"iot:ClientId": ["a", "b"]}`);
      ok = false;
      continue;
    }
    const keys: Record<string, readonly string[]> = {};
    for (const [keyName, rawValues] of Object.entries(block)) {
      const keyAt = [...at, keyName];
      const key = parseKey(keyName);
      const values = valueList(rawValues, keyAt, report);
      if (!key.ok) report(keyAt, key.message);
      else if (key.multi && parsed.set === NONE && parsed.op.family !== NULL) {
        report(
          keyAt,
          `'${keyName}' holds a list of values: test it with ForAnyValue:${name} or ForAllValues:${name}`,
        );
      }
      if (
        !key.ok ||
        values === undefined ||
        (key.multi && parsed.set === NONE && parsed.op.family !== NULL)
      ) {
        ok = false;
        continue;
      }
      const clause = emptyClause(key.key, key.multi, parsed.op, parsed.set, parsed.ifExists);
      values.forEach((value, i) => {
        const problem = addValue(clause, value, variables);
        if (problem === undefined) return;
        report(Array.isArray(rawValues) ? [...keyAt, i] : keyAt, problem);
        ok = false;
      });
      keys[keyName] = Object.freeze(values);
      clauses.push(clause);
    }
    condition[name] = Object.freeze(keys);
  }
  if (!ok) return undefined;
  return {
    condition: Object.freeze(condition),
    compiled: { clauses, certificate: clauses.some(usesCertificate) },
  };
}

/** The text of plain tokens with their variables substituted; undefined when one does not resolve. */
function expand(tokens: Token[], context: PolicyContext): string | undefined {
  let out = '';
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (token.t === 'lit') out += token.text;
    else if (token.t === 'var') {
      const value = resolveVariable(token.variable, context);
      if (value === undefined) return undefined;
      out += value;
    }
  }
  return out;
}

/**
 * Whether any of the clause's values matches `value`: undefined when none does and one could not
 * be decided (its variable does not resolve, or `value` is not of the operator's type), which
 * makes the clause false whether negated or not.
 */
function anyMatches(c: Clause, value: string, context: PolicyContext): boolean | undefined {
  let undecided = false;
  switch (c.family) {
    case STRING: {
      const request = c.ignoreCase ? value.toLowerCase() : value;
      for (let i = 0; i < c.strings.length; i++) {
        const s = c.strings[i] as StringValue;
        let text = s.text;
        if (text === null) {
          const expanded = expand(s.tokens, context);
          if (expanded === undefined) {
            undecided = true;
            continue;
          }
          text = c.ignoreCase ? expanded.toLowerCase() : expanded;
        }
        if (text === request) return true;
      }
      return undecided ? undefined : false;
    }
    case LIKE:
      for (let i = 0; i < c.patterns.length; i++) {
        const p = c.patterns[i] as CompiledPattern;
        if (p.variables.length > 0 && !patternResolves(p, context)) undecided = true;
        else if (matchPattern(p, context, value, 0)) return true;
      }
      return undecided ? undefined : false;
    case BOOL: {
      const lower = value.toLowerCase();
      return c.strings.some((s) => s.text === lower);
    }
    case NUMERIC:
    case DATE: {
      const n = c.family === NUMERIC ? numberOf(value) : dateOf(value);
      if (Number.isNaN(n)) return undefined;
      for (let i = 0; i < c.numbers.length; i++)
        if (compare(n, c.numbers[i] as number, c.compare)) return true;
      return false;
    }
    case IP: {
      const address = normalizeAddress(value);
      const kind = isIP(address);
      if (kind === 0) return undefined;
      return (c.ips as BlockList).check(address, kind === 4 ? 'ipv4' : 'ipv6');
    }
    default: {
      const arn = splitArn(value);
      if (arn === undefined) return undefined;
      const service = arn.service.toLowerCase();
      for (let i = 0; i < c.arns.length; i++) {
        const a = c.arns[i] as ArnValue;
        if (a.resource.variables.length > 0 && !patternResolves(a.resource, context)) undecided = true;
        else if (globMatch(a.service, service) && matchPattern(a.resource, context, arn.resource, 0))
          return true;
      }
      return undecided ? undefined : false;
    }
  }
}

function valueHolds(c: Clause, value: string, context: PolicyContext): boolean {
  const matched = anyMatches(c, value, context);
  if (matched === undefined) return false;
  return c.negated ? !matched : matched;
}

function clauseHolds(c: Clause, context: PolicyContext): boolean {
  if (c.family === NULL) {
    const present = c.multi
      ? (keyValues(c.key, context)?.length ?? 0) > 0
      : keyValue(c.key, context) !== undefined;
    return c.absent.some((wantsAbsent) => wantsAbsent !== present);
  }
  if (c.multi) {
    const values = keyValues(c.key, context);
    // An empty set: every one of its values matches (ForAllValues), none does (ForAnyValue).
    if (values === undefined || values.length === 0) return c.set === ALL || c.ifExists;
    for (let i = 0; i < values.length; i++) {
      const holds = valueHolds(c, values[i] as string, context);
      if (c.set === ANY && holds) return true;
      if (c.set === ALL && !holds) return false;
    }
    return c.set === ALL;
  }
  const value = keyValue(c.key, context);
  if (value === undefined) {
    if (c.set !== NONE) return c.set === ALL || c.ifExists;
    return c.ifExists || c.negated;
  }
  return valueHolds(c, value, context);
}

/** Whether every clause of the condition holds for this connection. */
export function conditionHolds(condition: CompiledCondition, context: PolicyContext): boolean {
  const clauses = condition.clauses;
  for (let i = 0; i < clauses.length; i++) if (!clauseHolds(clauses[i] as Clause, context)) return false;
  return true;
}
