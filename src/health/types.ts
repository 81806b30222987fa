/**
 * Health of a region in the Health Check Response Format for HTTP APIs
 * (draft-inadarei-api-health-check-06, media type application/health+json).
 */

/** pass: healthy; warn: healthy with concerns; fail: unhealthy (draft §3.1). */
export type HealthStatus = 'pass' | 'warn' | 'fail';

import type { HealthComponent } from './config.js';

/** What the endpoint may take beyond its longest checkpoint timeout, in ms (see HealthService.budgetMs). */
export const DEFAULT_BUDGET_MARGIN_MS = 250;

/** Measurement names: the part after the colon of a `checks` key; no colon allowed (draft §4). */
export const MEASUREMENT_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,62}$/;

/** What one run of a checkpoint observed. */
export interface ProbeResult {
  status: HealthStatus;
  /** Any JSON value; usually a duration or a lag. */
  observedValue: number | string | boolean | null;
  /** Unit of observedValue, e.g. 'ms'. */
  observedUnit?: string;
  /** Why the status is warn or fail; plain words, never a secret. */
  output?: string;
}

export interface ProbeContext {
  /** Aborted when the checkpoint's time is up: stop, and release what the run holds. */
  signal: AbortSignal;
  timeoutMs: number;
  /** Names the step the run is at, so a timeout can say where it hung. */
  step(label: string): void;
}

/** One checkpoint: a named probe of one component. */
export interface Checkpoint {
  /** Unique in the service, REGION_NAME_PATTERN (also the `{checkpoint}` of GET /health/{checkpoint}). */
  name: string;
  component: HealthComponent;
  /** Second half of the `checks` key `<component>:<measurement>`, e.g. 'roundTrip'. */
  measurement: string;
  /** The draft's componentType: 'component', 'datastore' or 'system'. */
  componentType: string;
  /** Time the probe has, in ms; default the service's timeout (1,000 ms). */
  timeoutMs?: number;
  /** Overrides the service's critical components for this checkpoint. */
  critical?: boolean;
  /**
   * Runs in the background, at most this often while it passes (after a failure at every
   * request), in ms; requests answer its latest result and never wait for it. For costly probes
   * (a fresh mutual-TLS connect). Absent: every request runs it.
   */
  everyMs?: number;
  /** Does the real work on every call; throwing reports fail with the error's message. */
  probe(context: ProbeContext): Promise<ProbeResult>;
  /** Releases what the checkpoint keeps between probes (a session); called when the service closes. */
  close?(): Promise<void>;
}

/** Options every checkpoint factory takes. */
export interface CheckpointOptions {
  /** Default: the component's name (the built-ins) or the configured name. */
  name?: string;
  /** In ms; default the service's timeout. */
  timeoutMs?: number;
  /** Default: whether the component is in the service's critical list. */
  critical?: boolean;
}

/** One element of a `checks` array (draft §4). */
export interface CheckEntry {
  /** The checkpoint's name: tells apart several checkpoints of one component. */
  componentId: string;
  componentType: string;
  observedValue: number | string | boolean | null;
  observedUnit?: string;
  status: HealthStatus;
  /** ISO 8601 time the value was observed. */
  time: string;
  /**
   * iotdr extension: ms since the value was observed, by the region's clock (so a checker whose
   * clock differs reads it right). 0 when the request waited for the run; up to the region's
   * cache window (`health.cacheMs`) when another request's run answered it; a background
   * checkpoint's is the age of its latest result.
   */
  ageMs?: number;
  output?: string;
  /** iotdr extension: whether this checkpoint failing fails the region (otherwise it warns). */
  critical: boolean;
  /**
   * iotdr extension, only on a failing check: the probe did not finish within its timeout (slow
   * or hung) rather than meeting an error. Checkers count a region whose only critical failures
   * are timeouts as degraded (busy), not down, until their degraded budget runs out.
   */
  timedOut?: boolean;
}

/** The body of GET /health and GET /health/{checkpoint}. */
export interface HealthResponse {
  status: HealthStatus;
  version: string;
  releaseId: string;
  /** The region's name. */
  serviceId: string;
  description: string;
  /** Which checkpoints are not passing, for warn and fail (draft §3.5: omitted for pass). */
  output?: string;
  /** Keyed `<component>:<measurement>`. */
  checks: Record<string, CheckEntry[]>;
}

/** Timers the service arms for timeouts. */
export { systemTimers, type Timers } from '../common/index.js';

/** HTTP status for an overall status: 2xx for pass and warn, 503 for fail (draft §3.1). */
export function httpStatusOf(status: HealthStatus): 200 | 503 {
  return status === 'fail' ? 503 : 200;
}

const RANK: Record<HealthStatus, number> = { pass: 0, warn: 1, fail: 2 };

export function worst(statuses: Iterable<HealthStatus>): HealthStatus {
  let out: HealthStatus = 'pass';
  for (const s of statuses) if (RANK[s] > RANK[out]) out = s;
  return out;
}
