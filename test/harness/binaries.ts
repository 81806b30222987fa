/**
 * Tests that need a binary from Debian's packages (dig, pdns_server, chromium, …) skip with a reason
 * locally when it is missing; with CI=true that is an error instead, so CI never goes green by
 * skipping.
 */
import { accessSync, constants } from 'node:fs';

export function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** undefined when `available`; else `missing` (locally) or a thrown Error (with CI=true). */
export function skipReason(available: boolean, missing: string): string | undefined {
  if (available) return undefined;
  if (process.env.CI === 'true') throw new Error(missing);
  return missing;
}
