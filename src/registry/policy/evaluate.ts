/**
 * Compiled policy sets and the evaluator the broker calls on every CONNECT, PUBLISH, SUBSCRIBE and
 * delivery. Compiling does all the parsing; evaluating walks two short arrays per action and
 * returns a decision object built at compile time, so it allocates nothing.
 */
import { ValidationError } from '../../common/index.js';
import { actionProblem, expandAction, IOT_ACTIONS, type IotAction } from './actions.js';
import { type CompiledCondition, compileCondition, conditionHolds } from './condition.js';
import { hasVariables, POLICY_INVALID, type PolicyDocument, type PolicyStatement } from './document.js';
import { type CompiledPattern, compilePattern, matchPattern, patternResolves } from './match.js';
import { type ParsedResource, parseResource, type ResourceType } from './resource.js';
import { needsCertificate, type PolicyContext } from './variables.js';

/**
 * The outcome of an evaluation. `statement` is the 0-based index of the deciding statement in its
 * policy's Statement array. When several statements match, the first in policy order, then
 * statement order, is reported.
 */
export type Decision =
  | { effect: 'allow'; policy: string; version: string; statement: number }
  | { effect: 'deny'; reason: 'explicit'; policy: string; version: string; statement: number }
  | { effect: 'deny'; reason: 'implicit' };

export interface NamedPolicyDocument {
  name: string;
  version: string;
  document: PolicyDocument;
}

/** The resource type each action is asked about, by action index (see IOT_ACTIONS). */
const RESOURCE_TYPE: readonly ResourceType[] = ['client', 'topic', 'topicfilter', 'topic', 'topic'];
const RESOURCE_PREFIX: readonly string[] = RESOURCE_TYPE.map((t) => `${t}/`);

/** A resource pattern and where in `type/name` it starts matching: after the type, or at 0 for a wildcard type. */
interface Placed {
  pattern: CompiledPattern;
  offset: number;
}

interface Entry {
  /** Resource: the statement applies where it matches. Null for a NotResource statement. */
  resource: Placed | null;
  /** NotResource: the statement applies where none matches. */
  excluded: Placed[];
  condition: CompiledCondition | null;
  decision: Decision;
}

interface ActionTable {
  deny: Entry[];
  allow: Entry[];
}

const IMPLICIT_DENY: Decision = Object.freeze({ effect: 'deny', reason: 'implicit' });

/** Policies compiled for evaluation; build with compilePolicies, use with evaluate. */
export class CompiledPolicySet {
  /** The policies, in the order given. */
  readonly policies: ReadonlyArray<{ readonly name: string; readonly version: string }>;
  /**
   * Whether a statement uses the client certificate's fields (`iot:Certificate.*`): a broker
   * reads them from the certificate only then.
   */
  readonly needsCertificate: boolean;
  /** @internal One table per action, by index in IOT_ACTIONS. */
  readonly tables: readonly ActionTable[];

  /** @internal */
  constructor(
    policies: ReadonlyArray<{ name: string; version: string }>,
    tables: ActionTable[],
    certificate: boolean,
  ) {
    this.policies = Object.freeze(policies.map(({ name, version }) => Object.freeze({ name, version })));
    this.needsCertificate = certificate;
    this.tables = Object.freeze(tables);
    Object.freeze(this);
  }
}

function actionIndex(action: IotAction): number {
  switch (action) {
    case 'iot:Connect':
      return 0;
    case 'iot:Publish':
      return 1;
    case 'iot:Subscribe':
      return 2;
    case 'iot:Receive':
      return 3;
    case 'iot:RetainPublish':
      return 4;
    default:
      return -1;
  }
}

function invalid(path: string, message: string): ValidationError {
  return new ValidationError(`${path}: ${message}`, [{ path, message }], POLICY_INVALID);
}

/** The evaluated actions a statement applies to (indexes into IOT_ACTIONS). */
function statementActions(statement: PolicyStatement, path: string): Set<number> {
  const not = statement.NotAction !== undefined;
  const list = statement.NotAction ?? statement.Action ?? [];
  const named = new Set<number>();
  list.forEach((action, a) => {
    const problem = actionProblem(action);
    if (problem !== undefined) throw invalid(`${path}.${not ? 'NotAction' : 'Action'}.${a}`, problem);
    for (const i of expandAction(action)) named.add(i);
  });
  return not ? new Set(IOT_ACTIONS.map((_, i) => i).filter((i) => !named.has(i))) : named;
}

/** Where a parsed resource applies for action `i`, or null when it cannot name that action's resources. */
function placeFor(resource: ParsedResource, pattern: CompiledPattern, i: number): Placed | null {
  if (resource.type === '*') return { pattern, offset: 0 };
  if (resource.type === RESOURCE_TYPE[i]) return { pattern, offset: RESOURCE_PREFIX[i]?.length ?? 0 };
  return null;
}

/**
 * Compiles policies (as attached to one certificate) for evaluation. The documents are normally
 * the output of parsePolicyDocument; anything that would not pass it throws ValidationError with
 * paths such as `policies.0.document.Statement.1.Resource.0`.
 */
export function compilePolicies(policies: ReadonlyArray<NamedPolicyDocument>): CompiledPolicySet {
  const tables: ActionTable[] = IOT_ACTIONS.map(() => ({ deny: [], allow: [] }));
  const seen = IOT_ACTIONS.map(() => ({ deny: new Set<string>(), allow: new Set<string>() }));
  let certificate = false;
  policies.forEach(({ name, version, document }, p) => {
    const variables = hasVariables(document);
    document.Statement.forEach((statement, s) => {
      const path = `policies.${p}.document.Statement.${s}`;
      const effect = statement.Effect === 'Deny' ? 'deny' : 'allow';
      const decision: Decision =
        effect === 'deny'
          ? Object.freeze({ effect, reason: 'explicit', policy: name, version, statement: s })
          : Object.freeze({ effect, policy: name, version, statement: s });
      const actions = statementActions(statement, path);
      let condition: CompiledCondition | null = null;
      if (statement.Condition !== undefined) {
        const compiled = compileCondition(
          statement.Condition,
          variables,
          [`${path}.Condition`],
          (at, message) => {
            throw invalid(at.map(String).join('.'), message);
          },
        );
        condition = compiled?.compiled ?? null;
        certificate ||= condition?.certificate ?? false;
      }
      const not = statement.NotResource !== undefined;
      const parsed = (statement.NotResource ?? statement.Resource ?? []).map((raw, r) => {
        const result = parseResource(raw, variables);
        if (!result.ok) throw invalid(`${path}.${not ? 'NotResource' : 'Resource'}.${r}`, result.message);
        const pattern = compilePattern(result.resource.tokens);
        certificate ||= pattern.variables.some(needsCertificate);
        return { resource: result.resource, pattern };
      });
      for (const i of actions) {
        const table = tables[i] as ActionTable;
        if (not) {
          const excluded = parsed.flatMap(({ resource, pattern }) => placeFor(resource, pattern, i) ?? []);
          table[effect].push({ resource: null, excluded, condition, decision });
          continue;
        }
        for (const { resource, pattern } of parsed) {
          const placed = placeFor(resource, pattern, i);
          if (placed === null) continue;
          // A later identical unconditional pattern with the same effect can never change a decision.
          if (condition === null) {
            const dedupe = (seen[i] as { deny: Set<string>; allow: Set<string> })[effect];
            const key = `${placed.offset}|${resource.short}`;
            if (dedupe.has(key)) continue;
            dedupe.add(key);
          }
          table[effect].push({ resource: placed, excluded: [], condition, decision });
        }
      }
    });
  });
  return new CompiledPolicySet(policies, tables, certificate);
}

function applies(entry: Entry, context: PolicyContext, resource: string): boolean {
  const placed = entry.resource;
  if (placed !== null) {
    if (!matchPattern(placed.pattern, context, resource, placed.offset)) return false;
  } else {
    const excluded = entry.excluded;
    for (let i = 0; i < excluded.length; i++) {
      const e = excluded[i] as Placed;
      // An exclusion that cannot be decided (its variable does not resolve) excludes: the
      // statement must not apply to what its author may have meant to keep out.
      if (e.pattern.variables.length > 0 && !patternResolves(e.pattern, context)) return false;
      if (matchPattern(e.pattern, context, resource, e.offset)) return false;
    }
  }
  return entry.condition === null || conditionHolds(entry.condition, context);
}

function firstMatch(entries: Entry[], context: PolicyContext, resource: string): Decision | null {
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as Entry;
    if (applies(entry, context, resource)) return entry.decision;
  }
  return null;
}

/**
 * Decides whether `context` may perform `action` on `resource` ('client/ID', 'topic/NAME',
 * 'topicfilter/FILTER'): any applying Deny wins, then any applying Allow, else an implicit deny.
 * A statement applies when its action, its resource and its Condition all do. Pure and
 * allocation-free unless a condition substitutes a variable; the returned decision is frozen and
 * shared. A resource whose type does not fit the action (Connect→client/, Publish, Receive and
 * RetainPublish→topic/, Subscribe→topicfilter/) is a caller's mistake and is denied implicitly.
 */
export function evaluate(
  set: CompiledPolicySet,
  context: PolicyContext,
  action: IotAction,
  resource: string,
): Decision {
  const index = actionIndex(action);
  const table = set.tables[index];
  const prefix = RESOURCE_PREFIX[index];
  if (table === undefined || prefix === undefined || !resource.startsWith(prefix)) return IMPLICIT_DENY;
  return (
    firstMatch(table.deny, context, resource) ?? firstMatch(table.allow, context, resource) ?? IMPLICIT_DENY
  );
}
