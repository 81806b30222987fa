/**
 * The `failover` section of the configuration (docs/failover.md): how checkers probe the regions,
 * when the controller declares one down or back, failback, and who hears of a switch. The
 * checker and the controller fall back to the same defaults.
 */
import { z } from 'zod';
import {
  expecting,
  headersSchema,
  httpUrlSchema,
  integerWithin,
  matching,
  oneOf,
  type Range,
  REGION_NAME_PATTERN,
  section,
} from '../common/index.js';

/** Time between two probes of a region by one checker, in ms. Default 1,000. */
export const DEFAULT_CHECK_INTERVAL_MS = 1000;
/** The smallest probe interval allowed, in ms. */
export const MIN_CHECK_INTERVAL_MS = 100;
/** An answer later than this is slow: the region is degraded, not down, in ms. Default 1,000. */
export const DEFAULT_CHECK_TIMEOUT_MS = 1000;
/**
 * A probe still unanswered after this many timeouts fails: the region does not answer. An answer
 * later than the timeout but within this is slow: the region is degraded, not down. Default 3.
 */
export const DEFAULT_GIVE_UP_TIMEOUTS = 3;
/** A region degraded for longer (slow answers, timed-out checkpoints) is declared down, in ms. Default 15,000. */
export const DEFAULT_DEGRADED_BUDGET_MS = 15_000;
/** Consecutive failed probes, seen by a quorum of checkers, that take a region down. Default 3. */
export const DEFAULT_FAILURE_THRESHOLD = 3;
/** Consecutive good probes, seen by a quorum of checkers, that bring a region back up. Default 5. */
export const DEFAULT_RECOVERY_THRESHOLD = 5;
/** How long the primary must have been healthy before an automatic failback, in ms. Default 60,000. */
export const DEFAULT_STABLE_PERIOD_MS = 60_000;
/** `manual`: back to the primary only by a routing control; `auto`: after the stable period. */
export const FAILBACK_MODES = ['manual', 'auto'] as const;
export type FailbackMode = (typeof FAILBACK_MODES)[number];
export const DEFAULT_FAILBACK: FailbackMode = 'manual';
/** After a switch, disconnect the devices still on the old region's broker (`when-reachable`), or leave them. */
export const DISCONNECT_MODES = ['never', 'when-reachable'] as const;
export type DisconnectMode = (typeof DISCONNECT_MODES)[number];
export const DEFAULT_DISCONNECT_ON_FAILOVER: DisconnectMode = 'when-reachable';
/** The checker that runs inside `iotdr control`. */
export const DEFAULT_CHECKER_ID = 'control';

/** Bounds of the section's numbers, inclusive. */
export const FAILOVER_LIMITS = {
  /** ms: 100 ms to 10 minutes. */
  intervalMs: { min: MIN_CHECK_INTERVAL_MS, max: 600_000 },
  /** ms. */
  timeoutMs: { min: 10, max: 60_000 },
  /** ms; at least timeoutMs as well. */
  giveUpMs: { min: 10, max: 600_000 },
  /** ms: 0 (no budget) to a day. */
  degradedBudgetMs: { min: 0, max: 86_400_000 },
  /** Probes. */
  failureThreshold: { min: 1, max: 100 },
  /** Probes. */
  recoveryThreshold: { min: 1, max: 100 },
  /** ms: 0 to a day. */
  stablePeriodMs: { min: 0, max: 86_400_000 },
} as const satisfies Record<string, Range>;

export interface WebhookConfig {
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface FailoverConfig {
  /** Time between two probes of a region by one checker, in ms (≥ 100). Default 1,000. */
  readonly intervalMs: number;
  /** An answer later than this is slow (the region is degraded), in ms. Default 1,000. */
  readonly timeoutMs: number;
  /** A probe still unanswered after this fails (the region does not answer), in ms; ≥ timeoutMs. Default 3 × timeoutMs (failoverGiveUpMs). */
  readonly giveUpMs?: number;
  /** A region degraded for longer (seen by a quorum of checkers) is declared down, in ms. Default 15,000. */
  readonly degradedBudgetMs: number;
  /** Consecutive failed probes (seen by a quorum of checkers) that take a region down. Default 3. */
  readonly failureThreshold: number;
  /** Consecutive good probes that bring it back. Default 5. */
  readonly recoveryThreshold: number;
  /** `manual` (default): back to the primary only by `iotdr failback`; `auto`: after stablePeriodMs healthy. */
  readonly failback: FailbackMode;
  readonly stablePeriodMs: number;
  /** Ids of the checkers whose majority decides; `control` is the one inside `iotdr control`. */
  readonly checkers: readonly string[];
  /** Disconnect the devices still on the old region's broker after a switch. Default when-reachable. */
  readonly disconnectOnFailover: DisconnectMode;
  /** Called with every switch (HTTP POST, retried). */
  readonly webhooks: readonly WebhookConfig[];
}

/** How long a checker waits for an answer before the probe fails: giveUpMs, or 3 × timeoutMs. */
export function failoverGiveUpMs(failover: Pick<FailoverConfig, 'timeoutMs' | 'giveUpMs'>): number {
  return failover.giveUpMs ?? DEFAULT_GIVE_UP_TIMEOUTS * failover.timeoutMs;
}

const L = FAILOVER_LIMITS;

export const failoverSection = section({
  intervalMs: integerWithin(L.intervalMs, 'ms').default(DEFAULT_CHECK_INTERVAL_MS),
  timeoutMs: integerWithin(L.timeoutMs, 'ms').default(DEFAULT_CHECK_TIMEOUT_MS),
  giveUpMs: integerWithin(L.giveUpMs, 'ms').optional(),
  degradedBudgetMs: integerWithin(L.degradedBudgetMs, 'ms').default(DEFAULT_DEGRADED_BUDGET_MS),
  failureThreshold: integerWithin(L.failureThreshold, 'probes').default(DEFAULT_FAILURE_THRESHOLD),
  recoveryThreshold: integerWithin(L.recoveryThreshold, 'probes').default(DEFAULT_RECOVERY_THRESHOLD),
  failback: oneOf(FAILBACK_MODES).default(DEFAULT_FAILBACK),
  stablePeriodMs: integerWithin(L.stablePeriodMs, 'ms').default(DEFAULT_STABLE_PERIOD_MS),
  checkers: z
    .array(
      matching(
        REGION_NAME_PATTERN,
        'a checker id: a lowercase letter, then lowercase letters, digits or hyphens',
      ),
      { error: expecting('expected a list of checker ids') },
    )
    .min(1, { error: 'expected at least one checker' })
    .prefault(() => [DEFAULT_CHECKER_ID]),
  disconnectOnFailover: oneOf(DISCONNECT_MODES).default(DEFAULT_DISCONNECT_ON_FAILOVER),
  webhooks: z
    .array(section({ url: httpUrlSchema, headers: headersSchema().optional() }), {
      error: expecting('expected a list of webhooks'),
    })
    .prefault(() => []),
}).prefault({});
