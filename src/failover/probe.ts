import { z } from 'zod';
import type { FailingCheck } from './types.js';

/**
 * The part of an application/health+json body (draft-inadarei-api-health-check §3-4) a probe
 * needs. Unknown fields are allowed: the draft lets a service add its own.
 */
const healthBodySchema = z.object({
  status: z.enum(['pass', 'warn', 'fail']),
  checks: z
    .record(
      z.string(),
      z.array(
        z.object({
          status: z.enum(['pass', 'warn', 'fail']),
          componentId: z.string().optional(),
          output: z.string().optional(),
          critical: z.boolean().optional(),
        }),
      ),
    )
    .optional(),
});

export interface Assessment {
  ok: boolean;
  failing: FailingCheck[];
  error?: string;
}

/** The component of a `checks` key `<component>:<measurement>` (draft §4). */
function componentOf(key: string): string {
  const colon = key.indexOf(':');
  return colon < 0 ? key : key.slice(0, colon);
}

/**
 * Judges one answer of GET /health. 200 (pass, warn) and 503 (fail) carry a body to read; any
 * other status, or a body that is not health+json, fails the probe. A failing check fails the
 * probe when it is critical: flagged so by the region, or its component is in `critical`.
 */
export function assessHealth(status: number, text: string, critical: ReadonlySet<string>): Assessment {
  if (status !== 200 && status !== 503)
    return { ok: false, failing: [], error: `GET /health answered ${status}` };
  let body: z.infer<typeof healthBodySchema>;
  try {
    body = healthBodySchema.parse(JSON.parse(text));
  } catch {
    return {
      ok: false,
      failing: [],
      error: 'GET /health answered a body that is not application/health+json',
    };
  }
  const failing: FailingCheck[] = [];
  for (const [key, entries] of Object.entries(body.checks ?? {})) {
    const component = componentOf(key);
    for (const entry of entries) {
      if (entry.status !== 'fail') continue;
      failing.push({
        component,
        check: entry.componentId ? `${key}/${entry.componentId}` : key,
        critical: entry.critical === true || critical.has(component),
        ...(entry.output === undefined ? {} : { output: entry.output }),
      });
    }
  }
  const criticalFailing = failing.some((f) => f.critical);
  // A 503 names its cause in its checks; one that names none is still a failing region.
  if (status === 503 && !criticalFailing)
    return { ok: false, failing, error: 'GET /health answered 503 without a failing check' };
  return { ok: !criticalFailing, failing };
}

/** The sorted, unique components of failing checks. */
export function componentsOf(failing: readonly FailingCheck[]): string[] {
  return [...new Set(failing.map((f) => f.component))].sort();
}
