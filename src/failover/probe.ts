import type { HealthResponse } from '../health/index.js';
import type { FailingCheck, ProbeOutcome } from './types.js';

export interface Assessment {
  outcome: ProbeOutcome;
  failing: FailingCheck[];
  error?: string;
}

/** The component of a `checks` key `<component>:<measurement>` (draft §4). */
function componentOf(key: string): string {
  const colon = key.indexOf(':');
  return colon < 0 ? key : key.slice(0, colon);
}

/** Longest observed string kept from a region's answer. */
const MAX_OBSERVED_TEXT = 200;
/** Longest unit kept: what an observation may carry (observationSchema). */
const MAX_OBSERVED_UNIT = 32;

/**
 * Judges one answer of GET /health, read by the health route's contract: 200 (pass, warn) or 503
 * (fail) with the region's health report (the checker fails any other answer before this). A
 * failing check counts when it is critical: flagged so by the region, or its component is in
 * `critical`. Critical checks that met an error fail the probe; critical checks that only timed
 * out (`timedOut`, the region could not finish them in time: busy, or hung) make it slow — the
 * controller tells the two apart over time (failureThreshold for failures, the degraded budget
 * for slowness).
 */
export function assessHealth(
  answer: { status: 200 | 503; body: HealthResponse },
  critical: ReadonlySet<string>,
): Assessment {
  const { status, body } = answer;
  const failing: FailingCheck[] = [];
  for (const [key, entries] of Object.entries(body.checks)) {
    const component = componentOf(key);
    for (const entry of entries) {
      if (entry.status !== 'fail') continue;
      const observed = entry.observedValue;
      failing.push({
        component,
        check: entry.componentId ? `${key}/${entry.componentId}` : key,
        critical: entry.critical === true || critical.has(component),
        ...(entry.output === undefined ? {} : { output: entry.output.slice(0, 2000) }),
        ...(observed === undefined
          ? {}
          : {
              observedValue: typeof observed === 'string' ? observed.slice(0, MAX_OBSERVED_TEXT) : observed,
            }),
        ...(entry.observedUnit === undefined
          ? {}
          : { observedUnit: entry.observedUnit.slice(0, MAX_OBSERVED_UNIT) }),
        ...(entry.timedOut === true ? { timedOut: true } : {}),
      });
    }
  }
  const criticalFailing = failing.filter((f) => f.critical);
  // A 503 names its cause in its checks; one that names none is still a failing region.
  if (status === 503 && criticalFailing.length === 0)
    return { outcome: 'fail', failing, error: 'GET /health answered 503 without a failing check' };
  if (criticalFailing.length === 0) return { outcome: 'pass', failing };
  return { outcome: criticalFailing.every((f) => f.timedOut === true) ? 'slow' : 'fail', failing };
}

const RANK: Record<ProbeOutcome, number> = { pass: 0, slow: 1, fail: 2 };

/** The worse of probe outcomes. */
export function worstOutcome(outcomes: Iterable<ProbeOutcome>): ProbeOutcome {
  let out: ProbeOutcome = 'pass';
  for (const o of outcomes) if (RANK[o] > RANK[out]) out = o;
  return out;
}

/** The sorted, unique components of failing checks. */
export function componentsOf(failing: readonly FailingCheck[]): string[] {
  return [...new Set(failing.map((f) => f.component))].sort();
}
