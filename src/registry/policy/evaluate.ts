/**
 * Compiled policy sets and the evaluator the broker calls on every CONNECT, PUBLISH, SUBSCRIBE and
 * delivery. Compiling does all the parsing; evaluating walks two short arrays per action and
 * returns a decision object built at compile time, so it allocates nothing.
 */
import { ValidationError } from '../../common/index.js';
import { expandAction, IOT_ACTIONS, type IotAction, VALID_ACTIONS_HINT } from './actions.js';
import { POLICY_INVALID, type PolicyDocument } from './document.js';
import { type CompiledPattern, compilePattern, matchPattern } from './match.js';
import { parseResource, type ResourceType } from './resource.js';
import type { PolicyContext } from './variables.js';

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

interface Entry {
  pattern: CompiledPattern;
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
  /** @internal One table per action, by index in IOT_ACTIONS. */
  readonly tables: readonly ActionTable[];

  /** @internal */
  constructor(policies: ReadonlyArray<{ name: string; version: string }>, tables: ActionTable[]) {
    this.policies = Object.freeze(policies.map(({ name, version }) => Object.freeze({ name, version })));
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

/**
 * Compiles policies (as attached to one certificate) for evaluation. The documents are normally
 * the output of parsePolicyDocument; anything that would not pass it throws ValidationError with
 * paths such as `policies.0.document.Statement.1.Resource.0`.
 */
export function compilePolicies(policies: ReadonlyArray<NamedPolicyDocument>): CompiledPolicySet {
  const tables: ActionTable[] = IOT_ACTIONS.map(() => ({ deny: [], allow: [] }));
  const seen = IOT_ACTIONS.map(() => ({ deny: new Set<string>(), allow: new Set<string>() }));
  policies.forEach(({ name, version, document }, p) => {
    const allowVariables = document.Version !== '2008-10-17';
    document.Statement.forEach((statement, s) => {
      const path = `policies.${p}.document.Statement.${s}`;
      const effect = statement.Effect === 'Deny' ? 'deny' : 'allow';
      const decision: Decision =
        effect === 'deny'
          ? Object.freeze({ effect, reason: 'explicit', policy: name, version, statement: s })
          : Object.freeze({ effect, policy: name, version, statement: s });
      const actions = new Set<number>();
      statement.Action.forEach((action, a) => {
        const expanded = expandAction(action);
        if (!expanded.known) {
          throw new ValidationError(
            `${path}.Action.${a}: '${action}' names no AWS IoT action; ${VALID_ACTIONS_HINT}`,
            [
              {
                path: `${path}.Action.${a}`,
                message: `'${action}' names no AWS IoT action; ${VALID_ACTIONS_HINT}`,
              },
            ],
            POLICY_INVALID,
          );
        }
        for (const i of expanded.evaluated) actions.add(i);
      });
      statement.Resource.forEach((raw, r) => {
        const parsed = parseResource(raw, allowVariables);
        if (!parsed.ok) {
          throw new ValidationError(
            `${path}.Resource.${r}: ${parsed.message}`,
            [{ path: `${path}.Resource.${r}`, message: parsed.message }],
            POLICY_INVALID,
          );
        }
        const { type, tokens, short } = parsed.resource;
        const pattern = compilePattern(tokens);
        for (const i of actions) {
          if (type !== '*' && type !== RESOURCE_TYPE[i]) continue;
          // A later identical pattern with the same effect can never change a decision.
          const dedupe = seen[i]?.[effect];
          if (dedupe === undefined || dedupe.has(short)) continue;
          dedupe.add(short);
          tables[i]?.[effect].push({ pattern, decision });
        }
      });
    });
  });
  return new CompiledPolicySet(policies, tables);
}

function firstMatch(
  entries: Entry[],
  context: PolicyContext,
  resource: string,
  offset: number,
): Decision | null {
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as Entry;
    if (matchPattern(entry.pattern, context, resource, offset)) return entry.decision;
  }
  return null;
}

/**
 * Decides whether `context` may perform `action` on `resource` ('client/ID', 'topic/NAME',
 * 'topicfilter/FILTER'): any matching Deny wins, then any matching Allow, else an implicit deny.
 * Pure and allocation-free; the returned decision is frozen and shared. A resource whose type
 * does not fit the action (Connect→client/, Publish, Receive and RetainPublish→topic/,
 * Subscribe→topicfilter/) is a caller's mistake and is denied implicitly.
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
  const offset = prefix.length;
  return (
    firstMatch(table.deny, context, resource, offset) ??
    firstMatch(table.allow, context, resource, offset) ??
    IMPLICIT_DENY
  );
}
