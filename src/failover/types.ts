/**
 * The failover controller's vocabulary: what checkers observe, what the controller decides, and
 * the decision log's events. Times are ms since the epoch from the injected clock.
 * Shapes served over HTTP are type aliases; the route contracts (contracts.ts) describe each by a zod
 * schema that a compile-time check (`Expect<SameType<…>>`) keeps equal to its type here.
 */

/** A region as the failover controller knows it. */
export interface FailoverRegion {
  /** `^[a-z][a-z0-9-]{0,62}$`. */
  name: string;
  /** Lower is preferred; unique. */
  priority: number;
  /** Base URL of the region's HTTP API (its /health, notices and disconnect routes). */
  url: string;
}

/** One failing checkpoint (or extra health URL) a probe saw. */
export type FailingCheck = {
  /** The component: broker, registry, app, cnc, analytics… */
  component: string;
  /** The `checks` key (`<component>:<measurement>`) or the extra URL's name. */
  check: string;
  critical: boolean;
  output?: string;
  /** What the check last observed (its latency, usually), as the region reported it. */
  observedValue?: number | string | boolean | null;
  observedUnit?: string;
  /** It did not finish within its timeout (slow or hung) rather than meeting an error. */
  timedOut?: boolean;
};

/**
 * How one probe went. `pass`: answered on time, no critical check failing. `slow`: answered, but
 * later than the timeout or with critical checks that only timed out — the region is busy, it
 * serves (degraded). `fail`: refused, no answer within the give-up time, an unreadable answer, or
 * a critical check that met an error — the region cannot serve.
 */
export type ProbeOutcome = 'pass' | 'slow' | 'fail';

/** What one checker saw of one region in one probe. */
export type Observation = {
  checker: string;
  region: string;
  /** When the probe started. */
  at: number;
  outcome: ProbeOutcome;
  /** Components with a failing check, critical or not, sorted, unique. */
  failingComponents: string[];
  failing: FailingCheck[];
  /** Time the probe took, in ms. */
  latencyMs: number;
  /** Why the request itself failed (timeout, refused, bad status, unreadable body). */
  error?: string;
};

/** Receives observations: the controller in-process, or the HTTP client of a remote checker. */
export interface ObservationSink {
  report(observations: Observation[]): Promise<void> | void;
}

/** A region's health as the controller decided it from a quorum of checkers. */
export type RegionHealthStatus = 'unknown' | 'up' | 'down';

export type RegionHealth = {
  region: string;
  priority: number;
  status: RegionHealthStatus;
  /** When the status last changed (null: never decided). */
  since: number | null;
  /** Failing components in the latest observation of each checker, merged. */
  failingComponents: string[];
  /** Set while a quorum of checkers sees the region slow or failing and it is not declared down. */
  degraded: Degradation | null;
  /** The latest observation of each configured checker (absent when none arrived). */
  checkers: Record<string, CheckerView>;
};

export type CheckerView = {
  lastAt: number;
  /** The latest probe's outcome. */
  outcome: ProbeOutcome;
  /** Failed probes since the last probe that passed (slow ones in between do not reset it). */
  consecutiveFailures: number;
  /** Probes that did not pass (slow or failed) since the last that did. */
  consecutiveNotPassing: number;
  consecutiveSuccesses: number;
  /** The first failed probe since the last that passed. */
  failingSince: number | null;
  /** The first probe that did not pass (slow or failed) since the last that did. */
  degradedSince: number | null;
  failingComponents: string[];
  /** The latest probe's failing checks, with what they observed. */
  failing: FailingCheck[];
  latencyMs: number;
  error?: string;
  /** What this checker says of the region now: down, up, or nothing yet (threshold not reached or stale). */
  vote: 'up' | 'down' | 'none';
  /** For a down vote: `failures` (failureThreshold failed probes) or `degraded` (not passing past the budget). */
  downBecause?: 'failures' | 'degraded';
};

/** A region that a quorum of checkers sees slow or failing, not (yet) declared down. */
export type Degradation = {
  /** The earliest start of the streaks of the checkers that see it so. */
  since: number;
  /** When it is declared down if it stays so: since + degradedBudgetMs. */
  budgetEndsAt: number;
  /** The worst latency among those checkers' latest probes, ms. */
  latencyMs: number;
  /** Their latest failing checks, merged. */
  failing: FailingCheck[];
};

/** A routing control that pins the active region regardless of health (until cleared). */
export type Override = {
  region: string;
  reason: string;
  /** The token name that set it. */
  who: string;
  at: number;
};

/** What DNS (and any other follower) is told: the region devices must use, fenced by epoch. */
export type Decision = {
  activeRegion: string;
  epoch: number;
  /** When the decision was made. */
  at: number;
  /** The switch event that made it (null for the initial decision of a fresh controller). */
  eventId: string | null;
};

/** Follows the controller's decisions: the DNS providers and the feed of `iotdr dns` servers. */
export interface DecisionSink {
  /** Names the sink's outcome in the switch event's `dnsUpdated` detail. */
  readonly name?: string;
  apply(decision: Decision): Promise<void> | void;
}

/** Why the active region changed. */
export type SwitchTrigger =
  | { type: 'health'; region: string; status: RegionHealthStatus }
  | { type: 'auto-failback'; stableSinceAt: number }
  | { type: 'manual'; who: string; reason: string }
  | { type: 'failback'; who: string; reason: string };

/** Steps after the decision, reported by the actions that perform them. */
export const SWITCH_STEPS = [
  'dnsUpdated',
  'noticesPublished',
  'disconnectsRequested',
  'webhooksCalled',
] as const;
export type SwitchStep = (typeof SWITCH_STEPS)[number];

/** The time of every RTO factor of a switch (null: not applicable or not done yet). */
export type SwitchTimings = {
  /** The first failed probe of the streak that crossed the threshold (health switches). */
  firstFailedProbeAt: number | null;
  /** When a quorum of checkers reached the failure threshold. */
  thresholdCrossedAt: number | null;
  decidedAt: number;
  dnsUpdatedAt: number | null;
  noticesPublishedAt: number | null;
  disconnectsRequestedAt: number | null;
  webhooksCalledAt: number | null;
};

/** One entry of the decision log. `type: 'switch'` entries carry the RTO timings. */
export type FailoverEvent =
  | {
      type: 'switch';
      id: string;
      seq: number;
      at: number;
      from: string | null;
      to: string;
      epoch: number;
      trigger: SwitchTrigger;
      timings: SwitchTimings;
      /** Outcome of each step per target (region, webhook), filled in by the executor. */
      steps: Partial<Record<SwitchStep, unknown>>;
    }
  | {
      type: 'region-health';
      id: string;
      seq: number;
      at: number;
      region: string;
      from: RegionHealthStatus;
      to: RegionHealthStatus;
      failingComponents: string[];
      /** For down: failed probes past the threshold, or degraded past the budget. */
      cause: 'failures' | 'degraded' | 'recovered';
      /** The failing checks of the fresh observations, with their observed latency or error. */
      failing: FailingCheck[];
      /** Every checker's view of the region at that moment. */
      checkers: Record<string, CheckerView>;
    }
  | { type: 'override-set'; id: string; seq: number; at: number; override: Override }
  | {
      type: 'override-cleared';
      id: string;
      seq: number;
      at: number;
      who: string;
      reason: string;
      previous: Override;
    }
  | { type: 'no-healthy-region'; id: string; seq: number; at: number; keeping: string }
  | { type: 'healthy-region-again'; id: string; seq: number; at: number; regions: string[] }
  | { type: 'holding-ended'; id: string; seq: number; at: number };

export type SwitchEvent = Extract<FailoverEvent, { type: 'switch' }>;

/** Distributes `Omit` over the union, so each variant keeps its own fields. */
export type NewEvent = FailoverEvent extends infer E
  ? E extends FailoverEvent
    ? Omit<E, 'seq'>
    : never
  : never;

/** Where the controller is. A discriminated union so callers cannot mistake one for another. */
export type ControllerMode =
  /** Just started: keeps the persisted decision until every region has a fresh quorum verdict. */
  | { type: 'holding'; since: number }
  /** The active region follows health. */
  | { type: 'health' }
  /** A routing control pins the active region. */
  | { type: 'override'; override: Override };

/** The persisted part of the controller's state. */
export interface PersistedState {
  activeRegion: string;
  epoch: number;
  decidedAt: number;
  lastSwitchId: string | null;
  override: Override | null;
  noHealthyRegion: boolean;
  health: Record<string, { status: RegionHealthStatus; since: number | null }>;
  /**
   * Since when the deciding node holds this state until every region has a fresh quorum verdict
   * (null: it decides from health), so that the nodes that do not lead show the same mode.
   * Absent in states written before control nodes.
   */
  holdingSince?: number | null;
}

/** GET /v1/failover/state. */
export type FailoverState = {
  activeRegion: string;
  epoch: number;
  decidedAt: number;
  mode: ControllerMode;
  failback: 'manual' | 'auto';
  /** Set when no region is healthy: the active region is kept, not moved. */
  noHealthyRegion: boolean;
  /** A higher-priority region that is healthy while failback is manual: waiting for `failback`. */
  failbackAvailable: string | null;
  quorum: number;
  checkers: string[];
  regions: RegionHealth[];
  lastSwitch: SwitchEvent | null;
  /** The control node that answered: whether it leads, and who does as it last saw. */
  control: {
    node: string;
    leads: boolean;
    leader: {
      node: string;
      url: string;
      since: number;
      lease: string;
      leaseTtlMs: number;
    } | null;
  };
};

/** Timers for intervals and timeouts; injected so tests drive time. */
import type { Timers } from '../common/index.js';

export type { Timers };

export const systemTimers: Timers = {
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    // Probing and re-evaluation never keep a process alive on their own.
    handle.unref?.();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
