import { ConflictError, type ErrorCatalogue, IotdrError, NotFoundError } from '../common/index.js';
import type { CallFailure } from '../http/index.js';

/** Every code failover (checkers, controller, control API) raises. */
export const FAILOVER_ERRORS = {
  IOTDR_FAILOVER_UNKNOWN_REGION: {
    status: 404,
    meaning: 'a routing control names a region the controller does not know',
  },
  IOTDR_FAILOVER_UNKNOWN_CHECKER: {
    status: 403,
    meaning: 'observations from a checker `failover.checkers` does not list; the whole batch is refused',
  },
  IOTDR_FAILOVER_UNKNOWN_OBSERVED_REGION: {
    status: 400,
    meaning: 'observations of a region the controller does not know; the whole batch is refused',
  },
  IOTDR_FAILOVER_NO_FAILBACK_TARGET: {
    status: 409,
    meaning: 'failback asked while no healthy region is preferred over the active one',
  },
  IOTDR_FAILOVER_NO_OVERRIDE: { status: 409, meaning: 'the override was cleared while none is set' },
  IOTDR_FAILOVER_NO_DECISION: {
    status: 503,
    meaning: 'the decision was asked for before the controller announced its first one',
  },
  IOTDR_FAILOVER_CONFIG_INVALID: {
    meaning: "the controller's, a checker's or the executor's options do not make sense together",
  },
  IOTDR_FAILOVER_STORE: { meaning: "the controller's state file cannot be opened; control does not start" },
  IOTDR_FAILOVER_CHECKER_MISMATCH: {
    status: 403,
    meaning: "a checker's site certificate reported observations under another checker's id",
  },
  IOTDR_FAILOVER_NOT_LEADER: {
    status: 503,
    meaning:
      'this control node does not lead (or its lease ran out before the write was committed); the leader, when known, is named in `leader`',
  },
  IOTDR_FAILOVER_LEADER_UNREACHABLE: {
    status: 502,
    meaning: 'a control node could not relay a routing control to the leader it knows of',
  },
  IOTDR_FAILOVER_NO_LEADER: {
    status: 503,
    meaning:
      'no control node leads right now (an election is under way, or etcd has no quorum); retry shortly',
  },
  IOTDR_FAILOVER_OBSERVATIONS_UNDELIVERED: {
    meaning: 'a remote checker could not deliver its observations to the controller',
  },
  IOTDR_FAILOVER_CONTROL_UNREACHABLE: {
    meaning:
      'no control node answered a call: each was unreachable, gave no answer in time, or answered 502 or 503; `failures` names each',
  },
} as const satisfies ErrorCatalogue;

type FailoverErrors = typeof FAILOVER_ERRORS;
declare module '../common/index.js' {
  interface IotdrErrorCodes extends FailoverErrors {}
}

/** A routing control names a region the controller does not know. */
export class UnknownRegionError extends NotFoundError {
  constructor(region: string, known: readonly string[]) {
    super('IOTDR_FAILOVER_UNKNOWN_REGION', `no region '${region}'; known: ${known.join(', ')}`, {
      region,
      known: [...known],
    });
  }
}

/** Observations from a checker that is not configured: it must not vote. */
export class UnknownCheckerError extends IotdrError {
  constructor(checker: string, known: readonly string[]) {
    super(
      'IOTDR_FAILOVER_UNKNOWN_CHECKER',
      `no checker '${checker}' is configured; known: ${known.join(', ')}`,
      {
        status: 403,
        details: { checker, known: [...known] },
      },
    );
  }
}

/** Observation of a region the controller does not know. */
export class UnknownObservedRegionError extends IotdrError {
  constructor(region: string) {
    super('IOTDR_FAILOVER_UNKNOWN_OBSERVED_REGION', `observation of unknown region '${region}'`, {
      status: 400,
      details: { region },
    });
  }
}

/** Failback when no region of higher priority than the active one is healthy. */
export class NoFailbackTargetError extends ConflictError {
  constructor(active: string) {
    super(
      'IOTDR_FAILOVER_NO_FAILBACK_TARGET',
      `no healthy region is preferred over the active region '${active}'; nothing to fail back to`,
      { active },
    );
  }
}

/** DELETE of the override when none is set. */
export class NoOverrideError extends ConflictError {
  constructor() {
    super(
      'IOTDR_FAILOVER_NO_OVERRIDE',
      'no routing control is set; the active region already follows health',
    );
  }
}

/** Options of the controller, checker or executor that make no sense together. */
export class FailoverConfigError extends IotdrError {
  constructor(message: string) {
    super('IOTDR_FAILOVER_CONFIG_INVALID', message, { status: 400 });
  }
}

/** The state file cannot be read or written. */
export class FailoverStoreError extends IotdrError {
  constructor(message: string, cause?: unknown) {
    super('IOTDR_FAILOVER_STORE', message, { status: 503, cause });
  }
}

/** A remote checker could not deliver its observations to the controller. */
export class ObservationDeliveryError extends IotdrError {
  constructor(message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super('IOTDR_FAILOVER_OBSERVATIONS_UNDELIVERED', message, { status: 502, details, cause });
  }
}

/** A follower asked for the decision before the controller announced its first one. */
export class NoDecisionYetError extends IotdrError {
  constructor() {
    super('IOTDR_FAILOVER_NO_DECISION', 'the controller has not announced a decision yet; retry shortly', {
      status: 503,
    });
  }
}

/** A checker's certificate names one checker; its report is of another. */
export class CheckerMismatchError extends IotdrError {
  constructor(site: string, reported: string) {
    super(
      'IOTDR_FAILOVER_CHECKER_MISMATCH',
      `the certificate of checker ${site} may report its own observations only, not checker ${reported}'s`,
      { status: 403, details: { site, reported } },
    );
  }
}

/** A write that only the leader may make, on a node that does not lead (or lost its lease meanwhile). */
export class NotLeaderError extends IotdrError {
  constructor(node: string, leader?: { node: string; url: string } | null, cause?: unknown) {
    super(
      'IOTDR_FAILOVER_NOT_LEADER',
      leader
        ? `control node ${node} does not lead; ${leader.node} does, at ${leader.url}`
        : `control node ${node} does not lead`,
      {
        status: 503,
        details: { node, ...(leader ? { leader: leader.node, leaderUrl: leader.url } : {}) },
        cause,
      },
    );
  }
}

/** No control node leads: a routing control cannot be taken now. */
export class NoLeaderError extends IotdrError {
  constructor(node: string, detail?: string) {
    super(
      'IOTDR_FAILOVER_NO_LEADER',
      `no control node leads right now${detail ? ` (${detail})` : ''}; retry shortly`,
      { status: 503, details: { node } },
    );
  }
}

/** A node could not relay a routing control to the leader. */
export class LeaderUnreachableError extends IotdrError {
  constructor(node: string, leader: string, url: string, cause?: unknown) {
    super(
      'IOTDR_FAILOVER_LEADER_UNREACHABLE',
      `control node ${node} could not relay the routing control to the leader ${leader} at ${url}: ${(cause as Error)?.message ?? cause}`,
      { status: 502, details: { node, leader, leaderUrl: url }, cause },
    );
  }
}

/** How one control node failed a call, as `ControlUnreachableError` lists it. */
export interface NodeFailure {
  readonly node: string;
  readonly url: string;
  readonly failure: CallFailure;
}

/** Every control node failed a call (unreachable, no answer in time, or 502/503): each one's failure. */
export class ControlUnreachableError extends IotdrError {
  constructor(readonly failures: readonly NodeFailure[]) {
    super(
      'IOTDR_FAILOVER_CONTROL_UNREACHABLE',
      `no control node answered (is iotdr control running?): ${failures.map((f) => `${f.node} at ${f.url}: ${failureText(f.failure)}`).join('; ')}`,
      {
        status: 502,
        details: {
          failures: failures.map((f) => ({ node: f.node, url: f.url, failure: failureText(f.failure) })),
        },
      },
    );
  }

  /** Whether a node gave no answer in time: a routing control sent to it may have been taken all the same. */
  get someTimedOut(): boolean {
    return this.failures.some((f) => f.failure.type === 'timeout');
  }
}

function failureText(failure: CallFailure): string {
  switch (failure.type) {
    case 'timeout':
      return `no answer within ${failure.timeoutMs} ms`;
    case 'unreachable':
      return failure.cause;
    case 'refused':
      return `HTTP ${failure.status}${failure.code === undefined ? '' : ` ${failure.code}`}`;
    case 'unexpected':
      return `HTTP ${failure.status}: ${failure.why}`;
  }
}
