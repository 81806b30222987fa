/**
 * Console tokens may be scoped to some operations and thing groups (docs/architecture.md §8). An unscoped
 * token (any operator or admin) may do everything here.
 */
import type { CncOperation, Principal } from '../http/index.js';
import type { RegistryService } from '../registry/index.js';
import { ScopeError } from './errors.js';

export function requireOperation(principal: Principal | undefined, operation: CncOperation): void {
  const allowed = principal?.scope?.operations;
  if (allowed && !allowed.includes(operation))
    throw new ScopeError(`this token may not ${operation}; it may ${allowed.join(', ')}`, {
      operation,
      allowed: [...allowed],
    });
}

/** Onboarding into groups: a group-scoped token must name groups, all within its scope. */
export function requireGroupsInScope(principal: Principal | undefined, groups: readonly string[]): void {
  const allowed = principal?.scope?.thingGroups;
  if (!allowed) return;
  const outside = groups.filter((g) => !allowed.includes(g));
  if (groups.length === 0 || outside.length > 0)
    throw new ScopeError(
      groups.length === 0
        ? `this token onboards only into thing groups ${allowed.join(', ')}; name one`
        : `this token may not use thing group ${outside.join(', ')}`,
      { groups: [...groups], allowed: [...allowed] },
    );
}

/** A device a group-scoped token touches must be in one of its groups. */
export async function requireDeviceInScope(
  service: RegistryService,
  principal: Principal | undefined,
  thingName: string,
): Promise<void> {
  const allowed = principal?.scope?.thingGroups;
  if (!allowed) return;
  const groups = await service.listThingGroupsOf(thingName);
  if (!groups.some((g) => allowed.includes(g)))
    throw new ScopeError(`device '${thingName}' is in none of this token's thing groups`, {
      thingName,
      allowed: [...allowed],
    });
}
