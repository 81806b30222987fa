import { formatPath } from '../../common/index.js';
import { invalidDnsState, StaleEpochError } from '../errors.js';
import { type ActiveRegion, activeRegionSchema } from '../state.js';

/** Validates a decision handed to a provider; `ValidationError` (`IOTDR_DNS_INVALID_STATE`) otherwise. */
export function parseActive(input: unknown): ActiveRegion {
  const result = activeRegionSchema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
    throw invalidDnsState(
      `invalid DNS decision: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    );
  }
  return Object.freeze(result.data);
}

/**
 * The fencing rule of docs/architecture.md §5.3: a decision with a lower epoch than the one served
 * is stale (a controller that lost its lease); the same epoch must mean the same region. Returns
 * whether the requested decision is already served exactly.
 */
export function checkEpoch(current: ActiveRegion | undefined, requested: ActiveRegion): boolean {
  if (!current) return false;
  if (requested.epoch < current.epoch) throw new StaleEpochError(current, requested);
  if (requested.epoch === current.epoch && requested.region !== current.region) {
    throw new StaleEpochError(current, requested);
  }
  return (
    requested.epoch === current.epoch &&
    requested.region === current.region &&
    requested.address === current.address
  );
}
