/**
 * Policy actions: the ones iotdr's broker asks about, and the rest of AWS IoT Core's vocabulary,
 * which a policy may name so that documents written for AWS carry over unchanged.
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
 * Other AWS IoT Core policy actions: accepted in a document and ignored by the evaluator. They
 * authorise AWS's HTTP APIs (shadow and retained-message REST calls, forced disconnects, the
 * credentials provider, Jobs over HTTPS), which iotdr does not offer; over MQTT those features
 * are reached through topics that iot:Publish/Subscribe/Receive already govern. So ignoring them
 * grants nothing and denies nothing a device could notice, while rejecting them would refuse
 * most real AWS device policies.
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
  'iotjobsdata:DescribeJobExecution',
  'iotjobsdata:GetPendingJobExecutions',
  'iotjobsdata:StartNextPendingJobExecution',
  'iotjobsdata:UpdateJobExecution',
]);

const EVALUATED_LOWER = IOT_ACTIONS.map((a) => a.toLowerCase());
const IGNORED_LOWER = IGNORED_AWS_ACTIONS.map((a) => a.toLowerCase());

export interface ExpandedAction {
  /** Indexes into IOT_ACTIONS of the evaluated actions the pattern names. */
  evaluated: number[];
  /** True when the pattern names at least one known action, evaluated or ignored. */
  known: boolean;
}

/**
 * Expands an action as written in a policy (`iot:Publish`, `iot:P*`, `IOT:*`, `*`) into the
 * actions it names. As in IAM, action names compare case-insensitively and may use `*` and `?`.
 */
export function expandAction(pattern: string): ExpandedAction {
  const lower = pattern.toLowerCase();
  const evaluated: number[] = [];
  EVALUATED_LOWER.forEach((name, i) => {
    if (globMatch(lower, name)) evaluated.push(i);
  });
  const known = evaluated.length > 0 || IGNORED_LOWER.some((name) => globMatch(lower, name));
  return { evaluated, known };
}

/** What to tell someone whose action names nothing. */
export const VALID_ACTIONS_HINT =
  `valid actions are ${IOT_ACTIONS.join(', ')}, 'iot:*', '*' or a prefix wildcard such as 'iot:P*' ` +
  `(other AWS IoT Core actions such as iot:UpdateThingShadow are accepted and ignored)`;
