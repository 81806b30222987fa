/**
 * Tests that need a binary from Debian's packages (dig, pdns_server, chromium, …) skip with a reason
 * locally when it is missing; with CI=true that is an error instead, so CI never goes green by
 * skipping.
 */
export { isExecutable as executable } from '../../src/common/index.js';

/** undefined when `available`; else `missing` (locally) or a thrown Error (with CI=true). */
export function skipReason(available: boolean, missing: string): string | undefined {
  if (available) return undefined;
  if (process.env.CI === 'true') throw new Error(missing);
  return missing;
}
