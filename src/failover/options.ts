import { DEFAULT_FAILOVER_DEGRADED_BUDGET_MS, DEFAULT_FAILOVER_GIVE_UP_TIMEOUTS } from '../config/index.js';
import { FailoverConfigError } from './errors.js';
import type { FailoverRegion } from './types.js';

/** Consecutive failed probes, seen by a quorum of checkers, that take a region down. */
export const DEFAULT_FAILURE_THRESHOLD = 3;
/** Consecutive good probes, seen by a quorum of checkers, that bring a region back up. */
export const DEFAULT_RECOVERY_THRESHOLD = 5;
/** Time between two probes of a region by one checker, in ms. */
export const DEFAULT_CHECK_INTERVAL_MS = 1000;
/** The smallest probe interval allowed, in ms. */
export const MIN_CHECK_INTERVAL_MS = 100;
/** Time a probe (request and body) may take before it counts as failed, in ms. */
export const DEFAULT_CHECK_TIMEOUT_MS = 1000;
/** A region that has not passed its probes for this long (slow answers) is declared down, in ms. */
export const DEFAULT_DEGRADED_BUDGET_MS = DEFAULT_FAILOVER_DEGRADED_BUDGET_MS;
/** A probe still unanswered after this many timeouts fails (the region does not answer). */
export const DEFAULT_GIVE_UP_TIMEOUTS = DEFAULT_FAILOVER_GIVE_UP_TIMEOUTS;
/** How long the primary must have been healthy before an automatic failback, in ms. */
export const DEFAULT_STABLE_PERIOD_MS = 60_000;
/** How often the controller re-evaluates without new observations (stale checkers, stable period), in ms. */
export const DEFAULT_EVALUATE_EVERY_MS = 250;
/** The components whose failure fails a probe, besides the region's own `critical` flags. */
export const DEFAULT_CHECKER_CRITICAL = ['broker', 'app', 'cnc', 'analytics'] as const;
export const FAILBACK_MODES = ['manual', 'auto'] as const;
export type FailbackMode = (typeof FAILBACK_MODES)[number];
export const DISCONNECT_MODES = ['never', 'when-reachable'] as const;
export type DisconnectMode = (typeof DISCONNECT_MODES)[number];

/**
 * A checker whose latest observation is older than this does not vote: three intervals (two
 * probes lost) plus the longest the probe in flight may wait for its answer (the give-up time).
 */
export function defaultObservationMaxAgeMs(intervalMs: number, timeoutMs: number, giveUpMs?: number): number {
  return 3 * intervalMs + (giveUpMs ?? DEFAULT_GIVE_UP_TIMEOUTS * timeoutMs);
}

/** Majority of the configured checkers. */
export function quorumOf(checkers: number): number {
  return Math.floor(checkers / 2) + 1;
}

export const REGION_NAME = /^[a-z][a-z0-9-]{0,62}$/;
export const CHECKER_ID = /^[a-z][a-z0-9-]{0,62}$/;

/** The regions sorted by priority, after checking names and priorities are unique and well-formed. */
export function checkRegions(regions: readonly FailoverRegion[]): FailoverRegion[] {
  if (regions.length === 0) throw new FailoverConfigError('failover needs at least one region');
  const names = new Set<string>();
  const priorities = new Set<number>();
  for (const r of regions) {
    if (!REGION_NAME.test(r.name))
      throw new FailoverConfigError(`region name '${r.name}' is not ${REGION_NAME}`);
    if (names.has(r.name)) throw new FailoverConfigError(`region '${r.name}' is listed twice`);
    if (!Number.isInteger(r.priority) || priorities.has(r.priority))
      throw new FailoverConfigError(
        `region '${r.name}': priority ${r.priority} must be an integer of its own`,
      );
    names.add(r.name);
    priorities.add(r.priority);
  }
  return [...regions].sort((a, b) => a.priority - b.priority);
}

export function checkPositiveInt(name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min)
    throw new FailoverConfigError(`${name} must be an integer ≥ ${min}, not ${value}`);
  return value;
}
