/**
 * Policy actions: the ones iotdr's broker asks about, and the rest of the AWS vocabulary, which a
 * policy may name so that documents written for AWS carry over unchanged.
 */
import { globMatch } from './match.js';

/**
 * The actions the broker evaluates. `iot:RetainPublish` is an addition to the four MQTT actions:
 * AWS IoT Core checks it, on the topic, in addition to `iot:Publish` when a message carries the
 * RETAIN flag, and a broker that wants AWS's behaviour can ask for it too.
 */
export type IotAction = 'iot:Connect' | 'iot:Publish' | 'iot:Subscribe' | 'iot:Receive' | 'iot:RetainPublish';

/** Evaluated actions, in the order of their index in a compiled set. */
export const IOT_ACTIONS: readonly IotAction[] = Object.freeze([
  'iot:Connect',
  'iot:Publish',
  'iot:Subscribe',
  'iot:Receive',
  'iot:RetainPublish',
]);

/**
 * AWS IoT Core's other device-facing actions: accepted in a document and ignored by the evaluator,
 * like any other action (another service's, AWS IoT's control plane). They authorise AWS's HTTP
 * APIs (shadow and retained-message REST calls, forced disconnects, the credentials provider, Jobs
 * over HTTPS), which iotdr does not offer; over MQTT those features are reached through topics
 * that iot:Publish/Subscribe/Receive already govern. Listed so that a misspelt one is caught.
 */
export const IGNORED_AWS_ACTIONS: readonly string[] = Object.freeze([
  'iot:DeleteConnection',
  'iot:GetRetainedMessage',
  'iot:ListRetainedMessages',
  'iot:DeleteThingShadow',
  'iot:GetThingShadow',
  'iot:ListNamedShadowsForThing',
  'iot:UpdateThingShadow',
  'iot:AssumeRoleWithCertificate',
  'iot:DescribeJobExecution',
  'iot:GetPendingJobExecutions',
  'iot:StartNextPendingJobExecution',
  'iot:UpdateJobExecution',
  'iotjobsdata:DescribeJobExecution',
  'iotjobsdata:GetPendingJobExecutions',
  'iotjobsdata:StartNextPendingJobExecution',
  'iotjobsdata:UpdateJobExecution',
]);

const EVALUATED_LOWER = IOT_ACTIONS.map((a) => a.toLowerCase());
const KNOWN_LOWER = [...EVALUATED_LOWER, ...IGNORED_AWS_ACTIONS.map((a) => a.toLowerCase())];
/** IAM's form of an action: a service prefix, a colon and a name that may hold `*` and `?`. */
const ACTION_FORM = /^[a-z0-9-]+:[a-z0-9*?]+$/i;

/**
 * Indexes into IOT_ACTIONS of the evaluated actions a pattern names (`iot:Publish`, `iot:P*`,
 * `IOT:*`, `*`). As in IAM, action names compare case-insensitively and may use `*` and `?`.
 */
export function expandAction(pattern: string): number[] {
  const lower = pattern.toLowerCase();
  const evaluated: number[] = [];
  EVALUATED_LOWER.forEach((name, i) => {
    if (globMatch(lower, name)) evaluated.push(i);
  });
  return evaluated;
}

/** Levenshtein distance, for catching a misspelt action name. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * Why an action as written cannot be accepted, or undefined. Any well-formed action is accepted;
 * a name one or two letters away from a known AWS IoT action (`iot:Pubish`) is refused as a
 * misspelling, since a misspelt Deny would deny nothing.
 */
export function actionProblem(pattern: string): string | undefined {
  if (pattern === '*') return undefined;
  if (!ACTION_FORM.test(pattern)) return `'${pattern}' is not an action; ${VALID_ACTIONS_HINT}`;
  const lower = pattern.toLowerCase();
  if (lower.includes('*') || lower.includes('?') || KNOWN_LOWER.includes(lower)) return undefined;
  const near = KNOWN_LOWER.find((known) => distance(lower, known) <= 2);
  if (near === undefined) return undefined;
  const spelt = [...IOT_ACTIONS, ...IGNORED_AWS_ACTIONS].find((a) => a.toLowerCase() === near);
  return `'${pattern}' is not an AWS IoT action (did you mean '${spelt}'?); ${VALID_ACTIONS_HINT}`;
}

/** What to tell someone whose action names nothing. */
export const VALID_ACTIONS_HINT =
  `the broker evaluates ${IOT_ACTIONS.join(', ')}, named exactly or with wildcards ('iot:*', 'iot:P*', '*'); ` +
  `other actions (iot:UpdateThingShadow, greengrass:*, …) are accepted as SERVICE:NAME and never match`;
