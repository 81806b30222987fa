/**
 * Console tokens may be scoped to some operations, thing groups and onboarding templates
 * (docs/architecture.md §8, docs/commands.md). An unscoped token (any operator or admin) may do
 * everything here.
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

/**
 * Onboarding attaches the template policy to the device's certificate, so a template is what the
 * device may do on the broker. As AWS IoT asks `iam:PassRole` for the role a caller hands on, a
 * scoped token onboards only with a template its scope lists (none listed: none); an unscoped
 * token (operator, admin) with any.
 */
export function requireTemplateInScope(principal: Principal | undefined, template: string): void {
  const scope = principal?.scope;
  if (!scope) return;
  const allowed = scope.templates ?? [];
  if (!allowed.includes(template))
    throw new ScopeError(
      allowed.length === 0
        ? `this token may not onboard with template '${template}': its scope lists no templates`
        : `this token may not onboard with template '${template}'; it may use ${allowed.join(', ')}`,
      { template, allowed: [...allowed] },
    );
}

/**
 * A scoped token reads only the onboarding jobs it submitted: a job's report names every device of
 * the list and what happened to it, whichever groups they joined. Unscoped tokens read all.
 */
export function requireJobInScope(
  principal: Principal | undefined,
  job: { readonly jobId: string; readonly owner?: string | undefined },
  caller: string,
): void {
  if (!principal?.scope) return;
  if (job.owner !== caller)
    throw new ScopeError(`this token may read only the onboarding jobs it submitted, not '${job.jobId}'`, {
      jobId: job.jobId,
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
