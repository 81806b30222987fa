import { REGION_NAME_PATTERN } from '../common/index.js';
import { DEFAULT_GIVE_UP_TIMEOUTS } from './config.js';
import { FailoverConfigError } from './errors.js';
import type { FailoverRegion } from './types.js';

/** How often the controller re-evaluates without new observations (stale checkers, stable period), in ms. */
export const DEFAULT_EVALUATE_EVERY_MS = 250;
/** The components whose failure fails a probe, besides the region's own `critical` flags. */
export const DEFAULT_CHECKER_CRITICAL = ['broker', 'app', 'cnc', 'analytics'] as const;

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

/** The regions sorted by priority, after checking names and priorities are unique and well-formed. */
export function checkRegions(regions: readonly FailoverRegion[]): FailoverRegion[] {
  if (regions.length === 0) throw new FailoverConfigError('failover needs at least one region');
  const names = new Set<string>();
  const priorities = new Set<number>();
  for (const r of regions) {
    if (!REGION_NAME_PATTERN.test(r.name))
      throw new FailoverConfigError(`region name '${r.name}' is not ${REGION_NAME_PATTERN}`);
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
